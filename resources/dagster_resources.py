"""Dagster resources: the only place assets and sensors get clients and configuration from.

Each wraps a dagster-free client module so the REST app and the CLI share the same code paths.
Each owns its configuration as fields: a test or another deployment builds the resource with the
values it wants; nothing inside an asset or sensor reads the environment. `build_resources()` fills
the fields from environment variables (EnvVar where Dagster supports it: the UI shows the variable's
name, never a password; numbers and lists as the values Settings validated).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from dagster import ConfigurableResource, EnvVar, InitResourceContext
from pydantic import Field, PrivateAttr

from resources.clients.aws import boto3_client
from resources.clients.jobs_store import JobsStore
from resources.clients.metrics import NAMESPACE, put_count
from resources.ingest import defaults as ingest_defaults
from resources.settings import Settings, get_settings


class PostgresResource(ConfigurableResource):
    """Connections to the canonical database (the writer role for ingest, the reader for analytics)."""

    database_url: str

    @contextmanager
    def connection(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        with psycopg.connect(self.database_url, autocommit=autocommit,
                             application_name="canonical-pipeline-dagster") as conn:
            yield conn


class AwsResource(ConfigurableResource):
    """boto3 clients for S3, SQS, DynamoDB and SNS, built once per resource instance."""

    region_name: str = "us-east-1"
    endpoint_url: str | None = None
    raw_bucket: str
    ingest_queue: str = ""
    results_bucket: str = "canonical-results"
    jobs_table: str = "canonical-jobs"
    notify_topic: str = "canonical-job-notices"  # a topic name, or its ARN on AWS
    environment: str = "local"  # the Environment dimension of the custom metrics (PIPELINE_ENV)
    metrics_namespace: str = NAMESPACE
    # The Dagster UI's address as people open it: the run links in job items and notices
    # (DAGSTER_PUBLIC_URL, else DAGSTER_URL).
    dagster_url: str = "http://127.0.0.1:3000"

    _clients: dict[str, Any] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._clients = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3_client(service, self.region_name, self.endpoint_url)
        return self._clients[service]

    def put_count(self, name: str, value: float, dimensions: dict[str, str] | None = None) -> str | None:
        """A custom CloudWatch metric of this environment (resources.clients.metrics.put_count)."""
        return put_count(self.client("cloudwatch"), name, value, environment=self.environment,
                         namespace=self.metrics_namespace, dimensions=dimensions)

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def sqs(self) -> Any:
        return self.client("sqs")

    def jobs_store(self) -> JobsStore:
        return JobsStore(self.client("dynamodb"), self.jobs_table)

    def topic_arn(self) -> str:
        if self.notify_topic.startswith("arn:"):
            return self.notify_topic
        # create_topic is idempotent and returns the ARN; on AWS NOTIFY_TOPIC is the ARN itself.
        return str(self.client("sns").create_topic(Name=self.notify_topic)["TopicArn"])


class IngestTuningResource(ConfigurableResource):
    """How ingest batches files, orders records and judges a load (the INGEST_* variables; their meaning
    and defaults are resources/ingest/defaults.py's): the landing sensor and the ingest assets read it."""

    max_files_per_run: int = ingest_defaults.MAX_FILES_PER_RUN
    max_bytes_per_run: int = ingest_defaults.MAX_BYTES_PER_RUN
    reconcile_interval_seconds: float = ingest_defaults.RECONCILE_INTERVAL_SECONDS
    # Per source system, the record fields holding the record's own change time ({} = the mapping's
    # defaults for every source; [] for a source turns record times off).
    change_time_fields: dict[str, list[str]] = Field(default_factory=dict)
    freshness_hours: float = ingest_defaults.FRESHNESS_HOURS
    max_refused_share: float = ingest_defaults.MAX_REFUSED_SHARE
    max_attempts: int = ingest_defaults.MAX_ATTEMPTS
    retry_backoff_seconds: float = ingest_defaults.RETRY_BACKOFF_SECONDS


def _env(name: str, default: Any, environ: Mapping[str, str], *, integer: bool = False) -> Any:
    """EnvVar when the variable is set (the UI shows its name, not its value), else the default."""
    if not environ.get(name):
        return default
    return EnvVar.int(name) if integer else EnvVar(name)


def build_resources(settings: Settings | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The code location's resources from `settings` (default: the environment's). Variables set in
    `environ` (default: this process's) become EnvVars; pass `{}` for plain values (tests)."""
    s = settings or get_settings()
    env = os.environ if environ is None else environ
    return {
        "postgres": PostgresResource(database_url=_env("DATABASE_URL", s.database_url, env)),
        "readonly_postgres": PostgresResource(
            database_url=_env("READONLY_DATABASE_URL", s.readonly_database_url, env)),
        "aws": AwsResource(
            region_name=_env("AWS_REGION", s.aws_region, env),
            endpoint_url=_env("AWS_ENDPOINT_URL", s.aws_endpoint_url, env),
            raw_bucket=_env("RAW_BUCKET", s.raw_bucket, env),
            ingest_queue=_env("INGEST_QUEUE", s.ingest_queue, env),
            results_bucket=_env("RESULTS_BUCKET", s.results_bucket, env),
            jobs_table=_env("JOBS_TABLE", s.jobs_table, env),
            notify_topic=_env("NOTIFY_TOPIC", s.notify_topic, env),
            environment=_env("PIPELINE_ENV", s.pipeline_env, env),
            metrics_namespace=_env("METRICS_NAMESPACE", s.metrics_namespace, env),
            dagster_url=(_env("DAGSTER_PUBLIC_URL", s.dagster_public_url, env) if s.dagster_public_url
                         else _env("DAGSTER_URL", s.dagster_url, env)),
        ),
        "ingest_tuning": IngestTuningResource(
            max_files_per_run=_env("INGEST_MAX_FILES_PER_RUN", s.ingest_max_files_per_run, env, integer=True),
            max_bytes_per_run=_env("INGEST_MAX_BYTES_PER_RUN", s.ingest_max_bytes_per_run, env, integer=True),
            reconcile_interval_seconds=s.ingest_reconcile_interval_seconds,
            change_time_fields=s.ingest_change_time_fields,
            freshness_hours=s.ingest_freshness_hours,
            max_refused_share=s.ingest_max_refused_share,
            max_attempts=s.ingest_max_attempts,
            retry_backoff_seconds=s.ingest_retry_backoff_seconds,
        ),
    }
