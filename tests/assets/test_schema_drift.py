"""Schema drift through the real path: upload → landing_sensor tick → ingest run → ingest.files, the source's
field profile, the materialization, the warning check, `pipeline files` / `history`, GET /ingest/files.
Embedded PostgreSQL and a moto server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from dagster import AssetCheckSeverity, DagsterInstance, instance_for_test

from assets.ingest import CHECK_SCHEMA_DRIFT, ENTITIES
from pipeline_defs.cli import cli
from resources.ingest import loader
from resources.settings import get_settings
from resources.sources.catalogue import SHIPPED, get_sources
from tests.api.conftest import make_client
from tests.support.ingest import Driver, RawFiles, q, q1

pytestmark = pytest.mark.integration

NAME_GONE = (
    "required field name: `company_name` missing in 100% of records; new field `companyName` present in "
    "100% (add it to the name paths of the source's definition, then reprocess)"
)


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


@pytest.fixture
def driver(stack: Any, instance: DagsterInstance) -> Driver:
    return Driver(stack, instance)


def _export(n: int, start: int = 0, name: str = "company_name", **extra: Any) -> dict[str, Any]:
    return {
        "records": [
            {
                "customer_id": f"C-{i}",
                name: f"Company {i}",
                "annual_revenue": 1000 + i,
                "email": f"c{i}@example.com",
                **extra,
            }
            for i in range(start, start + n)
        ]
    }


def _cli(*args: str) -> str:
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _drift_check(run: Any) -> Any:
    [check] = [e for e in run.get_asset_check_evaluations() if e.check_name == CHECK_SCHEMA_DRIFT]
    return check


def _profile(url: str) -> list[tuple]:
    """The source's profile, with the files that first and last showed each field by key."""
    return q(
        url,
        """SELECT f.source_system, f.field, first.s3_key, last.s3_key, f.files_seen, f.always_present, f.types
           FROM ingest.source_fields f JOIN ingest.files first ON first.file_id = f.first_seen_file_id
                JOIN ingest.files last ON last.file_id = f.last_seen_file_id
           ORDER BY 1, 2""",
    )


def test_the_first_file_establishes_the_profile_and_an_unchanged_second_file_reports_no_drift(
    driver: Driver, stack: Any
) -> None:
    driver.upload("crm-data/a.json", _export(30))
    [first] = driver.tick_and_run()
    driver.upload("crm-data/b.json", _export(30, start=30))
    [second] = driver.tick_and_run()

    url = stack.pg.owner_url
    assert q(url, "SELECT s3_key, status, drift FROM ingest.files ORDER BY file_id") == [
        ("crm-data/a.json", "loaded", None),
        ("crm-data/b.json", "loaded", None),
    ]
    for run in (first, second):
        assert run.success and _drift_check(run).passed
    both = ("crm-data/a.json", "crm-data/b.json", 2, True)
    assert _profile(url) == [
        ("crm", "annual_revenue", *both, ["number"]),
        ("crm", "company_name", *both, ["string"]),
        ("crm", "customer_id", *both, ["string"]),
        ("crm", "email", *both, ["string"]),
    ]


def test_a_renamed_field_is_a_drift_finding_on_the_file_shown_by_the_cli_the_api_and_the_run(
    driver: Driver, stack: Any, instance: DagsterInstance
) -> None:
    driver.upload("crm-data/a.json", _export(30))
    driver.settle()
    renamed = _export(30, start=30)
    for r in renamed["records"]:
        r["emailAddress"] = r.pop("email")
    driver.upload("crm-data/b.json", renamed)
    [run] = driver.tick_and_run()

    assert run.success  # a warning: the file loaded
    url = stack.pg.owner_url
    drift = q1(url, "SELECT drift FROM ingest.files WHERE s3_key = 'crm-data/b.json'")
    assert drift["marker"] == "+1 -1"
    assert drift["new"] == [{"field": "emailAddress", "share": 1.0}]
    assert drift["missing"] == [{"field": "email", "share": 1.0}]
    assert drift["summary"] == "new: emailAddress (100%); missing: email (in 100%)"
    assert q1(url, "SELECT count(*) FROM canonical.entities") == 60

    check = _drift_check(run)
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.description == "crm-data/b.json: new: emailAddress (100%); missing: email (in 100%)"
    assert check.metadata["drifted_files"].value == 1
    event = instance.get_latest_materialization_event(ENTITIES)
    assert event is not None and event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    assert metadata["drifted_files"].value == 1
    assert metadata["drift"].value["crm-data/b.json"]["marker"] == "+1 -1"
    assert "loaded (drift +1 -1)" in metadata["files"].value

    listed = _cli("files").splitlines()
    assert listed[0].split()[-2:] == ["drift", "reason"]
    assert listed[2].startswith("crm-data/b.json") and "+1 -1" in listed[2]
    assert "+1" not in listed[3]  # the first file established the profile
    history = _cli("history", "crm-data/b.json")
    assert "new field emailAddress: in 100% of records" in history
    assert "missing field email: absent from 100%" in history

    with make_client(stack, "http://127.0.0.1:9") as api:
        listed_api = api.get("/ingest/files").json()["data"]
        assert [f["drift"] and f["drift"]["marker"] for f in listed_api] == ["+1 -1", None]
        detail = api.get("/ingest/files/crm-data/b.json").json()["file"]["drift"]
        assert detail["new"] == [{"field": "emailAddress", "share": 1.0}]
        assert detail["counts"] == {"new": 1, "missing": 1, "types": 0, "required": 0}


def test_a_field_that_was_a_number_and_arrives_as_text_is_reported_as_a_type_change(
    driver: Driver, stack: Any
) -> None:
    driver.upload("crm-data/a.json", _export(30))
    driver.settle()
    as_text = _export(30, start=30)
    for r in as_text["records"]:
        r["annual_revenue"] = str(r["annual_revenue"])
    driver.upload("crm-data/b.json", as_text)
    [run] = driver.tick_and_run()

    drift = q1(stack.pg.owner_url, "SELECT drift FROM ingest.files WHERE s3_key = 'crm-data/b.json'")
    assert drift["types"] == [{"field": "annual_revenue", "before": ["number"], "now": ["string"]}]
    assert drift["marker"] == "~1" and not drift["new"] and not drift["missing"]
    assert "annual_revenue number → string" in (_drift_check(run).description or "")
    # Reported once: the source's profile now knows text revenue.
    assert q1(
        stack.pg.owner_url, "SELECT types FROM ingest.source_fields WHERE field = 'annual_revenue'"
    ) == ["number", "string"]


@pytest.fixture
def company_name_defined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A deployment's crm definition that also reads `companyName` (set when the test asks for it)."""
    crm = json.loads((SHIPPED / "crm.json").read_text())
    crm["fields"]["name"] = [*crm["fields"]["name"], "companyName"]
    folder = tmp_path / "source-definitions"
    folder.mkdir()
    (folder / "crm.json").write_text(json.dumps(crm))
    yield folder
    get_settings.cache_clear()
    get_sources.cache_clear()


def test_a_renamed_required_field_fails_the_file_with_one_finding_landing_nothing_then_loads_once_defined(
    driver: Driver, stack: Any, company_name_defined: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver.upload("crm-data/a.json", _export(30))
    driver.settle()
    url = stack.pg.owner_url
    profile_before = _profile(url)
    driver.upload("crm-data/b.json", _export(40, start=30, name="companyName"))
    [run] = driver.tick_and_run()

    assert not run.success
    assert q(
        url, "SELECT status, failure_kind, reason FROM ingest.files WHERE s3_key = 'crm-data/b.json'"
    ) == [("failed", "data", NAME_GONE)]
    drift = q1(url, "SELECT drift FROM ingest.files WHERE s3_key = 'crm-data/b.json'")
    assert drift["marker"] == "!name +1 -1"
    assert [(r["field"], r["usual"], r["suggestion"]) for r in drift["required"]] == [
        ("name", "company_name", "companyName")
    ]
    # Nothing of it landed: no entity, no refused record, the source's profile as it was.
    assert q1(url, "SELECT count(*) FROM canonical.entities") == 30
    assert q1(url, "SELECT count(*) FROM ingest.rejected_records") == 0
    assert _profile(url) == profile_before
    [failed_row] = [line for line in _cli("files").splitlines() if line.startswith("crm-data/b.json")]
    assert "failed" in failed_row and "!name +1 -1" in failed_row
    assert "required field name: `company_name` missing" in failed_row

    monkeypatch.setenv("SOURCE_DEFINITIONS_PATH", str(company_name_defined))
    get_sources.cache_clear()
    assert "attempt 2 is pending" in _cli("reprocess", "crm-data/b.json")
    driver.settle()

    assert q(url, "SELECT status, reason FROM ingest.files WHERE s3_key = 'crm-data/b.json'") == [
        ("loaded", None)
    ]
    assert q1(url, "SELECT count(*) FROM canonical.entities") == 70
    assert q1(url, "SELECT name FROM canonical.entities WHERE canonical_id = 'crm_C-35'") == "Company 35"
    drift = q1(url, "SELECT drift FROM ingest.files WHERE s3_key = 'crm-data/b.json'")
    assert drift["marker"] == "+1 -1" and drift["required"] == []
    assert q(
        url,
        """SELECT a.outcome, a.cause FROM ingest.file_attempts a JOIN ingest.files f USING (file_id)
           WHERE f.s3_key = 'crm-data/b.json' ORDER BY a.file_attempt_id""",
    ) == [("failed", None), ("loaded", "reprocess")]


def test_a_chunked_load_whose_name_is_gone_lands_nothing_of_its_merged_chunks(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = RawFiles(stack)
    url = stack.pg.owner_url
    files.ingest(files.add("crm-data/a.json", _export(30)))
    profile_before = _profile(url)
    # 4 of 100 records still carry the name (under the 5 % threshold): they are merged chunk by chunk
    # while the file is read, then rolled back with the rest.
    records = _export(96, start=100, name="companyName")["records"] + _export(4, start=300)["records"]
    monkeypatch.setattr(loader, "CHUNK_ROWS", 2)
    outcome = files.ingest(files.add("crm-data/b.json", records))

    assert outcome.failure_kind == "data" and outcome.drift is not None
    assert outcome.error is not None and outcome.error.startswith(
        "required field name: `company_name` missing in 96% of records; new field `companyName` present in 96%"
    )
    assert q1(url, "SELECT count(*) FROM canonical.entities") == 30
    assert q1(url, "SELECT count(*) FROM ingest.rejected_records") == 0
    assert _profile(url) == profile_before


def test_a_file_that_fails_while_read_leaves_the_source_profile_as_it_was(stack: Any) -> None:
    files = RawFiles(stack)
    url = stack.pg.owner_url
    files.ingest(files.add("crm-data/a.json", _export(30)))
    profile_before = _profile(url)
    body = json.dumps(_export(30, start=30, extra_field=1))[:-40]  # cut off mid-record
    outcome = files.ingest(files.add("crm-data/b.json", body))
    assert outcome.failure_kind == "data" and outcome.drift is None
    assert _profile(url) == profile_before
    assert q1(url, "SELECT drift FROM ingest.files WHERE s3_key = 'crm-data/b.json'") is None


def test_a_replay_keeps_each_files_findings_and_leaves_the_source_profile_as_it_was(stack: Any) -> None:
    from resources.ingest.replay import ReplayPlan, plan_replay, replay_files

    files = RawFiles(stack)
    url = stack.pg.owner_url
    files.ingest(files.add("crm-data/a.json", _export(30)))
    files.ingest(files.add("crm-data/b.json", _export(30, start=30, tier="gold")))
    findings = q(url, "SELECT s3_key, drift->>'marker' FROM ingest.files ORDER BY s3_key")
    assert findings == [("crm-data/a.json", None), ("crm-data/b.json", "+1")]
    profile_before = _profile(url)

    with psycopg.connect(stack.settings.database_url) as conn:
        plan = plan_replay(conn, "crm")
        assert isinstance(plan, ReplayPlan)
        replayed = list(replay_files(conn, files.s3, files.bucket, plan, "replay-run"))
    assert [r.outcome.ok for r in replayed] == [True, True]
    assert q(url, "SELECT s3_key, drift->>'marker' FROM ingest.files ORDER BY s3_key") == findings
    assert _profile(url) == profile_before
