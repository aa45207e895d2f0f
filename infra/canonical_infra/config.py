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


def _url(value: object, key: str) -> str:
    text = str(value or "").strip().rstrip("/")
    if text and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text):
        raise ConfigError(f"context {key!r} must be an http(s) URL, got {text!r}")
    return text


def _stage(value: object) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"[A-Za-z0-9_]{1,128}", text):
        raise ConfigError(f"context 'apiStageName' must be letters, digits or _ (it is part of the URL), got {text!r}")
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

    # Network
    vpc_cidr: str = "10.40.0.0/16"
    nat_gateways: int = 1

    # Database (RDS PostgreSQL)
    db_instance_class: str = "t4g.small"
    db_allocated_storage_gib: int = 20
    db_max_allocated_storage_gib: int = 100
    db_multi_az: bool = False
    db_backup_retention_days: int = 7
    db_connections_alarm: int = 150

    # Dagster on ECS Fargate (cpu units / MiB)
    dagster_image: str = ""  # an image URI to use instead of building infra/Dockerfile
    webserver_cpu: int = 512
    webserver_memory: int = 1024
    daemon_cpu: int = 512
    daemon_memory: int = 1024
    run_cpu: int = 1024
    run_memory: int = 2048
    max_concurrent_runs: int = 10

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
            raise ConfigError(f"context 'env' must be lowercase letters/digits (it names resources), got {env_name!r}")
        is_prod = env_name == "prod"
        d = cls()  # defaults
        return cls(
            env_name=env_name,
            account=str(ctx("account", os.environ.get("CDK_DEFAULT_ACCOUNT") or "")) or None,
            region=str(ctx("region", os.environ.get("CDK_DEFAULT_REGION") or "")) or None,
            vpc_cidr=str(ctx("vpcCidr", d.vpc_cidr)),
            nat_gateways=_int(ctx("natGateways", 2 if is_prod else d.nat_gateways), "natGateways", minimum=1),
            db_instance_class=str(ctx("dbInstanceClass", d.db_instance_class)).removeprefix("db."),
            db_allocated_storage_gib=_int(ctx("dbAllocatedStorage", d.db_allocated_storage_gib),
                                          "dbAllocatedStorage", minimum=20),
            db_max_allocated_storage_gib=_int(ctx("dbMaxAllocatedStorage", d.db_max_allocated_storage_gib),
                                              "dbMaxAllocatedStorage", minimum=20),
            db_multi_az=_bool(ctx("dbMultiAz", is_prod), "dbMultiAz"),
            db_backup_retention_days=_int(ctx("dbBackupRetentionDays", 14 if is_prod else d.db_backup_retention_days),
                                          "dbBackupRetentionDays", minimum=1),
            db_connections_alarm=_int(ctx("dbConnectionsAlarm", d.db_connections_alarm), "dbConnectionsAlarm", minimum=1),
            dagster_image=str(ctx("dagsterImage", "")),
            webserver_cpu=_int(ctx("webserverCpu", d.webserver_cpu), "webserverCpu", minimum=256),
            webserver_memory=_int(ctx("webserverMemory", d.webserver_memory), "webserverMemory", minimum=512),
            daemon_cpu=_int(ctx("daemonCpu", d.daemon_cpu), "daemonCpu", minimum=256),
            daemon_memory=_int(ctx("daemonMemory", d.daemon_memory), "daemonMemory", minimum=512),
            run_cpu=_int(ctx("runCpu", d.run_cpu), "runCpu", minimum=256),
            run_memory=_int(ctx("runMemory", d.run_memory), "runMemory", minimum=512),
            max_concurrent_runs=_int(ctx("maxConcurrentRuns", d.max_concurrent_runs), "maxConcurrentRuns", minimum=1),
            lambda_asset=str(ctx("lambdaAsset", "")),
            lambda_runtime=str(ctx("lambdaRuntime", d.lambda_runtime)),
            lambda_memory=_int(ctx("lambdaMemory", d.lambda_memory), "lambdaMemory", minimum=128),
            lambda_reserved_concurrency=_optional_int(ctx("lambdaReservedConcurrency"), "lambdaReservedConcurrency"),
            api_rate_limit=_int(ctx("apiRateLimit", d.api_rate_limit), "apiRateLimit", minimum=1),
            api_burst_limit=_int(ctx("apiBurstLimit", d.api_burst_limit), "apiBurstLimit", minimum=1),
            api_quota_per_day=_int(ctx("apiQuotaPerDay", d.api_quota_per_day), "apiQuotaPerDay", minimum=1),
            cors_origins=_list(ctx("corsOrigins", d.cors_origins), "corsOrigins"),
            api_stage_name=_stage(ctx("apiStageName", d.api_stage_name)),
            keyless_read=_bool(ctx("keylessRead", d.keyless_read), "keylessRead"),
            alert_email=str(ctx("alertEmail", "")),
            job_notice_emails=_list(ctx("jobNoticeEmails", []), "jobNoticeEmails"),
            dagster_public_url=_url(ctx("dagsterPublicUrl", ""), "dagsterPublicUrl"),
            refused_records_alarm=_int(ctx("refusedRecordsAlarm", d.refused_records_alarm),
                                       "refusedRecordsAlarm", minimum=1),
            log_retention_days=_int(ctx("logRetentionDays", 90 if is_prod else d.log_retention_days),
                                    "logRetentionDays", minimum=1),
        )
