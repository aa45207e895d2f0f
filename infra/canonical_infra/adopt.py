"""Redeploying prod after `cdk destroy`: adopt the retained resources instead of colliding with them.

A prod deployment keeps its data when its stacks are destroyed: the buckets, the jobs table, the database
secrets, the data key and the named log groups stay (DeletionPolicy Retain), under their fixed names. A
plain `cdk deploy` would then try to create them again and fail ("already exists"). CloudFormation's
answer is a resource import: each retained resource goes back into its stack under its logical id, with
its data, and the next deploy creates only what is missing. This module finds, in the synthesized
templates, every retained resource with a fixed name (and the data key the retained buckets encrypt
with), looks each up in the account, and writes one `cdk import --resource-mapping` file per stack.

Kept free of aws_cdk (it reads templates, not constructs), so it runs and is tested without Node.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RETAINED = ("Retain", "RetainExceptOnCreate")

# Resource type -> (the name property in the template, the import identifier CloudFormation asks for).
NAMED_TYPES: dict[str, tuple[str, str]] = {
    "AWS::S3::Bucket": ("BucketName", "BucketName"),
    "AWS::DynamoDB::Table": ("TableName", "TableName"),
    "AWS::Logs::LogGroup": ("LogGroupName", "LogGroupName"),
    "AWS::SecretsManager::Secret": ("Name", "Id"),  # imported by ARN, which carries a random suffix
}
# Name properties of other types: a retained resource with one of these and no importer would collide.
OTHER_NAME_PROPERTIES = (
    "AliasName",
    "TopicName",
    "QueueName",
    "DBInstanceIdentifier",
    "FunctionName",
    "RoleName",
    "DBProxyName",
    "UserPoolName",
    "Name",
    "ClusterName",
    "Family",
)


class AdoptError(RuntimeError):
    """A retained resource cannot be adopted as it is; the message says what to do."""


@dataclass(frozen=True)
class Adoptable:
    stack: str
    logical_id: str
    type: str
    name: str  # the physical name in the template ("" for the data key, found through its buckets)


def adoptable_resources(stack: str, template: Mapping[str, Any]) -> list[Adoptable]:
    """Every retained resource of `template` whose physical name is fixed, plus retained KMS keys the
    retained buckets encrypt with. Refuses a retained, named resource of a type it cannot import."""
    resources = template.get("Resources", {})
    found: list[Adoptable] = []
    for logical_id, resource in resources.items():
        if resource.get("DeletionPolicy") not in RETAINED:
            continue
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind in NAMED_TYPES:
            name = props.get(NAMED_TYPES[kind][0])
            if isinstance(name, str):
                found.append(Adoptable(stack, logical_id, kind, name))
        elif kind == "AWS::KMS::Key":
            if _encrypts_a_retained_bucket(logical_id, resources):
                found.append(Adoptable(stack, logical_id, kind, ""))
        elif any(isinstance(props.get(p), str) for p in OTHER_NAME_PROPERTIES):
            raise AdoptError(
                f"{stack}/{logical_id} ({kind}) is retained under a fixed name that infra/adopt.py "
                "cannot import: give it a generated name or add its importer"
            )
    return found


def _encrypts_a_retained_bucket(key_id: str, resources: Mapping[str, Any]) -> bool:
    for resource in resources.values():
        if (
            resource["Type"] == "AWS::S3::Bucket"
            and resource.get("DeletionPolicy") in RETAINED
            and f'"{key_id}"' in json.dumps(resource.get("Properties", {}).get("BucketEncryption", {}))
        ):
            return True
    return False


# -- looking them up in the account ----------------------------------------------------------------------


class AccountLookup:
    """What exists in the account, by name (boto3 clients made once, by the caller's session)."""

    def __init__(self, client: Callable[[str], Any]) -> None:
        self.s3, self.dynamodb = client("s3"), client("dynamodb")
        self.logs, self.secrets = client("logs"), client("secretsmanager")

    def identifier(self, item: Adoptable, buckets: Mapping[str, str]) -> str | None:
        """The import identifier of `item` if it exists (None: it does not, the deploy will create it)."""
        from botocore.exceptions import ClientError

        try:
            if item.type == "AWS::S3::Bucket":
                self.s3.head_bucket(Bucket=item.name)
                return item.name
            if item.type == "AWS::DynamoDB::Table":
                return self.dynamodb.describe_table(TableName=item.name)["Table"]["TableName"]
            if item.type == "AWS::Logs::LogGroup":
                groups = self.logs.describe_log_groups(logGroupNamePrefix=item.name)["logGroups"]
                return item.name if any(g["logGroupName"] == item.name for g in groups) else None
            if item.type == "AWS::SecretsManager::Secret":
                secret = self.secrets.describe_secret(SecretId=item.name)
                if secret.get("DeletedDate"):
                    raise AdoptError(
                        f"secret {item.name} is scheduled for deletion: restore it first "
                        f"(aws secretsmanager restore-secret --secret-id {item.name}), then run again"
                    )
                return secret["ARN"]
            if item.type == "AWS::KMS::Key":
                return self._bucket_key(buckets)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in (
                "404",
                "NoSuchBucket",
                "ResourceNotFoundException",
            ):
                return None
            raise
        raise AdoptError(f"no lookup for {item.type}")

    def _bucket_key(self, buckets: Mapping[str, str]) -> str | None:
        """The data key is found through the retained buckets it encrypts (its alias went with the stack)."""
        for bucket in buckets.values():
            rules = self.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
            for rule in rules:
                key = rule["ApplyServerSideEncryptionByDefault"].get("KMSMasterKeyID")
                if key:
                    return key.rsplit("/", 1)[-1]  # a key ARN or id; CloudFormation imports by id
        return None


def resource_mappings(
    templates: Mapping[str, Mapping[str, Any]], lookup: AccountLookup
) -> dict[str, dict[str, dict[str, str]]]:
    """`{stack: {logical id: {identifier property: value}}}` for each retained resource that exists, ready
    for `cdk import <stack> --resource-mapping`. Stacks with nothing to adopt are left out."""
    mappings: dict[str, dict[str, dict[str, str]]] = {}
    for stack, template in templates.items():
        items = adoptable_resources(stack, template)
        buckets: dict[str, str] = {}
        for item in sorted(items, key=lambda i: i.type == "AWS::KMS::Key"):  # buckets before their key
            value = lookup.identifier(item, buckets)
            if value is None:
                continue
            if item.type == "AWS::S3::Bucket":
                buckets[item.logical_id] = value
            prop = "KeyId" if item.type == "AWS::KMS::Key" else NAMED_TYPES[item.type][1]
            mappings.setdefault(stack, {})[item.logical_id] = {prop: value}
    return mappings


def read_templates(cdk_out: Path) -> dict[str, dict[str, Any]]:
    """The stacks' templates in a cloud assembly (`cdk synth` output), by stack name."""
    manifest = json.loads((cdk_out / "manifest.json").read_text())
    templates = {}
    for name, artifact in manifest["artifacts"].items():
        if artifact.get("type") == "aws:cloudformation:stack":
            templates[name] = json.loads((cdk_out / artifact["properties"]["templateFile"]).read_text())
    return templates


def write_mappings(mappings: Mapping[str, Mapping[str, Any]], folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for stack, mapping in mappings.items():
        path = folder / f"{stack}.json"
        path.write_text(json.dumps(mapping, indent=2, sort_keys=True) + "\n")
        written[stack] = path
    return written
