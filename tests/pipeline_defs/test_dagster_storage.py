"""Dagster's instance storage on PostgreSQL (dagster-postgres), as `make dev` and ECS configure it."""

import psycopg
import pytest
from dagster import job, op
from dagster._core.test_utils import instance_for_test

pytestmark = pytest.mark.integration


@op
def hello() -> int:
    return 1


@job
def probe_job() -> None:
    hello()


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg2"])
def test_runs_and_events_are_stored_with_a_plain_or_psycopg2_url(pg, tmp_path, scheme):
    dbname = f"dagster_{scheme.replace('+', '_')}"
    pg.server.ensure_database(dbname)
    url = pg.server.url(dbname).replace("postgresql://", f"{scheme}://", 1)
    overrides = {"storage": {"postgres": {"postgres_url": url}}, "telemetry": {"enabled": False}}
    with instance_for_test(overrides=overrides, temp_dir=str(tmp_path)) as instance:
        result = probe_job.execute_in_process(instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id).is_success
        assert instance.get_records_for_run(result.run_id).records  # event writes went through
    with psycopg.connect(pg.server.url(dbname)) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
