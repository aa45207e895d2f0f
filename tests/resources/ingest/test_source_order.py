"""Never back in time: the order of truth per entity, late files, concurrent runs, hand-started runs.

Real PostgreSQL and a real moto S3 server. Files are registered with the LastModified the test chooses
(as the sensor records it) and loaded with `ingest_file`, in whatever order the case needs. Every test
runs twice: files merged whole, and merged in chunks of two records while they are read.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from dagster import DagsterInstance, instance_for_test

from assets.ingest import ENTITIES
from resources.ingest import loader
from resources.ingest.registry import FileRow
from resources.ingest.runner import FileOutcome, ingest_file
from tests.support.ingest import Driver, RawFiles, q, q1

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Files(RawFiles):
    """Every load in these cases must succeed."""

    def load(self, row: FileRow, run_id: str = "test-run", **kw: Any) -> FileOutcome:
        out = self.ingest(row, run_id, **kw)
        assert out.ok and out.result is not None, out
        return out


def _records(ids: range | list[int], revenue: int, **extra: Any) -> list[dict]:
    return [
        {"customer_id": f"C{i}", "company_name": f"Company {i}", "annual_revenue": revenue, **extra}
        for i in ids
    ]


def _revenues(url: str) -> set[int]:
    return {int(r[0]) for r in q(url, "SELECT revenue FROM canonical.entities")}


@pytest.fixture(params=["whole", "chunks of 2"], autouse=True)
def chunking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int | None:
    rows = None if request.param == "whole" else 2
    if rows is not None:
        monkeypatch.setattr(loader, "CHUNK_ROWS", rows)
    return rows


@pytest.fixture
def files(stack) -> Files:
    return Files(stack)


def test_a_file_older_by_last_modified_is_superseded_when_it_loads_after_a_newer_one(files, stack):
    new = files.add("crm-data/new.json", {"records": _records(range(5), 2000)}, _at(10))
    old = files.add("crm-data/old.json", {"records": _records(range(5), 1000)}, _at(5))
    files.load(new)
    late = files.load(old).result
    assert (late.superseded, late.inserted, late.updated, late.unchanged) == (5, 0, 0, 0)
    url = stack.pg.owner_url
    assert _revenues(url) == {2000}
    assert q1(url, "SELECT count(*) FROM canonical.entity_history") == 0
    assert q(url, "SELECT s3_key, superseded FROM ingest.files ORDER BY file_id") == [
        ("crm-data/new.json", 0),
        ("crm-data/old.json", 5),
    ]
    # the row says which position produced it
    assert q(url, "SELECT DISTINCT source_file_id, source_file_at FROM canonical.entities") == [
        (new.file_id, _at(10))
    ]


def test_the_exports_own_date_outranks_last_modified(files, stack):
    # Uploaded the other way round (LastModified says "old" is newer), but the exports say when they were made.
    newer_export = files.add(
        "crm-data/a.json",
        {"records": _records(range(3), 2000), "metadata": {"exportDate": "2026-02-02T00:00:00Z"}},
        _at(1),
    )
    older_export = files.add(
        "crm-data/b.json",
        {"records": _records(range(3), 1000), "metadata": {"exportDate": "2026-02-01T00:00:00Z"}},
        _at(2),
    )
    files.load(newer_export)
    assert files.load(older_export).result.superseded == 3
    assert _revenues(stack.pg.owner_url) == {2000}
    assert q(stack.pg.owner_url, "SELECT source_file_at FROM ingest.files ORDER BY file_id") == [
        (datetime(2026, 2, 2, tzinfo=UTC),),
        (datetime(2026, 2, 1, tzinfo=UTC),),
    ]


def test_registration_order_breaks_a_tie_of_file_times(files, stack):
    first = files.add("crm-data/a.json", {"records": _records(range(3), 1000)}, _at(1))
    second = files.add("crm-data/b.json", {"records": _records(range(3), 2000)}, _at(1))
    files.load(second)
    assert files.load(first).result.superseded == 3
    assert _revenues(stack.pg.owner_url) == {2000}


def test_a_records_own_change_time_outranks_the_file_order(files, stack):
    # The newer file carries an older edit of C0 (and a newer one of C1): each record's own time decides.
    a = files.add(
        "crm-data/a.json",
        {
            "records": [
                {
                    "customer_id": "C0",
                    "company_name": "Zero",
                    "annual_revenue": 1,
                    "updated_at": "2026-01-05T00:00:00Z",
                },
                {
                    "customer_id": "C1",
                    "company_name": "One",
                    "annual_revenue": 1,
                    "updated_at": "2026-01-01T00:00:00Z",
                },
            ]
        },
        _at(1),
    )
    b = files.add(
        "crm-data/b.json",
        {
            "records": [
                {
                    "customer_id": "C0",
                    "company_name": "Zero",
                    "annual_revenue": 2,
                    "updated_at": "2026-01-02T00:00:00Z",
                },
                {
                    "customer_id": "C1",
                    "company_name": "One",
                    "annual_revenue": 2,
                    "updated_at": "2026-01-03T00:00:00Z",
                },
            ]
        },
        _at(2),
    )
    files.load(a)
    r = files.load(b).result
    assert (r.superseded, r.updated) == (1, 1)
    url = stack.pg.owner_url
    assert q(url, "SELECT canonical_id, revenue, source_changed_at FROM canonical.entities ORDER BY 1") == [
        ("crm_C0", 1, datetime(2026, 1, 5, tzinfo=UTC)),
        ("crm_C1", 2, datetime(2026, 1, 3, tzinfo=UTC)),
    ]


def test_the_change_time_field_is_configurable_per_source_and_can_be_turned_off(files, stack):
    a = files.add(
        "crm-data/a.json", {"records": [{"id": 1, "name": "A", "revenue": 1, "stamp": "2026-01-09"}]}, _at(1)
    )
    b = files.add(
        "crm-data/b.json", {"records": [{"id": 1, "name": "A", "revenue": 2, "stamp": "2026-01-01"}]}, _at(2)
    )
    files.load(a, change_time_fields={"crm": ["stamp"]})
    assert files.load(b, change_time_fields={"crm": ["stamp"]}).result.superseded == 1
    c = files.add(
        "crm-data/c.json",
        {"records": [{"id": 1, "name": "A", "revenue": 3, "updated_at": "2000-01-01"}]},
        _at(3),
    )
    # record times off for crm: the file order alone decides, and c is the newest file
    assert files.load(c, change_time_fields={"crm": []}).result.updated == 1


def test_an_unreadable_change_time_refuses_the_record_with_its_reason(files, stack):
    f = files.add(
        "crm-data/a.json", {"records": [{"id": 1, "name": "A", "updated_at": "last tuesday"}]}, _at(1)
    )
    assert files.load(f).result.rejected == 1
    [(reasons,)] = q(stack.pg.owner_url, "SELECT reasons FROM ingest.rejected_records")
    assert reasons[0]["code"] == "invalid_change_time" and reasons[0]["field"] == "updated_at"


def test_an_unchanged_record_from_a_newer_file_still_outranks_a_late_one(files, stack):
    # X (t1), X again (t3, unchanged), then a late Y (t2): the newest export said X.
    t1 = files.add("crm-data/1.json", {"records": _records([0], 1000)}, _at(1))
    t3 = files.add("crm-data/3.json", {"records": _records([0], 1000)}, _at(3))
    t2 = files.add("crm-data/2.json", {"records": _records([0], 2000)}, _at(2))
    files.load(t1)
    assert files.load(t3).result.unchanged == 1
    assert files.load(t2).result.superseded == 1
    assert _revenues(stack.pg.owner_url) == {1000}


def test_a_late_file_neither_closes_a_newer_parent_link_nor_overwrites_metric_points(files, stack):
    point = {"date": "2026-01-31", "type": "revenue", "value": 5}
    new = files.add(
        "crm-data/new.json",
        {
            "records": [
                {"id": "P2", "name": "Parent two"},
                {"id": "K", "name": "Kid", "parent_id": "P2", "metrics": [point]},
            ]
        },
        _at(10),
    )
    old = files.add(
        "crm-data/old.json",
        {
            "records": [
                {"id": "P1", "name": "Parent one"},
                {"id": "K", "name": "Kid", "parent_id": "P1", "metrics": [{**point, "value": 1}]},
            ]
        },
        _at(5),
    )
    files.load(new)
    late = files.load(old).result
    assert (late.superseded, late.inserted, late.relationships, late.time_series) == (1, 1, 0, 0)
    url = stack.pg.owner_url
    assert q(url, "SELECT parent_canonical_id, effective_to IS NULL FROM canonical.entity_relationships") == [
        ("crm_P2", True)
    ]
    assert q1(url, "SELECT value FROM canonical.time_series_data") == 5


def test_history_only_moves_forward_whatever_order_files_load_in(files, stack):
    rows = {
        i: files.add(f"crm-data/{i}.json", {"records": _records(range(4), i * 1000)}, _at(i))
        for i in range(1, 7)
    }
    for i in (2, 1, 4, 3, 6, 5):
        files.load(rows[i])
    url = stack.pg.owner_url
    assert _revenues(url) == {6000}
    backwards = q1(
        url,
        """
        WITH versions AS (
            SELECT canonical_id, version, source_changed_at, source_file_at, source_file_id
            FROM canonical.entity_history
            UNION ALL SELECT canonical_id, version, source_changed_at, source_file_at, source_file_id
            FROM canonical.entities)
        SELECT count(*) FROM (
            SELECT (source_changed_at, source_file_at, source_file_id)
                   < lag((source_changed_at, source_file_at, source_file_id)) OVER w AS back
            FROM versions WINDOW w AS (PARTITION BY canonical_id ORDER BY version)) x WHERE back""",
    )
    assert backwards == 0
    # 2 → 4 → 6 applied; 1, 3 and 5 arrived late
    assert q1(url, "SELECT max(version) FROM canonical.entities") == 3
    assert q1(url, "SELECT sum(superseded) FROM ingest.files") == 12


def _load_together(files: Files, rows: list[FileRow]) -> list[BaseException]:
    """Load each file on its own thread and connection, all released at the same moment."""
    barrier = threading.Barrier(len(rows))
    errors: list[BaseException] = []

    def load(row: FileRow) -> None:
        try:
            barrier.wait()
            files.load(row, run_id=f"run-{row.file_id}")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(r,)) for r in rows]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return errors


def test_concurrent_loads_over_the_same_ids_in_opposite_orders_neither_deadlock_nor_go_back(
    files, stack, chunking, monkeypatch
):
    if chunking:  # several chunks per file, each claiming its ids in an order of its own
        monkeypatch.setattr(loader, "CHUNK_ROWS", 700)
    ids = list(range(3000))
    rounds = 3
    url = stack.pg.owner_url
    for n in range(rounds):
        older = files.add(f"crm-data/r{n}-a.json", {"records": _records(ids, n * 10 + 1)}, _at(n * 10 + 1))
        newer = files.add(
            f"crm-data/r{n}-b.json", {"records": _records(list(reversed(ids)), n * 10 + 2)}, _at(n * 10 + 2)
        )
        errors = _load_together(files, [newer, older])
        assert not errors, errors
        assert q(url, "SELECT DISTINCT status FROM ingest.files") == [("loaded",)]
        assert _revenues(url) == {n * 10 + 2}, f"round {n}: an older file won"
    assert q1(url, "SELECT sum(moved_back) FROM ingest.files") == 0


def test_a_lock_wait_that_times_out_is_retried_inside_the_run(files, stack):
    first = files.add("crm-data/a.json", {"records": _records(range(3), 1000)}, _at(1))
    files.load(first)
    second = files.add("crm-data/b.json", {"records": _records(range(3), 2000)}, _at(2))
    url = stack.settings.database_url
    with psycopg.connect(url) as holder:
        holder.execute("SELECT 1 FROM ingest.entity_order WHERE canonical_id = 'crm_C1' FOR UPDATE")
        release = threading.Timer(1.5, holder.commit)
        release.start()
        with psycopg.connect(url, options="-c lock_timeout=200") as conn:
            out = ingest_file(conn, files.s3, files.bucket, second, "run-retry")
        release.join()
    assert out.ok and out.result.updated == 3
    assert _revenues(stack.pg.owner_url) == {2000}


# ---- runs that Dagster users start by hand ------------------------------------------------------------


@pytest.fixture
def instance() -> DagsterInstance:
    with instance_for_test() as inst:
        yield inst


def test_re_executing_an_ingest_run_succeeds_and_reports_the_files_already_loaded(stack, instance):
    driver = Driver(stack, instance)
    driver.upload("crm-data/a.json", {"records": _records(range(3), 1000)})
    result = driver.tick()
    [first] = driver.run(result)
    assert first.success
    [again] = driver.run(result)  # the same run config again, as "Re-execute" in the UI launches it
    assert again.success
    logs = " ".join(e.message for e in instance.all_logs(again.run_id) if e.message)
    assert f"already loaded by run {first.run_id}" in logs
    assert not again.get_asset_materialization_events()
    checks = {e.check_name: e.passed for e in again.get_asset_check_evaluations()}
    assert checks["no_entity_moved_back_in_source_order"] and checks["refused_share_below_threshold"]


def test_materialize_with_no_config_loads_whatever_is_pending(files, stack, instance):
    driver = Driver(stack, instance)
    files.add("crm-data/a.json", {"records": _records(range(2), 1000)}, _at(1))
    files.add("crm-data/b.json", {"records": _records(range(2, 5), 1000)}, _at(2))
    job = driver.defs.resolve_job_def("ingest_job")
    run = job.execute_in_process(instance=instance, raise_on_error=False)
    assert run.success
    url = stack.pg.owner_url
    assert q(url, "SELECT DISTINCT status FROM ingest.files") == [("loaded",)]
    assert q1(url, "SELECT count(*) FROM canonical.entities") == 5
    ev = instance.get_latest_materialization_event(ENTITIES)
    assert ev is not None and ev.asset_materialization.metadata["inserted"].value == 5
    # the batch is tagged like the sensor's, so lost-run recovery can find the run that holds it
    assert "ingest/batch" in instance.get_run_by_id(run.run_id).tags
    # nothing pending: the run still ends cleanly
    assert job.execute_in_process(instance=instance, raise_on_error=False).success


def test_counts_add_up_for_an_entity_written_around_ingest(files, stack):
    # A row put into canonical.entities by hand (no ingest.entity_order row), holding exactly what the
    # file brings: the claim cannot know it is unchanged, the merge writes nothing, the file says unchanged.
    from resources.canonical.mapping import map_record

    record = {"customer_id": "C1", "company_name": "Company 1", "annual_revenue": 1000}
    mapped = map_record("crm", record)
    with psycopg.connect(stack.pg.owner_url) as conn:
        conn.execute(
            """INSERT INTO canonical.entities (entity_type, source_system, canonical_id, name, revenue,
                                               attributes, attributes_hash)
               VALUES (%s, 'crm', %s, %s, %s, %s::jsonb, %s)""",
            (
                mapped.entity_type,
                mapped.canonical_id,
                mapped.name,
                mapped.revenue,
                mapped.attributes_json,
                mapped.attributes_hash,
            ),
        )
    r = files.load(files.add("crm-data/a.json", {"records": [record]}, _at(1))).result
    assert (r.received, r.inserted, r.updated, r.unchanged, r.superseded) == (1, 0, 0, 1, 0)


def test_an_entity_written_around_ingest_is_updated_not_inserted_again(files, stack):
    # Its id was never claimed, so the loader takes the record for fresh and plain-INSERTs fresh
    # records; the row already there must still be versioned by the upsert (history kept), and the file
    # must not fail on the unique canonical_id, beside a truly new record in the same file.
    from resources.canonical.mapping import map_record

    old = map_record("crm", {"customer_id": "C1", "company_name": "Company 1", "annual_revenue": 1000})
    with psycopg.connect(stack.pg.owner_url) as conn:
        conn.execute(
            """INSERT INTO canonical.entities (entity_type, source_system, canonical_id, name, revenue,
                                               attributes, attributes_hash)
               VALUES (%s, 'crm', %s, %s, %s, %s::jsonb, %s)""",
            (
                old.entity_type,
                old.canonical_id,
                old.name,
                old.revenue,
                old.attributes_json,
                old.attributes_hash,
            ),
        )
    records = [
        {"customer_id": "C1", "company_name": "Company 1", "annual_revenue": 2000},
        {"customer_id": "C2", "company_name": "Company 2", "annual_revenue": 5},
    ]
    r = files.load(files.add("crm-data/a.json", {"records": records}, _at(1))).result
    assert (r.received, r.inserted, r.updated, r.unchanged) == (2, 1, 1, 0)
    with psycopg.connect(stack.pg.owner_url) as conn:
        rows = conn.execute(
            "SELECT canonical_id, version, revenue FROM canonical.entities ORDER BY 1"
        ).fetchall()
        history = conn.execute("SELECT canonical_id, version FROM canonical.entity_history").fetchall()
    assert [(c, v, int(x)) for c, v, x in rows] == [(old.canonical_id, 2, 2000), ("crm_C2", 1, 5)]
    assert history == [(old.canonical_id, 1)]
