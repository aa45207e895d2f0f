"""replay_source: launched with a source (and since), it replays that source's loaded files in the run, logs
each and reports the totals; against embedded PostgreSQL and a moto server, with the real resources."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, instance_for_test

from assets.ingest import ENTITIES, TIME_SERIES
from resources.contract import REPLAY_JOB, REPLAY_OP, replay_run_config
from tests.support.ingest import Driver, q
from tests.support.sources import Redefinitions, redefinitions

pytestmark = pytest.mark.integration


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


@pytest.fixture
def driver(stack, instance) -> Driver:
    return Driver(stack, instance)


@pytest.fixture
def redefine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Redefinitions]:
    with redefinitions(tmp_path / "source-definitions", monkeypatch) as r:
        yield r


def _replay(driver: Driver, source: str, since: str | None = None):
    job = driver.defs.resolve_job_def(REPLAY_JOB)
    return job.execute_in_process(
        run_config=replay_run_config(source, since), instance=driver.instance, raise_on_error=False
    )


def _messages(instance: DagsterInstance, run_id: str) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id) if e.user_message]


def test_replay_source_replays_the_sources_files_logs_each_and_reports_the_totals(
    driver, stack, instance, redefine
):
    driver.upload(
        "crm-data/a.json",
        {"records": [{"id": "A", "name": "Alpha", "revenue": 100}, {"id": "B", "name": "Beta"}]},
    )
    driver.upload("crm-data/b.json", {"records": [{"id": "C", "name": "Gamma", "revenue": 300}]})
    driver.upload("erp-data/e.json", {"records": [{"id": "E", "name": "Erp", "revenue": 1}]})
    driver.settle()
    version = redefine.revenue_scale("crm", "0.01")

    result = _replay(driver, "crm")

    assert result.success
    totals = result.output_for_node(REPLAY_OP)
    assert {k: totals[k] for k in ("files", "replayed", "skipped", "failed", "updated", "unchanged")} == {
        "files": 2,
        "replayed": 2,
        "skipped": 0,
        "failed": 0,
        "updated": 2,
        "unchanged": 1,
    }
    [output] = [e for e in result.all_node_events if e.event_type == DagsterEventType.STEP_OUTPUT]
    metadata = {k: v.value for k, v in output.step_output_data.metadata.items()}
    assert metadata["transformation_version"] == version and metadata["updated"] == 2
    messages = _messages(instance, result.run_id)
    assert any(m.startswith("[1/2] crm-data/a.json: 2 received, 0 inserted, 1 updated") for m in messages)
    assert any(m.startswith("[2/2] crm-data/b.json: 1 received, 0 inserted, 1 updated") for m in messages)
    assert any(m.startswith("replayed 2 of 2 file(s) of crm") for m in messages)
    [materialization] = result.asset_materializations_for_node(REPLAY_OP)
    assert materialization.asset_key == ENTITIES and materialization.metadata["updated"].value == 2
    assert TIME_SERIES not in {m.asset_key for m in result.asset_materializations_for_node(REPLAY_OP)}

    url = stack.pg.owner_url
    assert q(
        url,
        "SELECT f.s3_key, a.attempt, a.cause, a.run_id = %s FROM ingest.file_attempts a "
        "JOIN ingest.files f USING (file_id) ORDER BY f.s3_key, a.attempt",
        (result.run_id,),
    ) == [
        ("crm-data/a.json", 1, None, False),
        ("crm-data/a.json", 2, "replay", True),
        ("crm-data/b.json", 1, None, False),
        ("crm-data/b.json", 2, "replay", True),
        ("erp-data/e.json", 1, None, False),
    ]
    assert q(
        url,
        "SELECT canonical_id, metadata->>'transformation_version' = %s FROM canonical.entities ORDER BY 1",
        (version,),
    ) == [("crm_A", True), ("crm_B", False), ("crm_C", True), ("erp_E", False)]

    # Replayed again, nothing changes: no materialization, the same totals of unchanged records.
    again = _replay(driver, "crm", since="2000-01-01")
    assert again.success and again.output_for_node(REPLAY_OP)["unchanged"] == 3
    assert again.asset_materializations_for_node(REPLAY_OP) == []


def test_an_unknown_source_or_a_bad_since_fails_the_run_at_once_saying_why(driver, instance):
    unknown = _replay(driver, "sap")
    assert not unknown.success
    [failure] = [e for e in unknown.all_node_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert "unknown source 'sap': the defined sources are crm, erp, legacy" in str(
        failure.step_failure_data.error
    )
    bad_since = _replay(driver, "crm", since="last week")
    assert not bad_since.success
    [failure] = [e for e in bad_since.all_node_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert "'last week' is not a date" in str(failure.step_failure_data.error)
