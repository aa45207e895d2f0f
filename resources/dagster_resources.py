"""Dagster resources: the only place assets and sensors get clients and configuration from.

Each wraps a dagster-free client module so the REST app and the CLI share the same code paths.
Each owns its configuration as fields: a test or another deployment builds the resource with the
values it wants; nothing inside an asset or sensor reads the environment. `build_resources()` fills
the fields from environment variables (EnvVar where Dagster supports it: the UI shows the variable's
name, never a password; numbers and lists as the values Settings validated).

The code location's resources, by what they serve: `postgres` (the writer) and `readonly_postgres` (the
reader, for analytics); `raw_bucket` (ingest: the bucket and its event queue); `job_tracking` (the jobs
table, the results bucket, the notices topic, run links); `metrics` (CloudWatch); `ingest_tuning`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from dagster import ConfigurableResource, EnvVar, InitResourceContext
from pydantic import BaseModel, Field, PrivateAttr

from resources.analytics.runner import Result
from resources.analytics.runner import run_operation as run_catalogue_operation
from resources.clients.aws import boto3_client
from resources.clients.jobs_store import JobsStore
from resources.clients.metrics import put_count
from resources.ingest import defaults as ingest_defaults
from resources.settings import Settings, get_settings


class PostgresResource(ConfigurableResource):  # type: ignore[type-arg]  # a plain resource: dagster reads the generic argument only for IO managers
    """The canonical database as one role (the writer for ingest, the reader for analytics): connections,
    and catalogue operations run on it."""

    database_url: str

    @contextmanager
    def connection(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(
            self.database_url, autocommit=autocommit, application_name="canonical-pipeline-dagster"
        ) as conn:
            yield conn

    def run_operation(
        self,
        name: str,
        params: Mapping[str, Any] | BaseModel | None = None,
        *,
        timeout_s: float | None = None,
        max_rows: int | None = None,
    ) -> Result:
        """One analytics catalogue operation on a connection of its own (resources.analytics.runner), which
        reports a connection that cannot be made as a transient error, worth a retry."""
        return run_catalogue_operation(
            self.database_url, name, params, timeout_s=timeout_s, max_rows=max_rows
        )


class AwsClientsResource(ConfigurableResource):  # type: ignore[type-arg]  # a plain resource: dagster reads the generic argument only for IO managers
    """What every AWS-facing resource shares: the region and endpoint, and its boto3 clients, built once per
    resource instance. Not a resource of the code location itself."""

    region_name: str
    endpoint_url: str | None = None  # None: real AWS; locally and in tests, the moto server

    _clients: dict[str, Any] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._clients = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3_client(service, self.region_name, self.endpoint_url)
        return self._clients[service]


class RawBucketResource(AwsClientsResource):
    """Where raw files land: the bucket, and the queue its S3 event notifications feed (ingest)."""

    bucket: str
    event_queue: str = ""  # a queue name or URL; empty: no queue, the listing alone finds new files

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def sqs(self) -> Any:
        return self.client("sqs")

    def queue_url(self) -> str:
        q = self.event_queue
        return q if q.startswith("http") else str(self.sqs.get_queue_url(QueueName=q)["QueueUrl"])


class JobTrackingResource(AwsClientsResource):
    """What a job leaves for the REST API and its callers: its item in the jobs table, its result in the
    results bucket, the notice on the topic, and the link to its run in the Dagster UI."""

    jobs_table: str
    results_bucket: str
    notify_topic: str  # a topic name, or its ARN on AWS
    # The Dagster UI's address as people open it (DAGSTER_PUBLIC_URL, else DAGSTER_URL).
    dagster_url: str

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def sns(self) -> Any:
        return self.client("sns")

    def jobs_store(self) -> JobsStore:
        return JobsStore(self.client("dynamodb"), self.jobs_table)

    def topic_arn(self) -> str:
        if self.notify_topic.startswith("arn:"):
            return self.notify_topic
        # create_topic is idempotent and returns the ARN; on AWS NOTIFY_TOPIC is the ARN itself.
        return str(self.sns.create_topic(Name=self.notify_topic)["TopicArn"])


class MetricsResource(AwsClientsResource):
    """The custom CloudWatch metrics the alarms watch, in this environment's series."""

    environment: str  # the Environment dimension (PIPELINE_ENV)
    namespace: str

    def put_count(self, name: str, value: float, dimensions: dict[str, str] | None = None) -> str | None:
        """resources.clients.metrics.put_count: None when sent, else why it was not."""
        return put_count(
            self.client("cloudwatch"),
            name,
            value,
            environment=self.environment,
            namespace=self.namespace,
            dimensions=dimensions,
        )


class IngestTuningResource(ConfigurableResource):  # type: ignore[type-arg]  # a plain resource: dagster reads the generic argument only for IO managers
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
    max_retire_share: float = ingest_defaults.MAX_RETIRE_SHARE


def _env(name: str, default: Any, environ: Mapping[str, str], *, integer: bool = False) -> Any:
    """EnvVar when the variable is set (the UI shows its name, not its value), else the default."""
    if not environ.get(name):
        return default
    return EnvVar.int(name) if integer else EnvVar(name)


def build_resources(
    settings: Settings | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The code location's resources from `settings` (default: the environment's). Variables set in
    `environ` (default: this process's) become EnvVars; pass `{}` for plain values (tests)."""
    s = settings or get_settings()
    env = os.environ if environ is None else environ
    aws = {
        "region_name": _env("AWS_REGION", s.aws_region, env),
        "endpoint_url": _env("AWS_ENDPOINT_URL", s.aws_endpoint_url, env),
    }
    return {
        "postgres": PostgresResource(database_url=_env("DATABASE_URL", s.database_url, env)),
        "readonly_postgres": PostgresResource(
            database_url=_env("READONLY_DATABASE_URL", s.readonly_database_url, env)
        ),
        "raw_bucket": RawBucketResource(
            **aws,
            bucket=_env("RAW_BUCKET", s.raw_bucket, env),
            event_queue=_env("INGEST_QUEUE", s.ingest_queue, env),
        ),
        "job_tracking": JobTrackingResource(
            **aws,
            jobs_table=_env("JOBS_TABLE", s.jobs_table, env),
            results_bucket=_env("RESULTS_BUCKET", s.results_bucket, env),
            notify_topic=_env("NOTIFY_TOPIC", s.notify_topic, env),
            dagster_url=(
                _env("DAGSTER_PUBLIC_URL", s.dagster_public_url, env)
                if s.dagster_public_url
                else _env("DAGSTER_URL", s.dagster_url, env)
            ),
        ),
        "metrics": MetricsResource(
            **aws,
            environment=_env("PIPELINE_ENV", s.pipeline_env, env),
            namespace=_env("METRICS_NAMESPACE", s.metrics_namespace, env),
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
            max_retire_share=s.ingest_snapshot_max_retire_share,
        ),
    }
