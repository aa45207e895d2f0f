"""Deletions a full snapshot tells: what a newer snapshot of a snapshot source lacks is retired, never by
an older one, back when it reappears; a snapshot retiring too much is held until released. Through the
real path: upload, landing sensor tick, ingest run, PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from dagster import instance_for_test

from pipeline_defs.cli import cli
from resources.analytics.info import simple_demo
from resources.analytics.params import CountAnalysisParams, RevenueAnalysisParams, SimpleDemoParams
from resources.analytics.segments import count_analysis, revenue_analysis
from resources.ingest.registry import ReprocessError, attempts_of, latest_for_key, request_release
from resources.settings import get_settings
from resources.sources.catalogue import get_sources
from tests.support.ingest import Driver, q, q1

pytestmark = pytest.mark.integration

DIRECTORY = {
    "name": "directory",
    "description": "A partner directory exported whole every month.",
    "prefixes": ["directory-data/"],
    "fields": {"id": ["id"], "name": ["name"], "revenue": ["revenue"], "industry": ["industry"]},
    "snapshot": True,
}
IDS = ["A", "B", "C", "D", "E", "F"]


@pytest.fixture
def snapshot_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    folder = tmp_path / "source-definitions"
    folder.mkdir()
    (folder / "directory.json").write_text(json.dumps(DIRECTORY))
    monkeypatch.setenv("SOURCE_DEFINITIONS_PATH", str(folder))
    get_settings.cache_clear()
    get_sources.cache_clear()
    yield
    monkeypatch.delenv("SOURCE_DEFINITIONS_PATH")
    get_settings.cache_clear()
    get_sources.cache_clear()


@pytest.fixture
def driver(stack: Any, snapshot_source: None) -> Iterator[Driver]:
    with instance_for_test() as instance:
        yield Driver(stack, instance)


def snapshot(exported: str, ids: list[str], **names: str) -> dict[str, Any]:
    return {
        "metadata": {"exportDate": exported},
        "records": [
            {"id": i, "name": names.get(i, f"Partner {i}"), "revenue": 1000 * (n + 1), "industry": "Retail"}
            for n, i in enumerate(ids)
        ],
    }


def load(driver: Driver, key: str, body: Any) -> None:
    driver.upload(key, body)
    driver.settle()


def entity(url: str, source_id: str) -> tuple[Any, ...]:
    rows = q(
        url,
        "SELECT status, (deleted_at AT TIME ZONE 'UTC')::date::text, version, metadata->'deleted_by'->>'source_key' "
        "FROM canonical.entities WHERE canonical_id = %s",
        (f"directory_{source_id}",),
    )
    return rows[0]


def file_row(url: str, key: str) -> tuple[Any, ...]:
    return q(url, "SELECT status, retired, reason FROM ingest.files WHERE s3_key = %s", (key,))[0]


def test_a_newer_snapshot_without_an_account_retires_it_with_its_history_kept(
    driver: Driver, stack: Any
) -> None:
    url = stack.pg.owner_url
    load(driver, "directory-data/2026-01.json", snapshot("2026-01-31", IDS))
    load(driver, "directory-data/2026-02.json", snapshot("2026-02-28", [i for i in IDS if i != "C"]))

    assert entity(url, "C") == ("deleted", "2026-02-28", 2, "directory-data/2026-02.json")
    assert entity(url, "A") == ("active", None, 1, None)
    assert file_row(url, "directory-data/2026-02.json") == ("loaded", 1, None)
    # The replaced version is in the history, with the status it had.
    assert q(
        url,
        "SELECT version, status, attributes->>'name' FROM canonical.entity_history WHERE canonical_id = 'directory_C'",
    ) == [(1, "active", "Partner C")]


def test_an_older_snapshot_retires_nothing_newer_than_itself(driver: Driver, stack: Any) -> None:
    url = stack.pg.owner_url
    load(driver, "directory-data/2026-02.json", snapshot("2026-02-28", IDS))
    load(driver, "directory-data/2025-12.json", snapshot("2025-12-31", [i for i in IDS if i != "B"]))

    assert entity(url, "B") == ("active", None, 1, None)
    assert file_row(url, "directory-data/2025-12.json") == ("loaded", 0, None)


def test_a_retired_account_comes_back_when_a_newer_snapshot_holds_it_but_not_from_an_older_one(
    driver: Driver, stack: Any
) -> None:
    url = stack.pg.owner_url
    load(driver, "directory-data/2026-01.json", snapshot("2026-01-31", IDS))
    load(driver, "directory-data/2026-02.json", snapshot("2026-02-28", [i for i in IDS if i != "C"]))
    # A late January file holding C is older than the snapshot that retired it: C stays deleted.
    load(driver, "directory-data/2026-01-late.json", snapshot("2026-02-01", IDS))
    assert entity(url, "C")[0] == "deleted"

    # March holds C again, unchanged: it is active again as a new version.
    load(driver, "directory-data/2026-03.json", snapshot("2026-03-31", IDS))
    assert entity(url, "C") == ("active", None, 3, None)
    assert q(
        url,
        "SELECT version, status, (deleted_at AT TIME ZONE 'UTC')::date::text FROM canonical.entity_history "
        "WHERE canonical_id = 'directory_C' ORDER BY version",
    ) == [(1, "active", None), (2, "deleted", "2026-02-28")]


def test_a_refused_record_still_says_its_account_exists(driver: Driver, stack: Any) -> None:
    url = stack.pg.owner_url
    load(driver, "directory-data/2026-01.json", snapshot("2026-01-31", IDS))
    february = snapshot("2026-02-28", IDS)
    february["records"][2]["revenue"] = "plenty"  # C: refused for its revenue, but in the export
    load(driver, "directory-data/2026-02.json", february)

    assert entity(url, "C")[0] == "active"
    assert file_row(url, "directory-data/2026-02.json")[:2] == ("loaded", 0)


def test_a_snapshot_retiring_half_its_source_is_held_until_released(driver: Driver, stack: Any) -> None:
    url = stack.pg.owner_url
    load(driver, "directory-data/2026-01.json", snapshot("2026-01-31", IDS))
    key = "directory-data/2026-02.json"
    load(driver, key, snapshot("2026-02-28", ["A", "B", "C", "G"], A="Partner A renamed"))

    status, retired, reason = file_row(url, key)
    assert (status, retired) == ("held", None)
    assert "retire 3 of the 7" in reason and "43%" in reason and f"pipeline release {key}" in reason
    # Nothing of it landed: no new entity, no rename, no retirement.
    assert q1(url, "SELECT count(*) FROM canonical.entities WHERE status = 'deleted'") == 0
    assert q1(url, "SELECT count(*) FROM canonical.entities WHERE canonical_id = 'directory_G'") == 0
    assert entity(url, "A") == ("active", None, 1, None)
    # The ingest run's check fails while the file is held.
    checks = [
        e.asset_check_evaluation_data
        for r in driver.results
        for e in r.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    held_checks = [c for c in checks if c.check_name == "no_snapshot_held"]
    assert held_checks[-1].passed is False
    # A held file is not picked up again by itself.
    assert not driver.tick().run_requests

    result = CliRunner().invoke(cli, ["release", key], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "released" in result.output
    driver.settle()

    assert file_row(url, key) == ("loaded", 3, None)
    assert sorted(
        r[0] for r in q(url, "SELECT canonical_id FROM canonical.entities WHERE status = 'deleted'")
    ) == [
        "directory_D",
        "directory_E",
        "directory_F",
    ]
    assert (
        q1(url, "SELECT name FROM canonical.entities WHERE canonical_id = 'directory_A'")
        == "Partner A renamed"
    )
    with psycopg.connect(url) as conn:
        row = latest_for_key(conn, key)
        assert row is not None
        history = [(a.attempt, a.cause, a.outcome) for a in attempts_of(conn, row.file_id)]
    assert history == [(1, None, "held"), (2, "release", "loaded")]
    assert [
        c.passed
        for c in (
            e.asset_check_evaluation_data
            for e in driver.results[-1].all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        )
        if c.check_name == "no_snapshot_held"
    ] == [True]


def test_only_a_held_file_can_be_released(driver: Driver, stack: Any) -> None:
    load(driver, "directory-data/2026-01.json", snapshot("2026-01-31", IDS))
    with psycopg.connect(stack.pg.owner_url) as conn:
        with pytest.raises(ReprocessError, match="is loaded, not held"):
            request_release(conn, "directory-data/2026-01.json")
        with pytest.raises(ReprocessError, match="no file with key"):
            request_release(conn, "directory-data/never.json")
    result = CliRunner().invoke(cli, ["release", "directory-data/2026-01.json"])
    assert result.exit_code == 1 and "not held" in result.output


def test_a_source_that_is_not_a_snapshot_retires_nothing(driver: Driver, stack: Any) -> None:
    url = stack.pg.owner_url
    load(driver, "crm-data/one.json", {"records": [{"id": "1", "name": "One"}, {"id": "2", "name": "Two"}]})
    load(driver, "crm-data/two.json", {"records": [{"id": "1", "name": "One"}]})
    assert q(url, "SELECT status FROM canonical.entities ORDER BY canonical_id") == [("active",), ("active",)]


def test_deleted_entities_leave_the_analytics_unless_asked_for(driver: Driver, stack: Any) -> None:
    load(driver, "directory-data/2026-01.json", snapshot("2026-01-31", IDS))
    load(driver, "directory-data/2026-02.json", snapshot("2026-02-28", [i for i in IDS if i != "F"]))

    with psycopg.connect(stack.pg.reader_url) as conn:
        counted = count_analysis(conn, CountAnalysisParams(), max_rows=100)
        assert [(r[0], r[1]) for r in counted.rows] == [("Retail", 5)]
        everything = count_analysis(conn, CountAnalysisParams(include_deleted=True), max_rows=100)
        assert [(r[0], r[1]) for r in everything.rows] == [("Retail", 6)]

        ranked = revenue_analysis(conn, RevenueAnalysisParams(top_n=1), max_rows=100)
        assert [r[2] for r in ranked.rows] == ["directory_E"]  # F had the highest revenue, and left
        assert [
            r[2]
            for r in revenue_analysis(
                conn, RevenueAnalysisParams(top_n=1, include_deleted=True), max_rows=100
            ).rows
        ] == ["directory_F"]

        demo = simple_demo(conn, SimpleDemoParams(), max_rows=10)
        assert demo.rows[-1][1] == 5
        assert simple_demo(conn, SimpleDemoParams(include_deleted=True), max_rows=10).rows[-1][1] == 6


def test_a_delete_marker_deletes_its_entity_at_its_change_time_and_a_newer_record_restores_it(
    driver: Driver, stack: Any
) -> None:
    url = stack.pg.owner_url
    record = {"customer_id": "C-1", "company_name": "Acme", "annual_revenue": 10}
    load(driver, "crm-data/1.json", {"records": [{**record, "updated_at": "2026-01-01T00:00:00Z"}]})
    load(
        driver,
        "crm-data/2.json",
        {"records": [{**record, "is_deleted": True, "updated_at": "2026-02-03T00:00:00Z"}]},
    )
    assert q(
        url,
        "SELECT status, (deleted_at AT TIME ZONE 'UTC')::date::text, version FROM canonical.entities",
    ) == [("deleted", "2026-02-03", 2)]
    with psycopg.connect(stack.pg.reader_url) as conn:
        assert count_analysis(conn, CountAnalysisParams(), max_rows=10).rows == []

    load(driver, "crm-data/3.json", {"records": [{**record, "updated_at": "2026-03-01T00:00:00Z"}]})
    assert q(url, "SELECT status, deleted_at, version FROM canonical.entities") == [("active", None, 3)]
