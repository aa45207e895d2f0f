"""Shared fixtures: a real embedded PostgreSQL and a real moto server, per test session (per xdist
worker), reached over TCP exactly as the platform reaches them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import conftest_aws
import psycopg
import pytest

from resources.aws import AwsResources, aws_client, ensure_aws_resources
from resources.local_aws import MotoServer, free_port
from resources.local_postgres import LocalPostgres
from resources.migrate import apply_migrations
from resources.settings import Settings

# The moto server fixture lives with the other AWS fixtures; registered here for every test module.
moto_server = conftest_aws.moto_server
WRITER_PASSWORD = "writer-test"
READER_PASSWORD = "reader-test"


@dataclass(frozen=True)
class PgCluster:
    server: LocalPostgres
    owner_url: str
    writer_url: str
    reader_url: str


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgCluster]:
    # Throwaway cluster: durability off makes every commit cheap; behaviour is otherwise identical.
    server = LocalPostgres(
        tmp_path_factory.mktemp("pg"), port=free_port(),
        settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
    )
    server.start()
    try:
        server.ensure_database("canonical")
        owner = server.url("canonical")
        apply_migrations(owner)
        with psycopg.connect(owner, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE pipeline_writer LOGIN PASSWORD '{WRITER_PASSWORD}'")
            conn.execute(f"ALTER ROLE pipeline_reader LOGIN PASSWORD '{READER_PASSWORD}'")
        yield PgCluster(
            server=server, owner_url=owner,
            writer_url=server.url("canonical", "pipeline_writer", WRITER_PASSWORD),
            reader_url=server.url("canonical", "pipeline_reader", READER_PASSWORD),
        )
    finally:
        try:
            server.stop(mode="immediate")
        except Exception as exc:  # noqa: BLE001 - teardown must not mask the test outcome
            print(f"embedded PostgreSQL did not stop cleanly: {exc}")


def reset_canonical(owner_url: str) -> None:
    """An empty canonical model and ingest registry (earlier tests on this worker leave rows behind)."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(
            """TRUNCATE canonical.entities, canonical.entity_history, canonical.entity_relationships,
                        canonical.time_series_data, ingest.rejected_records, ingest.files, ingest.entity_order
               RESTART IDENTITY CASCADE""")
        conn.execute("UPDATE ingest.data_version SET version = 0")
        # Monthly partitions are created on demand; a later test counts its own.
        for (part,) in conn.execute(
                """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                   WHERE i.inhparent = 'canonical.time_series_data'::regclass
                     AND c.relname <> 'time_series_data_default'""").fetchall():
            conn.execute(f'DROP TABLE canonical."{part}"')


@pytest.fixture
def db(pg: PgCluster) -> PgCluster:
    """The cluster with empty canonical and ingest tables."""
    reset_canonical(pg.owner_url)
    return pg


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
    env = {"DATABASE_URL": db.writer_url, "READONLY_DATABASE_URL": db.reader_url,
           **conftest_aws.unique_aws_env(moto_server.endpoint_url)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from resources.settings import get_settings

    get_settings.cache_clear()
    settings = Settings()
    return Stack(settings=settings, aws=ensure_aws_resources(settings), pg=db)


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    from resources.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


SAMPLES = Path(__file__).resolve().parent.parent / "samples"
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
