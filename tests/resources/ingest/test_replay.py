"""Replay: the current definitions applied again to a source's loaded files, through the ingest path.

Real PostgreSQL and a real moto S3 server. Files are registered with the LastModified a test chooses and
loaded with `ingest_file`; a mapping fix is a definition in SOURCE_DEFINITIONS_PATH overriding the shipped
crm one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from resources.ingest.registry import FileRow, request_reprocess
from resources.ingest.replay import (
    FileReplayed,
    ReplayPlan,
    ReplayRefused,
    ReplayTotals,
    parse_since,
    plan_replay,
    replay_files,
)
from resources.sources.catalogue import get_sources
from tests.support.ingest import RawFiles, q, q1
from tests.support.sources import Redefinitions, redefinitions

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Files(RawFiles):
    def load(self, row: FileRow) -> None:
        out = self.ingest(row)
        assert out.ok and out.result is not None, out

    def replay(
        self, source: str = "crm", since: datetime | None = None, run_id: str = "replay-run"
    ) -> tuple[ReplayPlan, list[FileReplayed]]:
        with psycopg.connect(self.stack.settings.database_url) as conn:
            plan = plan_replay(conn, source, since)
            assert isinstance(plan, ReplayPlan), plan
            return plan, list(replay_files(conn, self.s3, self.bucket, plan, run_id))


@pytest.fixture
def files(stack) -> Files:
    return Files(stack)


@pytest.fixture
def redefine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Redefinitions]:
    with redefinitions(tmp_path / "source-definitions", monkeypatch) as r:
        yield r


def _rec(i: int, revenue: int | None = None, **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"customer_id": f"C{i}", "company_name": f"Company {i}", **extra}
    if revenue is not None:
        rec["annual_revenue"] = revenue
    return rec


def _state(url: str) -> dict[str, Any]:
    """Everything a load may write to the canonical tables, and the data version."""
    return {
        "entities": q(
            url,
            "SELECT canonical_id, version, updated_at, metadata, attributes FROM canonical.entities "
            "ORDER BY canonical_id",
        ),
        "history": q(url, "SELECT count(*) FROM canonical.entity_history"),
        "links": q(
            url,
            "SELECT parent_canonical_id, child_canonical_id, effective_from, effective_to "
            "FROM canonical.entity_relationships ORDER BY 1, 2, 3",
        ),
        "points": q(
            url,
            "SELECT entity_canonical_id, metric_type, observed_at, value, loaded_at "
            "FROM canonical.time_series_data ORDER BY 1, 2, 3",
        ),
        "data_version": q(url, "SELECT version, updated_at FROM ingest.data_version"),
    }


def test_a_replay_that_changes_nothing_writes_nothing_and_leaves_the_data_version(files, stack):
    metric = [{"date": "2026-01-31", "type": "mrr", "value": 10}]
    first = files.add(
        "crm-data/a.json", {"records": [_rec(1, 1000, metrics=metric), _rec(2, 5, parent_id="C1")]}, _at(1)
    )
    second = files.add("crm-data/b.json", {"records": [_rec(3, 7), {"customer_id": "C4"}]}, _at(2))
    files.load(first)
    files.load(second)
    url = stack.pg.owner_url
    before = _state(url)

    plan, steps = files.replay(run_id="replay-nothing")

    assert [f.s3_key for f in plan.files] == ["crm-data/a.json", "crm-data/b.json"]
    assert [s.describe().split(":")[0] for s in steps] == ["[1/2] crm-data/a.json", "[2/2] crm-data/b.json"]
    results = [s.outcome.result for s in steps]
    assert [(r.received, r.inserted, r.updated, r.unchanged, r.rejected) for r in results if r] == [
        (2, 0, 0, 2, 0),
        (2, 0, 0, 1, 1),
    ]
    assert _state(url) == before
    assert q(
        url,
        "SELECT s3_key, status, attempt, attempt_cause, run_id, received, unchanged, rejected "
        "FROM ingest.files ORDER BY file_id",
    ) == [
        ("crm-data/a.json", "loaded", 2, "replay", "replay-nothing", 2, 2, 0),
        ("crm-data/b.json", "loaded", 2, "replay", "replay-nothing", 2, 1, 1),
    ]
    assert q(url, "SELECT file_id, attempt, cause, outcome FROM ingest.file_attempts ORDER BY 1, 2") == [
        (first.file_id, 1, None, "loaded"),
        (first.file_id, 2, "replay", "loaded"),
        (second.file_id, 1, None, "loaded"),
        (second.file_id, 2, "replay", "loaded"),
    ]
    # the refused record is kept for the new attempt too, which the file's counts now describe
    assert q(url, "SELECT attempt, source_id FROM ingest.rejected_records ORDER BY attempt") == [
        (1, "C4"),
        (2, "C4"),
    ]
    totals = ReplayTotals()
    for step in steps:
        totals.add(step)
    assert (totals.replayed, totals.skipped, totals.failed, totals.changed) == (2, 0, 0, False)


def test_a_replay_after_a_definition_change_writes_a_new_version_of_exactly_the_entities_it_changes(
    files, stack, redefine
):
    old_version = get_sources().source("crm").transformation_version
    crm = files.add("crm-data/a.json", {"records": [_rec(1, 1000), _rec(2), _rec(3, 5000)]}, _at(1))
    erp = files.add("erp-data/e.json", {"records": [{"id": "E1", "name": "Erp One", "revenue": 10}]}, _at(1))
    files.load(crm)
    files.load(erp)
    url = stack.pg.owner_url
    data_version = q1(url, "SELECT version FROM ingest.data_version")
    untouched = q(
        url, "SELECT * FROM canonical.entities WHERE canonical_id IN ('crm_C2', 'erp_E1') ORDER BY 1"
    )

    new_version = redefine.revenue_scale("crm", "0.01")
    assert new_version != old_version
    plan, steps = files.replay()

    assert plan.transformation_version == new_version and len(steps) == 1
    result = steps[0].outcome.result
    assert result is not None and (result.updated, result.unchanged, result.inserted) == (2, 1, 0)
    assert q(
        url,
        "SELECT canonical_id, version, revenue, metadata->>'transformation_version', metadata->>'run_id' "
        "FROM canonical.entities ORDER BY canonical_id",
    ) == [
        ("crm_C1", 2, Decimal("10.00"), new_version, "replay-run"),
        ("crm_C2", 1, None, old_version, "test-run"),
        ("crm_C3", 2, Decimal("50.00"), new_version, "replay-run"),
        ("erp_E1", 1, Decimal("10"), get_sources().source("erp").transformation_version, "test-run"),
    ]
    assert q(
        url, "SELECT * FROM canonical.entities WHERE canonical_id IN ('crm_C2', 'erp_E1') ORDER BY 1"
    ) == (untouched)
    assert q(
        url,
        "SELECT canonical_id, version, attributes->>'revenue', metadata->>'transformation_version' "
        "FROM canonical.entity_history ORDER BY canonical_id",
    ) == [("crm_C1", 1, "1000", old_version), ("crm_C3", 1, "5000", old_version)]
    assert q1(url, "SELECT version FROM ingest.data_version") == data_version + 1
    assert q(url, "SELECT s3_key, attempt FROM ingest.files ORDER BY s3_key") == [
        ("crm-data/a.json", 2),
        ("erp-data/e.json", 1),
    ]


def test_a_replay_goes_oldest_first_in_source_order_and_never_puts_older_content_back(files, stack, redefine):
    # Registered newest first: the replay's order is the files' place in the source's history, not the
    # order they arrived in.
    newer = files.add("crm-data/newer.json", {"records": [_rec(1, 2000)]}, _at(10))
    older = files.add("crm-data/older.json", {"records": [_rec(1, 1000), _rec(2, 1000)]}, _at(5))
    files.load(newer)
    files.load(older)  # late: C1 superseded
    url = stack.pg.owner_url
    assert q(url, "SELECT canonical_id, revenue FROM canonical.entities ORDER BY 1") == [
        ("crm_C1", Decimal("2000")),
        ("crm_C2", Decimal("1000")),
    ]

    redefine.revenue_scale("crm", "2")
    plan, steps = files.replay()

    assert [f.s3_key for f in plan.files] == ["crm-data/older.json", "crm-data/newer.json"]
    counts = [(s.outcome.result.superseded, s.outcome.result.updated) for s in steps if s.outcome.result]
    assert counts == [(1, 1), (0, 1)]  # the older file's C1 loses its claim again
    assert q(url, "SELECT canonical_id, revenue, version FROM canonical.entities ORDER BY 1") == [
        ("crm_C1", Decimal("4000"), 2),
        ("crm_C2", Decimal("2000"), 2),
    ]
    assert q(
        url,
        "SELECT canonical_id, attributes->>'revenue' FROM canonical.entity_history ORDER BY canonical_id",
    ) == [("crm_C1", "2000"), ("crm_C2", "1000")]
    assert sum(s.outcome.result.moved_back for s in steps if s.outcome.result) == 0
    assert [
        k
        for (k,) in q(
            url,
            "SELECT f.s3_key FROM ingest.file_attempts a JOIN ingest.files f "
            "USING (file_id) WHERE a.cause = 'replay' ORDER BY a.file_attempt_id",
        )
    ] == [
        "crm-data/older.json",
        "crm-data/newer.json",
    ]


def test_since_keeps_the_files_at_or_after_that_time_in_their_sources_history(files, stack):
    old = files.add("crm-data/old.json", {"records": [_rec(1, 1)]}, _at(0))
    new = files.add("crm-data/new.json", {"records": [_rec(2, 1)]}, _at(60))
    files.load(old)
    files.load(new)
    plan, steps = files.replay(since=_at(60))
    assert [f.s3_key for f in plan.files] == ["crm-data/new.json"] and len(steps) == 1
    assert q(stack.pg.owner_url, "SELECT s3_key, attempt FROM ingest.files ORDER BY s3_key") == [
        ("crm-data/new.json", 2),
        ("crm-data/old.json", 1),
    ]
    assert files.replay(since=_at(61))[0].files == ()


def test_a_file_another_loader_holds_or_a_reprocess_took_is_skipped_with_the_reason(files, stack):
    held = files.add("crm-data/held.json", {"records": [_rec(1, 1)]}, _at(1))
    taken = files.add("crm-data/taken.json", {"records": [_rec(2, 1)]}, _at(2))
    free = files.add("crm-data/free.json", {"records": [_rec(3, 1)]}, _at(3))
    for row in (held, taken, free):
        files.load(row)
    url = stack.settings.database_url
    with psycopg.connect(url) as conn:
        plan = plan_replay(conn, "crm")
        assert isinstance(plan, ReplayPlan)
    with psycopg.connect(url, autocommit=True) as other, psycopg.connect(url) as conn:
        other.execute("SELECT pg_advisory_lock(727002, ingest.loader_lock_key(%s))", (held.file_id,))
        with conn.transaction():
            request_reprocess(conn, "crm-data/taken.json")
        steps = list(replay_files(conn, files.s3, files.bucket, plan, "replay-run"))
    assert [s.describe() for s in steps[:2]] == [
        "[1/3] crm-data/held.json: skipped: its loader lock is held by another session (a live loader has it)",
        "[2/3] crm-data/taken.json: skipped: now pending at attempt 2 (not loaded at attempt 1 any more)",
    ]
    assert steps[2].outcome.result is not None
    assert q(
        stack.pg.owner_url, "SELECT s3_key, status, attempt, attempt_cause FROM ingest.files ORDER BY 1"
    ) == [
        ("crm-data/free.json", "loaded", 2, "replay"),
        ("crm-data/held.json", "loaded", 1, None),
        ("crm-data/taken.json", "pending", 2, "reprocess"),
    ]


def test_a_file_whose_object_is_gone_fails_its_replay_attempt_and_the_others_go_on(files, stack):
    gone = files.add("crm-data/gone.json", {"records": [_rec(1, 1)]}, _at(1))
    kept = files.add("crm-data/kept.json", {"records": [_rec(2, 1)]}, _at(2))
    files.load(gone)
    files.load(kept)
    files.s3.delete_object(Bucket=files.bucket, Key="crm-data/gone.json")
    _, steps = files.replay()
    assert steps[0].describe() == (
        "[1/2] crm-data/gone.json: FAILED (data): the object no longer exists in the bucket"
    )
    assert steps[1].outcome.result is not None
    assert q1(stack.pg.owner_url, "SELECT count(*) FROM canonical.entities") == 2  # its rows stay


def test_an_unknown_source_is_refused_naming_the_defined_sources(stack):
    with psycopg.connect(stack.settings.database_url) as conn:
        refused = plan_replay(conn, "sap")
    assert refused == ReplayRefused("unknown source 'sap': the defined sources are crm, erp, legacy")


def test_since_reads_a_date_as_midnight_utc_and_a_time_without_zone_as_utc():
    assert parse_since(None) is None and parse_since(" ") is None
    assert parse_since("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_since("2026-03-01T12:30") == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert parse_since("2026-03-01T12:30:00+02:00") == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    refused = parse_since("yesterday")
    assert isinstance(refused, ReplayRefused) and "'yesterday' is not a date" in refused.reason
