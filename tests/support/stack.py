"""One test's view of the platform: the session's PostgreSQL (emptied) and its own buckets, queue,
table and topic on the session's moto server, with the process environment pointing at them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline_defs.devstack.moto_server import MotoServer
from pipeline_defs.devstack.provisioning import AwsResources, ensure_aws_resources
from resources.clients.aws import aws_client
from resources.settings import Settings, get_settings
from tests.support.aws import unique_aws_env
from tests.support.postgres import PgCluster

SAMPLES = Path(__file__).resolve().parent.parent.parent / "samples"


@dataclass(frozen=True)
class Stack:
    """One test's view of the platform: its own buckets, queue, table and topic on the shared moto server."""

    settings: Settings
    aws: AwsResources
    pg: PgCluster

    def client(self, service: str) -> Any:
        return aws_client(service, self.settings)


@pytest.fixture
def stack(db: PgCluster, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Stack:
    env = {
        "DATABASE_URL": db.writer_url,
        "READONLY_DATABASE_URL": db.reader_url,
        **unique_aws_env(moto_server.endpoint_url),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    settings = Settings()
    return Stack(settings=settings, aws=ensure_aws_resources(settings), pg=db)
