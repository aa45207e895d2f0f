"""Destroy, then deploy again: a dev deployment by construction (nothing it keeps has a fixed name), prod by
adopting what it kept (infra/adopt.py writes the `cdk import` mappings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.infra.infra_synth import ACCOUNT, INFRA_DIR, REGION, Synth

pytestmark = pytest.mark.xdist_group("infra")

NAME_PROPERTIES = (
    "BucketName",
    "TableName",
    "LogGroupName",
    "Name",
    "AliasName",
    "TopicName",
    "QueueName",
    "FunctionName",
    "RoleName",
    "DBProxyName",
    "UserPoolName",
    "ClusterName",
    "Family",
)


def _retained_with_fixed_names(synth: Synth) -> dict[str, str]:
    """logical id -> physical name of every resource a stack deletion leaves behind under a fixed name."""
    found = {}
    for template in synth.templates.values():
        for logical_id, resource in template["Resources"].items():
            if resource.get("DeletionPolicy") not in ("Retain", "RetainExceptOnCreate"):
                continue
            names = [
                v
                for p, v in resource.get("Properties", {}).items()
                if p in NAME_PROPERTIES and isinstance(v, str)
            ]
            if names:
                found[logical_id] = names[0]
    return found


def test_a_destroyed_dev_deployment_deploys_again_under_the_same_names(dev: Synth, lean: Synth) -> None:
    """Nothing a dev deployment keeps after `cdk destroy` has a fixed name (buckets are emptied and deleted
    with the stack), so the next deploy creates everything afresh."""
    for synth in (dev, lean):
        assert _retained_with_fixed_names(synth) == {}
        buckets = synth.resources("AWS::S3::Bucket", "data")
        assert len(buckets) == 3 and all(b["DeletionPolicy"] == "Delete" for b in buckets.values())
        assert len(synth.resources("Custom::S3AutoDeleteObjects", "data")) == 3


def _adoptable(prod: Synth) -> dict[str, str]:
    from canonical_infra.adopt import adoptable_resources

    return {
        a.logical_id: a.name for stack, t in prod.templates.items() for a in adoptable_resources(stack, t)
    }


def test_everything_prod_keeps_under_a_fixed_name_can_be_adopted(prod: Synth) -> None:
    adoptable = _adoptable(prod)
    kept = _retained_with_fixed_names(prod)
    assert kept and set(kept) <= set(adoptable)
    names = set(adoptable.values())
    for name in (
        "canonical-prod-raw-111111111111-eu-west-1",
        "canonical-prod-results-111111111111-eu-west-1",
        "canonical-prod-logs-111111111111-eu-west-1",
        "canonical-prod-jobs",
        "canonical-prod-db-master",
        "canonical-prod-db-pipeline-writer",
        "/canonical/prod/dagster",
    ):
        assert name in names, name
    # The data key has no name but must come back with the objects it encrypts.
    (key_id,) = prod.resources("AWS::KMS::Key", "data")
    assert adoptable[key_id] == ""


def test_a_retained_resource_under_a_name_adopt_cannot_import_is_refused() -> None:
    from canonical_infra.adopt import AdoptError, adoptable_resources

    template = {
        "Resources": {
            "Topic": {
                "Type": "AWS::SNS::Topic",
                "DeletionPolicy": "Retain",
                "Properties": {"TopicName": "canonical-prod-x"},
            }
        }
    }
    with pytest.raises(AdoptError, match=r"Topic .*fixed name"):
        adoptable_resources("Canonical-Prod-Data", template)


@pytest.fixture
def account() -> Any:
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


def test_adopt_maps_what_still_exists_and_leaves_the_rest_to_the_deploy(
    prod: Synth, account: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `cdk destroy` of prod left: the data key, the raw and logs buckets (the results bucket was
    deleted by hand), the jobs table, one secret and the Dagster log group."""
    import adopt

    key = account("kms").create_key(Description="canonical-pipeline data")["KeyMetadata"]["KeyId"]
    s3 = account("s3")
    for purpose in ("raw", "logs"):
        bucket = f"canonical-prod-{purpose}-{ACCOUNT}-{REGION}"
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": key,
                        }
                        if purpose == "raw"
                        else {"SSEAlgorithm": "AES256"}
                    }
                ]
            },
        )
    account("dynamodb").create_table(
        TableName="canonical-prod-jobs",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
    )
    secret_arn = account("secretsmanager").create_secret(Name="canonical-prod-db-master", SecretString="{}")[
        "ARN"
    ]
    account("logs").create_log_group(logGroupName="/canonical/prod/dagster")
    account("logs").create_log_group(
        logGroupName="/canonical/prod/dagster-other"
    )  # a prefix twin: not adopted

    assert adopt.main(["--cdk-out", str(prod.outdir), "--region", REGION, "-c", "env=prod"]) == 0
    printed = capsys.readouterr().out

    ids = {logical_id: name for logical_id, name in _adoptable(prod).items()}
    by_name = {name: logical_id for logical_id, name in ids.items()}
    data = json.loads((prod.outdir / "adopt" / "Canonical-Prod-Data.json").read_text())
    (key_logical_id,) = prod.resources("AWS::KMS::Key", "data")
    assert data == {
        by_name[f"canonical-prod-raw-{ACCOUNT}-{REGION}"]: {
            "BucketName": f"canonical-prod-raw-{ACCOUNT}-{REGION}"
        },
        by_name[f"canonical-prod-logs-{ACCOUNT}-{REGION}"]: {
            "BucketName": f"canonical-prod-logs-{ACCOUNT}-{REGION}"
        },
        by_name["canonical-prod-jobs"]: {"TableName": "canonical-prod-jobs"},
        by_name["canonical-prod-db-master"]: {"Id": secret_arn},
        key_logical_id: {"KeyId": key},
    }
    orchestration = json.loads((prod.outdir / "adopt" / "Canonical-Prod-Orchestration.json").read_text())
    assert orchestration == {by_name["/canonical/prod/dagster"]: {"LogGroupName": "/canonical/prod/dagster"}}
    # The commands, Data before Orchestration, then the deploy, each with the context flags given.
    lines = [line.strip() for line in printed.splitlines() if line.strip().startswith("cdk ")]
    assert lines == [
        f"cdk import Canonical-Prod-Data --resource-mapping {prod.outdir}/adopt/Canonical-Prod-Data.json -c env=prod",
        f"cdk import Canonical-Prod-Orchestration --resource-mapping "
        f"{prod.outdir}/adopt/Canonical-Prod-Orchestration.json -c env=prod",
        "cdk deploy --all -c env=prod",
    ]


def test_adopt_refuses_a_secret_scheduled_for_deletion(
    prod: Synth, account: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import adopt

    secrets = account("secretsmanager")
    secrets.create_secret(Name="canonical-prod-db-dagster", SecretString="{}")
    secrets.delete_secret(SecretId="canonical-prod-db-dagster", RecoveryWindowInDays=7)
    assert adopt.main(["--cdk-out", str(prod.outdir), "--region", REGION]) == 1
    assert "restore-secret --secret-id canonical-prod-db-dagster" in capsys.readouterr().err


def test_adopt_needs_a_synthesized_assembly(tmp_path: Path) -> None:
    import adopt

    with pytest.raises(SystemExit):
        adopt.main(["--cdk-out", str(tmp_path)])
    assert (INFRA_DIR / "adopt.py").exists()


def test_prod_redeployed_after_a_destroy_restores_the_final_snapshot(
    tmp_path_factory: pytest.TempPathFactory, lambda_asset: str
) -> None:
    """-c dbSnapshot=<final snapshot>: the instance comes back with the data (and the roles' passwords, which
    the adopted user secrets hold), opened by the kept master secret, which adopt.py can import."""
    from tests.infra.infra_synth import synthesize

    synth = synthesize(
        tmp_path_factory.mktemp("cdk-restore"),
        env="prod",
        lambdaAsset=lambda_asset,
        dbSnapshot="canonical-prod-db-final",
    )
    (db,) = synth.resources("AWS::RDS::DBInstance").values()
    assert db["Properties"]["DBSnapshotIdentifier"] == "canonical-prod-db-final"
    assert (
        db["Properties"]["DBInstanceIdentifier"] == "canonical-prod-db"
        and "MasterUsername" not in db["Properties"]
    )
    (master_id,) = [
        k
        for k, r in synth.resources("AWS::SecretsManager::Secret", "data").items()
        if r["Properties"].get("Name") == "canonical-prod-db-master"
    ]
    assert master_id in json.dumps(db["Properties"]["MasterUserPassword"])
    assert _adoptable(synth)[master_id] == "canonical-prod-db-master"
