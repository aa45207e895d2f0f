"""A real embedded PostgreSQL per test session (per xdist worker), reached over TCP exactly as the
platform reaches it, with the migrations applied and the writer and reader roles able to log in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from pipeline_defs.devstack.postgres import LocalPostgres
from pipeline_defs.devstack.processes import free_port
from resources.schema.migrate import apply_migrations

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
        tmp_path_factory.mktemp("pg"),
        port=free_port(),
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
            server=server,
            owner_url=owner,
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
               RESTART IDENTITY CASCADE"""
        )
        conn.execute("UPDATE ingest.data_version SET version = 0")
        conn.execute(
            """TRUNCATE golden.entities, golden.members, golden.history, golden.pairs, golden.decisions,
                        golden.runs, golden.models RESTART IDENTITY"""
        )
        conn.execute("ALTER SEQUENCE golden.golden_id_seq RESTART")
        # Monthly partitions are created on demand; a later test counts its own.
        for (part,) in conn.execute(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                   WHERE i.inhparent = 'canonical.time_series_data'::regclass
                     AND c.relname <> 'time_series_data_default'"""
        ).fetchall():
            conn.execute(f'DROP TABLE canonical."{part}"')


@pytest.fixture
def db(pg: PgCluster) -> PgCluster:
    """The cluster with empty canonical and ingest tables."""
    reset_canonical(pg.owner_url)
    return pg
