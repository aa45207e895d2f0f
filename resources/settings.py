"""Every endpoint and name the platform uses, read from the environment.

One object, so the same code points at the local stack (`make dev`: embedded PostgreSQL on
127.0.0.1:5432, moto on 127.0.0.1:4566) or at real AWS by changing environment variables only.
Dagster-free: the REST app imports it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from resources.clients.metrics import NAMESPACE
from resources.ingest import defaults as ingest_defaults

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    # PostgreSQL. The writer URL is used by ingest and migrations; the read-only role by analytics.
    database_url: str = Field(
        default="postgresql://pipeline_writer:pipeline_writer@127.0.0.1:5432/canonical",
        alias="DATABASE_URL",
    )
    readonly_database_url: str = Field(
        default="postgresql://pipeline_reader:pipeline_reader@127.0.0.1:5432/canonical",
        alias="READONLY_DATABASE_URL",
    )
    # Superuser/owner URL used only to create roles and databases (local bootstrap, `pipeline db migrate`).
    admin_database_url: str = Field(
        default="postgresql://postgres:postgres@127.0.0.1:5432/postgres", alias="ADMIN_DATABASE_URL"
    )
    dagster_database_url: str = Field(
        default="postgresql://postgres:postgres@127.0.0.1:5432/dagster", alias="DAGSTER_DATABASE_URL"
    )

    # AWS. AWS_ENDPOINT_URL unset means real AWS; locally it is the moto server.
    aws_endpoint_url: str | None = Field(default=None, alias="AWS_ENDPOINT_URL")
    aws_region: str = Field(default="us-east-1", alias="AWS_REGION")
    raw_bucket: str = Field(default="canonical-raw", alias="RAW_BUCKET")
    results_bucket: str = Field(default="canonical-results", alias="RESULTS_BUCKET")
    jobs_table: str = Field(default="canonical-jobs", alias="JOBS_TABLE")
    notify_topic: str = Field(default="canonical-job-notices", alias="NOTIFY_TOPIC")
    # Queue fed by the raw bucket's S3 event notifications; empty disables the queue path
    # (the listing reconciler alone then finds new files).
    ingest_queue: str = Field(default="canonical-raw-events", alias="INGEST_QUEUE")

    # Ingest tuning: what each one means and its default are resources/ingest/defaults.py's.
    ingest_max_files_per_run: int = Field(
        default=ingest_defaults.MAX_FILES_PER_RUN, alias="INGEST_MAX_FILES_PER_RUN", ge=1
    )
    ingest_max_bytes_per_run: int = Field(
        default=ingest_defaults.MAX_BYTES_PER_RUN, alias="INGEST_MAX_BYTES_PER_RUN", ge=1
    )
    ingest_reconcile_interval_seconds: float = Field(
        default=ingest_defaults.RECONCILE_INTERVAL_SECONDS, alias="INGEST_RECONCILE_INTERVAL_SECONDS", ge=0
    )
    # A directory or s3://bucket/prefix/ whose *.json source definitions add sources or replace a shipped
    # one of the same name (resources/sources/catalogue.py); unset: the shipped definitions only.
    source_definitions_path: str | None = Field(default=None, alias="SOURCE_DEFINITIONS_PATH")
    # A directory or s3://bucket/prefix/ whose *.json vocabulary files add entries to the shipped
    # vocabularies or override them (resources/vocabularies/catalogue.py); unset: the shipped ones only.
    vocabulary_path: str | None = Field(default=None, alias="VOCABULARY_PATH")
    # Per source system, the record fields that hold the record's own change time, which orders
    # records ahead of the file's export date (JSON, e.g. {"crm": ["updated_at"], "legacy": []}; a
    # source not named uses its definition's change_time fields, [] turns record times off).
    ingest_change_time_fields: dict[str, list[str]] = Field(
        default_factory=dict, alias="INGEST_CHANGE_TIME_FIELDS"
    )
    ingest_freshness_hours: float = Field(
        default=ingest_defaults.FRESHNESS_HOURS, alias="INGEST_FRESHNESS_HOURS", gt=0
    )
    ingest_max_attempts: int = Field(default=ingest_defaults.MAX_ATTEMPTS, alias="INGEST_MAX_ATTEMPTS", ge=1)
    ingest_retry_backoff_seconds: float = Field(
        default=ingest_defaults.RETRY_BACKOFF_SECONDS, alias="INGEST_RETRY_BACKOFF_SECONDS", ge=0
    )
    ingest_snapshot_max_retire_share: float = Field(
        default=ingest_defaults.MAX_RETIRE_SHARE, alias="INGEST_SNAPSHOT_MAX_RETIRE_SHARE", ge=0, le=1
    )
    ingest_max_refused_share: float = Field(
        default=ingest_defaults.MAX_REFUSED_SHARE, alias="INGEST_MAX_REFUSED_SHARE", ge=0, le=1
    )
    ingest_drift_required_min_share: float = Field(
        default=ingest_defaults.DRIFT_REQUIRED_MIN_SHARE, alias="INGEST_DRIFT_REQUIRED_MIN_SHARE", ge=0, le=1
    )

    dagster_url: str = Field(default="http://127.0.0.1:3000", alias="DAGSTER_URL")
    # The Dagster UI's address as people open it (a public or VPN name in front of the internal load
    # balancer): the base of run links in job items and notices. Unset: DAGSTER_URL.
    dagster_public_url: str | None = Field(default=None, alias="DAGSTER_PUBLIC_URL")
    # Which deployment this is (dev, prod, …; "local" under `make dev`): the Environment dimension of the
    # custom metrics, so alarms of two environments in one account watch their own data.
    pipeline_env: str = Field(default="local", alias="PIPELINE_ENV", min_length=1)
    metrics_namespace: str = Field(default=NAMESPACE, alias="METRICS_NAMESPACE", min_length=1)
    local_dir: Path = Field(default=PROJECT_ROOT / ".local", alias="PIPELINE_LOCAL_DIR")
    # Finished Dagster runs older than this are deleted by the run_retention schedule.
    dagster_run_retention_days: int = Field(default=90, alias="DAGSTER_RUN_RETENTION_DAYS", ge=1)


def run_link(settings: Settings, run_id: str) -> str:
    """Where a person opens a run in the Dagster UI."""
    return f"{(settings.dagster_public_url or settings.dagster_url).rstrip('/')}/runs/{run_id}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


class SettingsError(ValueError):
    """Environment variables holding values their settings cannot take."""

    def __init__(self, problems: dict[str, str]):
        self.problems = problems  # variable → why its value is refused (never the value: it may be a secret)
        super().__init__(
            "invalid environment: " + "; ".join(f"{name}: {why}" for name, why in problems.items())
        )


def load_settings() -> Settings:
    """get_settings(), or a SettingsError naming each variable whose value is refused and why."""
    try:
        return get_settings()
    except ValidationError as exc:
        raise SettingsError(
            {".".join(str(p) for p in e["loc"]) or "?": e["msg"] for e in exc.errors()}
        ) from None
