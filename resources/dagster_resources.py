"""Dagster resources: the only place assets and sensors get clients from.

Each wraps a dagster-free client module so the REST app and the CLI share the same code paths.
Values come from environment variables (EnvVar: the UI shows the variable name, never a password).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from dagster import ConfigurableResource, EnvVar, InitResourceContext
from pydantic import PrivateAttr

from resources.aws import aws_client
from resources.jobs_store import JobsStore
from resources.metrics import NAMESPACE, put_count
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

    _clients: dict[str, Any] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._clients = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            settings = get_settings().model_copy(
                update={"aws_endpoint_url": self.endpoint_url, "aws_region": self.region_name}
            )
            self._clients[service] = aws_client(service, settings)
        return self._clients[service]

    def put_count(self, name: str, value: float, dimensions: dict[str, str] | None = None) -> str | None:
        """A custom CloudWatch metric of this environment (resources.metrics.put_count)."""
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


def _env(name: str, default: str | None) -> Any:
    """EnvVar when the variable is set (the UI shows its name, not its value), else the default."""
    return EnvVar(name) if os.environ.get(name) else default


def build_resources(settings: Settings | None = None) -> dict[str, Any]:
    s = settings or get_settings()
    return {
        "postgres": PostgresResource(database_url=_env("DATABASE_URL", s.database_url)),
        "readonly_postgres": PostgresResource(database_url=_env("READONLY_DATABASE_URL", s.readonly_database_url)),
        "aws": AwsResource(
            region_name=_env("AWS_REGION", s.aws_region),
            endpoint_url=_env("AWS_ENDPOINT_URL", s.aws_endpoint_url),
            raw_bucket=_env("RAW_BUCKET", s.raw_bucket),
            ingest_queue=_env("INGEST_QUEUE", s.ingest_queue),
            results_bucket=_env("RESULTS_BUCKET", s.results_bucket),
            jobs_table=_env("JOBS_TABLE", s.jobs_table),
            notify_topic=_env("NOTIFY_TOPIC", s.notify_topic),
            environment=_env("PIPELINE_ENV", s.pipeline_env),
            metrics_namespace=_env("METRICS_NAMESPACE", s.metrics_namespace),
        ),
    }
