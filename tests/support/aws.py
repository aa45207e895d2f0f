"""AWS fixtures (a pytest plugin, registered in tests/conftest.py): a real moto server on a free port,
reached over HTTP as the platform does.

`moto_server` is per session (per xdist worker); every `aws_settings` gets its own bucket, queue,
table and topic names on it, so tests never see each other's objects or messages.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from pipeline_defs.devstack.moto_server import MotoServer
from pipeline_defs.devstack.processes import free_port
from pipeline_defs.devstack.provisioning import AwsResources, ensure_aws_resources
from resources.settings import Settings, get_settings


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer(port=free_port()) as server:
        yield server


def unique_aws_env(endpoint_url: str, suffix: str | None = None) -> dict[str, str]:
    """Environment naming a fresh set of AWS resources on `endpoint_url`."""
    suffix = suffix or uuid.uuid4().hex[:8]
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "RAW_BUCKET": f"raw-{suffix}",
        "RESULTS_BUCKET": f"results-{suffix}",
        "JOBS_TABLE": f"jobs-{suffix}",
        "NOTIFY_TOPIC": f"notices-{suffix}",
        "INGEST_QUEUE": f"raw-events-{suffix}",
        "PIPELINE_ENV": f"test-{suffix}",  # the Environment dimension: each test reads its own metrics
    }


@contextmanager
def settings_from_env(env: dict[str, str]) -> Iterator[Settings]:
    """For a module-scoped fixture (no `monkeypatch`): `env` in the process environment, Settings read from
    it and its AWS resources created; the environment and the settings cache are restored after."""
    mp = pytest.MonkeyPatch()
    try:
        for k, v in env.items():
            mp.setenv(k, v)
        get_settings.cache_clear()
        settings = Settings()
        ensure_aws_resources(settings)
        yield settings
    finally:
        mp.undo()
        get_settings.cache_clear()


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Environment (and fresh Settings) for unique resource names on the moto server; nothing created."""
    for k, v in unique_aws_env(moto_server.endpoint_url).items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    return Settings()


@pytest.fixture
def aws_settings(aws_env: Settings) -> tuple[Settings, AwsResources]:
    """`aws_env` with its buckets, queue (+ notifications), table and topic created."""
    return aws_env, ensure_aws_resources(aws_env)


def receive_messages(
    sqs: Any, queue_url: str, *, timeout: float = 5.0, expect: int = 1
) -> list[dict[str, Any]]:
    """Message bodies (parsed JSON) from the queue, deleting them; stops at `expect` or `timeout`."""
    bodies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(bodies) < expect and time.monotonic() < deadline:
        resp = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for m in resp.get("Messages", []):
            bodies.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return bodies


def s3_event_records(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `Records[]` of S3 event notifications (test events, which have none, are dropped)."""
    return [r for b in bodies for r in b.get("Records", [])]
