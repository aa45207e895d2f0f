"""Nothing waits forever: a `loading` file is alive only while its loader's session holds the file's lock;
a lost loader's file is failed and retried by itself (bounded, with backoff), its run failed once silent;
a live loader is never touched; data failures wait for a person."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from dagster import DagsterRunStatus, build_sensor_context, instance_for_test
from dagster._core.test_utils import create_run_for_test

from resources.ingest.registry import (
    LOADER_LOST,
    attempts_of,
    fail_lost_loaders,
    get_files,
    request_reprocess,
    start_loading,
)
from resources.ingest.runner import INTERRUPTED, ingest_file
from sensors.landing import LandingCursor, TickLimits, landing_tick
from tests.support.ingest import Driver, RawFiles, live_loader, q, q1, resources_for

pytestmark = pytest.mark.integration

GOOD = {"records": [{"id": 1, "name": "Alpha"}, {"id": 2, "name": "Beta"}]}


@pytest.fixture
def instance():
    with instance_for_test() as inst:
        yield inst


def _lose_loader(url: str, file_id: int, run_id: str = "lost-run") -> None:
    """A loader that took the file and died: its session ends without a word."""
    conn = psycopg.connect(url)
    assert start_loading(conn, file_id, run_id) is None
    conn.close()


def _tick(stack: Any, instance: Any, limits: TickLimits) -> Any:
    res = resources_for(stack)
    return landing_tick(
        build_sensor_context(
            instance=instance,
            resources=res,
            cursor=LandingCursor(last_pass_completed=time.time()).serialize(),
        ),
        res["postgres"],
        res["raw_bucket"],
        limits,
        0.5,
    )


def _status(url: str) -> tuple[str, str | None, int]:
    return q(url, "SELECT status, failure_kind, attempt FROM ingest.files")[0]


def test_a_file_whose_loader_session_ended_is_failed_then_retried_by_itself_and_loads(stack, instance):
    driver = Driver(stack, instance, tuning={"retry_backoff_seconds": 0})
    driver.upload("crm-data/lost.json", GOOD)
    first = driver.tick()  # registered and claimed; its run's worker dies before the file lands
    [file_id] = first.run_requests[0].run_config["ops"]["ingest_files"]["config"]["file_ids"]
    _lose_loader(stack.pg.writer_url, file_id)
    assert q1(stack.pg.owner_url, "SELECT count(*) FROM canonical.entities") == 0

    retry = driver.tick()  # the loader is gone: failed (infrastructure), and retried at once (no backoff)
    assert _status(stack.pg.owner_url) == ("queued", None, 2)
    [run] = driver.run(retry)
    assert run.success
    assert _status(stack.pg.owner_url) == ("loaded", None, 2)
    assert q1(stack.pg.owner_url, "SELECT count(*) FROM canonical.entities") == 2
    with psycopg.connect(stack.pg.owner_url) as conn:
        history = attempts_of(conn, file_id)
    assert [(a.attempt, a.cause, a.outcome, a.failure_kind, a.reason) for a in history] == [
        (1, None, "failed", "infrastructure", LOADER_LOST),
        (2, "retry", "loaded", None, None),
    ]


def test_a_live_loader_is_never_touched_even_when_slow_or_when_its_run_looks_ended(stack, instance):
    files = RawFiles(stack)
    row = files.add("crm-data/slow.json", GOOD)
    run = create_run_for_test(instance, job_name="ingest_job", status=DagsterRunStatus.FAILURE)
    with live_loader(stack.pg.writer_url, row.file_id, run_id=run.run_id):
        limits = TickLimits(retry_backoff_seconds=0, dead_run_grace_seconds=0)
        for _ in range(3):
            _tick(stack, instance, limits)
            time.sleep(0.5)
        with psycopg.connect(stack.pg.writer_url) as conn:
            assert fail_lost_loaders(conn) == []
            with pytest.raises(Exception, match="is loading"):
                request_reprocess(conn, "crm-data/slow.json")
        assert _status(stack.pg.owner_url) == ("loading", None, 1)
        # Another run cannot take it while its loader lives, even from `loading` by the same run id.
        with psycopg.connect(stack.pg.writer_url) as other:
            assert "held by another session" in (start_loading(other, row.file_id, run.run_id) or "")


def test_the_same_run_takes_its_file_back_after_its_connection_was_lost(stack):
    row = RawFiles(stack).add("crm-data/again.json", GOOD)
    _lose_loader(stack.pg.writer_url, row.file_id, run_id="run-a")
    with psycopg.connect(stack.pg.writer_url) as conn:
        assert [f.file_id for f in fail_lost_loaders(conn)] == [row.file_id]
        conn.commit()
        # Run B may not take a file run A still counts as its own; A's retried step may.
        assert start_loading(conn, row.file_id, "run-b") is not None
        outcome = ingest_file(
            conn, stack.client("s3"), stack.settings.raw_bucket, get_files(conn, [row.file_id])[0], "run-a"
        )
    assert outcome.ok and outcome.result is not None and outcome.result.inserted == 2
    assert _status(stack.pg.owner_url) == ("loaded", None, 1)


def test_automatic_retries_stop_at_the_configured_number_of_attempts(stack, instance):
    row = RawFiles(stack).add("crm-data/cursed.json", GOOD)
    limits = TickLimits(max_attempts=3, retry_backoff_seconds=0, dead_run_grace_seconds=3600)
    for attempt in (1, 2, 3):
        assert _status(stack.pg.owner_url)[2] == attempt
        _lose_loader(stack.pg.writer_url, row.file_id, run_id=f"run-{attempt}")
        _tick(stack, instance, limits)
    _tick(stack, instance, limits)
    assert _status(stack.pg.owner_url) == ("failed", "infrastructure", 3)
    assert q1(stack.pg.owner_url, "SELECT count(*) FROM ingest.file_attempts") == 3
    # A person's reprocess starts a new series of attempts, with its own retries.
    with psycopg.connect(stack.pg.writer_url) as conn:
        again = request_reprocess(conn, "crm-data/cursed.json")
    assert (again.status, again.attempt, again.retries, again.attempt_cause) == ("pending", 4, 0, "reprocess")


def test_a_retry_waits_its_backoff_doubling_after_each_failure(stack, instance):
    row = RawFiles(stack).add("crm-data/backoff.json", GOOD)
    limits = TickLimits(max_attempts=5, retry_backoff_seconds=60, dead_run_grace_seconds=3600)
    _lose_loader(stack.pg.writer_url, row.file_id)
    _tick(stack, instance, limits)
    assert _status(stack.pg.owner_url) == ("failed", "infrastructure", 1)  # 60 s to go
    with psycopg.connect(stack.pg.owner_url, autocommit=True) as conn:
        conn.execute("UPDATE ingest.files SET finished_at = now() - interval '61 seconds'")
    _tick(stack, instance, limits)
    assert _status(stack.pg.owner_url)[0] in ("pending", "queued")
    _lose_loader(stack.pg.writer_url, row.file_id, run_id="second")
    _tick(stack, instance, limits)
    with psycopg.connect(stack.pg.owner_url, autocommit=True) as conn:
        conn.execute("UPDATE ingest.files SET finished_at = now() - interval '61 seconds'")
    _tick(stack, instance, limits)
    assert _status(stack.pg.owner_url) == ("failed", "infrastructure", 2)  # the second retry waits 120 s
    with psycopg.connect(stack.pg.owner_url, autocommit=True) as conn:
        conn.execute("UPDATE ingest.files SET finished_at = now() - interval '121 seconds'")
    _tick(stack, instance, limits)
    assert _status(stack.pg.owner_url)[:2] in (("pending", None), ("queued", None))


def test_a_data_failure_waits_for_a_person_and_is_never_retried(stack, instance):
    driver = Driver(stack, instance, tuning={"retry_backoff_seconds": 0})
    driver.upload("crm-data/broken.json", b'{"records": [{"id": 1, "name": "A"},')
    [run] = driver.tick_and_run()
    assert not run.success
    status, kind, attempt = _status(stack.pg.owner_url)
    assert (status, kind, attempt) == ("failed", "data", 1)
    driver.settle()
    assert _status(stack.pg.owner_url) == ("failed", "data", 1)


class _S3Refusing:
    """An S3 client whose every read fails as given: the runner's split of S3 failures into kinds."""

    def __init__(self, error: Exception):
        self.error = error

    def get_object(self, **_: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (
            ClientError({"Error": {"Code": "SlowDown", "Message": "reduce your request rate"}}, "GetObject"),
            "infrastructure",
        ),
        (EndpointConnectionError(endpoint_url="http://s3.invalid"), "infrastructure"),
        (ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObject"), "data"),
    ],
)
def test_an_s3_outage_is_retried_by_itself_and_a_refusal_waits_for_a_person(stack, error, kind):
    row = RawFiles(stack).add("crm-data/s3.json", GOOD)
    with psycopg.connect(stack.pg.writer_url) as conn:
        outcome = ingest_file(conn, _S3Refusing(error), stack.settings.raw_bucket, row, "run-s3")
    assert outcome.failure_kind == kind
    assert _status(stack.pg.owner_url) == ("failed", kind, 1)
    assert q1(stack.pg.owner_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0


def test_a_run_that_lost_its_loader_is_failed_once_it_has_been_silent(stack, instance):
    row = RawFiles(stack).add("crm-data/run.json", GOOD)
    run = create_run_for_test(instance, job_name="ingest_job", status=DagsterRunStatus.STARTED)
    _lose_loader(stack.pg.writer_url, row.file_id, run_id=run.run_id)
    patient = TickLimits(retry_backoff_seconds=3600, dead_run_grace_seconds=3600)
    _tick(stack, instance, patient)
    assert _status(stack.pg.owner_url) == ("failed", "infrastructure", 1)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED  # it may still be retrying
    _tick(stack, instance, replace(patient, dead_run_grace_seconds=0))
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE


def test_an_interrupted_loader_fails_its_file_at_once_and_lets_go_of_it(stack):
    row = RawFiles(stack).add("crm-data/interrupted.json", GOOD)
    with psycopg.connect(stack.pg.writer_url) as conn, pytest.raises(KeyboardInterrupt):
        ingest_file(conn, _S3Refusing(KeyboardInterrupt()), stack.settings.raw_bucket, row, "run-int")
    assert _status(stack.pg.owner_url) == ("failed", "infrastructure", 1)
    assert q1(stack.pg.owner_url, "SELECT reason FROM ingest.files") == INTERRUPTED
    assert q1(stack.pg.owner_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
