"""The deployment's parameters, read once from CDK context (`cdk.json` defaults, `-c key=value` overrides).

Every knob an operator may turn lives here with its default and its reason; the stacks take a
`Config` and never read context themselves. Values given on the command line arrive as strings,
so each is coerced to its type here.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # kept import-light: the tests read this module without starting the CDK's runtime
    from constructs import Node

INFRA_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = INFRA_DIR.parent
# The Lambda package `make lambda-package` builds (API issue): the zip is preferred, the folder accepted.
DEFAULT_LAMBDA_ASSETS = (REPO_ROOT / "dist" / "lambda.zip", REPO_ROOT / "dist" / "lambda")

PROJECT = "canonical"
# Deployment profiles: `standard` (the defaults below) and `dev-lean`, the cheapest platform that still
# runs every part (infra/README.md, "Monthly cost"): a NAT instance instead of a NAT gateway, Fargate
# Spot, the smallest task and database sizes, no internal load balancer (the API reaches the webserver
# by its service-discovery name). Not for prod: Spot tasks can be stopped at two minutes' notice.
PROFILES = ("standard", "dev-lean")
UI_AUTH = ("none", "cognito", "oidc")


class ConfigError(ValueError):
    """A context value is missing or malformed; the message says which and how to fix it."""


def _bool(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise ConfigError(f"context {key!r} must be true or false, got {value!r}")


def _int(value: object, key: str, *, minimum: int = 0) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ConfigError(f"context {key!r} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"context {key!r} must be at least {minimum}, got {number}")
    return number


def _optional_int(value: object, key: str) -> int | None:
    """None when unset, empty or "none"; else an integer of at least 1."""
    if value is None or str(value).strip().lower() in ("", "none", "null"):
        return None
    return _int(value, key, minimum=1)


def _url(value: object, key: str, *, exact: bool = False) -> str:
    """An http(s) URL; a trailing slash is dropped (a base to append paths to) unless `exact`: an OIDC
    issuer must match the tokens' `iss` claim character for character, slash included."""
    text = str(value or "").strip()
    if not exact:
        text = text.rstrip("/")
    if text and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text):
        raise ConfigError(f"context {key!r} must be an http(s) URL, got {text!r}")
    return text


def _choice(value: object, key: str, allowed: tuple[str, ...]) -> str:
    text = str(value).strip()
    if text not in allowed:
        raise ConfigError(f"context {key!r} must be one of {', '.join(allowed)}, got {text!r}")
    return text


def _stage(value: object) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"[A-Za-z0-9_]{1,128}", text):
        raise ConfigError(
            f"context 'apiStageName' must be letters, digits or _ (it is part of the URL), got {text!r}"
        )
    return text


def _list(value: object, key: str) -> list[str]:
    """A JSON list, or a comma-separated string (`-c corsOrigins=https://a.example,https://b.example`)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"context {key!r} is not valid JSON: {exc}") from None
        return [str(v) for v in parsed]
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class Config:
    env_name: str = "dev"
    account: str | None = None
    region: str | None = None

    profile: str = "standard"

    # Network
    vpc_cidr: str = "10.40.0.0/16"
    nat_gateways: int = 1
    # "gateway" (managed NAT gateways) or "instance" (one t4g.nano NAT instance: dev-lean).
    nat_provider: str = "gateway"

    # Database (RDS PostgreSQL)
    db_instance_class: str = "t4g.small"
    db_allocated_storage_gib: int = 20
    db_max_allocated_storage_gib: int = 100
    db_multi_az: bool = False
    db_backup_retention_days: int = 7
    db_connections_alarm: int = 150
    # Create the instance from this snapshot (the final one `cdk destroy` left): for a redeploy of prod
    # after a destroy. Keep it set for that deployment from then on: CloudFormation replaces an instance
    # whose DBSnapshotIdentifier is removed.
    db_snapshot: str = ""

    # Dagster on ECS Fargate (cpu units / MiB)
    dagster_image: str = ""  # an image URI to use instead of building infra/Dockerfile (its `code` target)
    dagster_system_image: str = (
        ""  # the same for its `system` target (webserver, daemon); default: dagster_image
    )
    webserver_cpu: int = 512
    webserver_memory: int = 1024
    daemon_cpu: int = 512
    daemon_memory: int = 1024
    run_cpu: int = 1024
    run_memory: int = 2048
    code_server_cpu: int = 256
    code_server_memory: int = 1024
    webserver_count: int = 1
    max_concurrent_runs: int = 10
    # Fargate Spot for the services and run tasks (dev-lean): about 70% cheaper, interruptible.
    fargate_spot: bool = False
    # The internal load balancer in front of the webserver, the API's way to GraphQL. Without it
    # (dev-lean) the API calls the webserver by its service-discovery name.
    internal_alb: bool = True

    # Reaching the Dagster UI from a browser: "none" (ECS Exec port forwarding only), "cognito" (a user
    # pool this app creates) or "oidc" (your identity provider), both on an internet-facing HTTPS load
    # balancer that authenticates every request before it reaches the webserver.
    ui_auth: str = "none"
    ui_domain_name: str = ""  # e.g. dagster.example.com: a DNS name you point at the load balancer
    ui_certificate_arn: str = ""  # an ACM certificate for ui_domain_name, in the deployment's region
    ui_allowed_cidrs: list[str] = field(default_factory=lambda: ["0.0.0.0/0"])
    ui_oidc_issuer: str = ""
    ui_oidc_authorization_endpoint: str = ""
    ui_oidc_token_endpoint: str = ""
    ui_oidc_user_info_endpoint: str = ""
    ui_oidc_client_id: str = ""
    ui_oidc_client_secret_name: str = ""  # a Secrets Manager secret holding the client secret (plain text)

    # API (Lambda + API Gateway)
    lambda_asset: str = ""
    lambda_runtime: str = "python3.12"
    lambda_memory: int = 1024
    # Reserved concurrent executions of the API function; None (the default) reserves none: a new account's
    # concurrency quota is 10, and a reservation must leave 10 unreserved, so any reservation fails there.
    lambda_reserved_concurrency: int | None = None
    api_rate_limit: int = 50
    api_burst_limit: int = 100
    api_quota_per_day: int = 100_000
    # "*" as the old API answered, unless configured (-c corsOrigins=https://a.example; [] turns CORS off).
    cors_origins: list[str] = field(default_factory=lambda: ["*"])
    # The stage in the API's URL: the old API's clients call .../prod/analytics.
    api_stage_name: str = "v1"
    # GET requests (and synchronous POST /analytics) without an API key, answered with the `read` scope:
    # for the old API's clients, which sent none. Keys stay required for jobs, SQL and everything else.
    keyless_read: bool = False

    # Who hears of jobs: e-mail addresses subscribed to the job-notices topic (the old system promised
    # e-mail on job status), and the Dagster UI's address as people reach it, used in the notices' run
    # links (default: the internal load balancer, which only the VPC can open).
    job_notice_emails: list[str] = field(default_factory=list)
    dagster_public_url: str = ""

    # Monitoring
    alert_email: str = ""
    refused_records_alarm: int = 1000
    log_retention_days: int = 30

    @property
    def is_prod(self) -> bool:
        return self.env_name == "prod"

    @property
    def is_lean(self) -> bool:
        return self.profile == "dev-lean"

    @property
    def public_ui_url(self) -> str:
        """The Dagster UI's address for people: `dagsterPublicUrl`, else the authenticated UI's domain."""
        if self.dagster_public_url:
            return self.dagster_public_url
        return f"https://{self.ui_domain_name}" if self.ui_auth != "none" else ""

    def name(self, suffix: str) -> str:
        """A resource or stack name scoped to this deployment: `canonical-dev-<suffix>`."""
        return f"{PROJECT}-{self.env_name}-{suffix}"

    def bucket_name(self, purpose: str) -> str:
        """Bucket names are global: `canonical-dev-raw-<account>-<region>`."""
        return f"{PROJECT}-{self.env_name}-{purpose}-{self.account}-{self.region}"

    def log_group_name(self, purpose: str) -> str:
        return f"/{PROJECT}/{self.env_name}/{purpose}"

    @property
    def stack_prefix(self) -> str:
        return f"Canonical-{self.env_name.capitalize()}"

    @property
    def metrics_namespace(self) -> str:
        """Namespace of the custom metrics the platform's code emits (sensors/job_status.py; README)."""
        return "CanonicalPipeline"

    def lambda_asset_path(self) -> Path:
        """The API Lambda package: the `lambdaAsset` context value, else what `make lambda-package` built."""
        if self.lambda_asset:
            path = Path(self.lambda_asset)
            if not path.is_absolute():
                path = (INFRA_DIR / path).resolve()
            if not path.exists():
                raise ConfigError(f"lambdaAsset {str(path)!r} does not exist")
            return path
        for candidate in DEFAULT_LAMBDA_ASSETS:
            if candidate.exists():
                return candidate
        raise ConfigError(
            "the API Lambda package is missing: run `make lambda-package` at the repository root "
            "(it builds dist/lambda.zip), or pass -c lambdaAsset=<folder or zip>"
        )

    @classmethod
    def from_context(cls, node: Node) -> Config:
        def ctx(key: str, default: object = None) -> object:
            value = node.try_get_context(key)
            return default if value is None else value

        env_name = str(ctx("env", "dev")).strip()
        if not env_name.isalnum() or not env_name.islower():
            raise ConfigError(
                f"context 'env' must be lowercase letters/digits (it names resources), got {env_name!r}"
            )
        is_prod = env_name == "prod"
        profile = str(ctx("profile", "standard")).strip()
        if profile not in PROFILES:
            raise ConfigError(f"context 'profile' must be one of {', '.join(PROFILES)}, got {profile!r}")
        lean = profile == "dev-lean"
        if lean and is_prod:
            raise ConfigError(
                "profile 'dev-lean' is not for prod: its Spot tasks and NAT instance can stop "
                "at any time; deploy prod with the standard profile"
            )
        d = cls()  # defaults
        small = 256 if lean else 512
        config = cls(
            env_name=env_name,
            profile=profile,
            account=str(ctx("account", os.environ.get("CDK_DEFAULT_ACCOUNT") or "")) or None,
            region=str(ctx("region", os.environ.get("CDK_DEFAULT_REGION") or "")) or None,
            vpc_cidr=str(ctx("vpcCidr", d.vpc_cidr)),
            nat_gateways=_int(ctx("natGateways", 2 if is_prod else d.nat_gateways), "natGateways", minimum=1),
            nat_provider=_choice(
                ctx("natProvider", "instance" if lean else d.nat_provider),
                "natProvider",
                ("gateway", "instance"),
            ),
            db_instance_class=str(
                ctx("dbInstanceClass", "t4g.micro" if lean else d.db_instance_class)
            ).removeprefix("db."),
            db_allocated_storage_gib=_int(
                ctx("dbAllocatedStorage", d.db_allocated_storage_gib), "dbAllocatedStorage", minimum=20
            ),
            db_max_allocated_storage_gib=_int(
                ctx("dbMaxAllocatedStorage", d.db_max_allocated_storage_gib),
                "dbMaxAllocatedStorage",
                minimum=20,
            ),
            db_multi_az=_bool(ctx("dbMultiAz", is_prod), "dbMultiAz"),
            db_backup_retention_days=_int(
                ctx("dbBackupRetentionDays", 14 if is_prod else d.db_backup_retention_days),
                "dbBackupRetentionDays",
                minimum=1,
            ),
            db_snapshot=str(ctx("dbSnapshot", "")).strip(),
            db_connections_alarm=_int(
                ctx("dbConnectionsAlarm", d.db_connections_alarm), "dbConnectionsAlarm", minimum=1
            ),
            dagster_image=str(ctx("dagsterImage", "")),
            dagster_system_image=str(ctx("dagsterSystemImage", "")),
            webserver_cpu=_int(ctx("webserverCpu", small), "webserverCpu", minimum=256),
            webserver_memory=_int(ctx("webserverMemory", d.webserver_memory), "webserverMemory", minimum=512),
            daemon_cpu=_int(ctx("daemonCpu", small), "daemonCpu", minimum=256),
            daemon_memory=_int(ctx("daemonMemory", d.daemon_memory), "daemonMemory", minimum=512),
            run_cpu=_int(ctx("runCpu", d.run_cpu), "runCpu", minimum=256),
            run_memory=_int(ctx("runMemory", d.run_memory), "runMemory", minimum=512),
            code_server_cpu=_int(ctx("codeServerCpu", d.code_server_cpu), "codeServerCpu", minimum=256),
            code_server_memory=_int(
                ctx("codeServerMemory", d.code_server_memory), "codeServerMemory", minimum=512
            ),
            # Two webservers in prod: a task replaced or lost leaves the UI and the API's GraphQL up.
            webserver_count=_int(
                ctx("webserverCount", 2 if is_prod else d.webserver_count), "webserverCount", minimum=1
            ),
            fargate_spot=_bool(ctx("fargateSpot", lean), "fargateSpot"),
            internal_alb=_bool(ctx("internalAlb", not lean), "internalAlb"),
            ui_auth=_choice(ctx("uiAuth", d.ui_auth), "uiAuth", UI_AUTH),
            ui_domain_name=str(ctx("uiDomainName", "")).strip().lower(),
            ui_certificate_arn=str(ctx("uiCertificateArn", "")).strip(),
            ui_allowed_cidrs=_list(ctx("uiAllowedCidrs", d.ui_allowed_cidrs), "uiAllowedCidrs"),
            ui_oidc_issuer=_url(ctx("uiOidcIssuer", ""), "uiOidcIssuer", exact=True),
            ui_oidc_authorization_endpoint=_url(
                ctx("uiOidcAuthorizationEndpoint", ""), "uiOidcAuthorizationEndpoint", exact=True
            ),
            ui_oidc_token_endpoint=_url(ctx("uiOidcTokenEndpoint", ""), "uiOidcTokenEndpoint", exact=True),
            ui_oidc_user_info_endpoint=_url(
                ctx("uiOidcUserInfoEndpoint", ""), "uiOidcUserInfoEndpoint", exact=True
            ),
            ui_oidc_client_id=str(ctx("uiOidcClientId", "")).strip(),
            ui_oidc_client_secret_name=str(ctx("uiOidcClientSecretName", "")).strip(),
            max_concurrent_runs=_int(
                ctx("maxConcurrentRuns", d.max_concurrent_runs), "maxConcurrentRuns", minimum=1
            ),
            lambda_asset=str(ctx("lambdaAsset", "")),
            lambda_runtime=str(ctx("lambdaRuntime", d.lambda_runtime)),
            lambda_memory=_int(ctx("lambdaMemory", d.lambda_memory), "lambdaMemory", minimum=128),
            lambda_reserved_concurrency=_optional_int(
                ctx("lambdaReservedConcurrency"), "lambdaReservedConcurrency"
            ),
            api_rate_limit=_int(ctx("apiRateLimit", d.api_rate_limit), "apiRateLimit", minimum=1),
            api_burst_limit=_int(ctx("apiBurstLimit", d.api_burst_limit), "apiBurstLimit", minimum=1),
            api_quota_per_day=_int(ctx("apiQuotaPerDay", d.api_quota_per_day), "apiQuotaPerDay", minimum=1),
            cors_origins=_list(ctx("corsOrigins", d.cors_origins), "corsOrigins"),
            api_stage_name=_stage(ctx("apiStageName", d.api_stage_name)),
            keyless_read=_bool(ctx("keylessRead", d.keyless_read), "keylessRead"),
            alert_email=str(ctx("alertEmail", "")),
            job_notice_emails=_list(ctx("jobNoticeEmails", []), "jobNoticeEmails"),
            dagster_public_url=_url(ctx("dagsterPublicUrl", ""), "dagsterPublicUrl"),
            refused_records_alarm=_int(
                ctx("refusedRecordsAlarm", d.refused_records_alarm), "refusedRecordsAlarm", minimum=1
            ),
            log_retention_days=_int(
                ctx("logRetentionDays", 90 if is_prod else d.log_retention_days),
                "logRetentionDays",
                minimum=1,
            ),
        )
        config.check_ui_auth()
        return config

    def check_ui_auth(self) -> None:
        """The authenticated UI needs a name and a certificate (ALB authentication works on HTTPS only),
        and OIDC needs every endpoint of the provider: refused here, with what is missing, not at deploy."""
        if self.ui_auth == "none":
            return
        needed = {"uiDomainName": self.ui_domain_name, "uiCertificateArn": self.ui_certificate_arn}
        if self.ui_auth == "oidc":
            needed |= {
                "uiOidcIssuer": self.ui_oidc_issuer,
                "uiOidcAuthorizationEndpoint": self.ui_oidc_authorization_endpoint,
                "uiOidcTokenEndpoint": self.ui_oidc_token_endpoint,
                "uiOidcUserInfoEndpoint": self.ui_oidc_user_info_endpoint,
                "uiOidcClientId": self.ui_oidc_client_id,
                "uiOidcClientSecretName": self.ui_oidc_client_secret_name,
            }
        missing = [key for key, value in needed.items() if not value]
        if missing:
            raise ConfigError(
                f'uiAuth={self.ui_auth} needs {", ".join(missing)} (infra/README.md, "The Dagster UI")'
            )
        if not re.fullmatch(r"arn:aws[\w-]*:acm:[\w-]+:\d{12}:certificate/[\w-]+", self.ui_certificate_arn):
            raise ConfigError(
                f"uiCertificateArn must be an ACM certificate ARN, got {self.ui_certificate_arn!r}"
            )
        if not self.ui_allowed_cidrs:
            raise ConfigError(
                "uiAllowedCidrs is empty: nobody could reach the UI; leave it unset for any address"
            )
