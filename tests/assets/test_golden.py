"""canonical/golden_entities on the real PostgreSQL, after the sample files went through the real ingest
path: the matching engine's clusters written through the golden store."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import DagsterInstance, Definitions, instance_for_test

from assets.golden import GOLDEN_ENTITIES, GoldenConfig, _choose_mode
from bench.resolution_data import generate
from pipeline_defs.domains.golden import golden_definitions
from resources.golden.queries import record_decision
from resources.golden.run import incremental_scope
from resources.golden.store import save_model
from resources.resolution.config import ResolutionConfig, TrainingSettings
from resources.resolution.inputs import frame_from_rows
from resources.resolution.model import MatchModel, shipped_model
from resources.resolution.resolve import Resolution, resolve
from tests.resources.resolution.test_resolve import _sample_records
from tests.support.golden import membership
from tests.support.ingest import Driver, q1
from tests.support.stack import SAMPLES

pytestmark = pytest.mark.integration

OP = "canonical__golden_entities"
TECH_CORP = ("crm_CUST-1001", "erp_ERP-2001", "legacy_30001")
TECH_CORP_EUROPE = "erp_ERP-2002"
# Training on a few hundred records: fewer random pairs for u keeps it to seconds.
FAST_TRAINING = {"training": {"u_max_pairs": 3e4}}


@pytest.fixture(scope="module")
def model() -> MatchModel:
    """A model trained as the engine's own tests train it (the samples alone hold too few pairs for EM)."""
    frame = frame_from_rows(asdict(r) for r in _sample_records())
    generated = generate(400, seed=11).records.drop(columns=["entity_id"])
    out = resolve(
        frame._append(generated, ignore_index=True),
        ResolutionConfig(training=TrainingSettings(u_max_pairs=3e4)),
    )
    assert isinstance(out, Resolution)
    return out.model


@pytest.fixture
def instance() -> Any:
    with instance_for_test() as inst:
        yield inst


@pytest.fixture
def driver(stack: Any, instance: DagsterInstance, model: MatchModel) -> Driver:
    """The three sample files and a few dozen generated companies ingested through landing_sensor and
    ingest_job, the trained model active. The generated ones matter: on the samples alone (23 records) a
    name held by three of them reads as common, and its term-frequency adjustment weakens it."""
    d = Driver(stack, instance)
    d.upload("crm-data/customer-data.json", (SAMPLES / "crm-data" / "customer-data.json").read_bytes())
    d.upload("erp-data/erp-accounts.json", (SAMPLES / "erp-data" / "erp-accounts.json").read_bytes())
    d.upload(
        "legacy-data/legacy-companies.ndjson",
        (SAMPLES / "legacy-data" / "legacy-companies.ndjson").read_bytes(),
    )
    d.upload("legacy-data/generated-small.ndjson", _generated_file(60, seed=5, first_id=700000))
    d.settle()
    assert d.results and all(r.success for r in d.results)
    with psycopg.connect(stack.settings.database_url) as conn:
        save_model(conn, model.settings)
    return d


def run_golden(driver: Driver, **config: Any) -> Any:
    defs = Definitions.merge(golden_definitions(), Definitions(resources=driver.resources))
    result = defs.resolve_job_def("golden_entities_job").execute_in_process(
        run_config={"ops": {OP: {"config": config}}}, instance=driver.instance, raise_on_error=False
    )
    return result


def metadata(result: Any) -> dict[str, Any]:
    [mat] = result.asset_materializations_for_node(OP)
    return {k: v.value for k, v in mat.metadata.items()}


def partition(url: str) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for cid, gid in membership(url).items():
        groups.setdefault(gid, set()).add(cid)
    return {frozenset(g) for g in groups.values()}


def test_after_ingest_tech_corp_from_three_systems_is_one_golden_entity_and_its_subsidiary_another(
    driver: Driver, stack: Any
) -> None:
    result = run_golden(driver)
    assert result.success
    members = membership(stack.pg.owner_url)
    assert members[TECH_CORP[0]] == members[TECH_CORP[1]] == members[TECH_CORP[2]]
    assert members[TECH_CORP_EUROPE] != members[TECH_CORP[0]]
    entities = q1(stack.pg.owner_url, "SELECT count(*) FROM canonical.entities")
    assert len(members) == entities
    meta = metadata(result)
    assert meta["mode"] == "full" and meta["model_trained"] is False
    assert meta["entities"] == entities and meta["ids_created"] == meta["clusters"]
    assert meta["largest_entity"] >= 3 and meta["multi_member_entities"] >= 1
    assert {"read", "normalise", "predict", "cluster", "write"} <= {
        c.strip() for c in meta["timings"].split("|")
    }
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "no_golden_entity_holds_two_records_of_a_source_without_duplicates": True,
        "every_canonical_entity_in_exactly_one_golden_entity": True,
        "review_queue_growth_within_bound": True,
    }


def test_a_second_run_with_no_change_changes_no_golden_id(driver: Driver, stack: Any) -> None:
    assert run_golden(driver).success
    before = membership(stack.pg.owner_url)
    again = run_golden(driver)
    assert again.success
    assert metadata(again)["mode"] == "incremental"
    assert metadata(again)["entities_scored"] == 0
    assert (metadata(again)["ids_created"], metadata(again)["ids_retired"]) == (0, 0)
    full = run_golden(driver, mode="full")
    assert full.success
    assert (metadata(full)["ids_created"], metadata(full)["members_moved"]) == (0, 0)
    assert membership(stack.pg.owner_url) == before


def test_an_incremental_run_after_a_new_file_equals_a_full_run_on_the_same_data(
    driver: Driver, stack: Any
) -> None:
    first = run_golden(driver)
    assert first.success and metadata(first)["prepared_store"] == "written"
    new = [
        {
            "id": 39001,
            "name": "Tech Corp Global",
            "revenue": 2490000,
            "employees": 121,
            "industry": "Technology",
        },
        {"id": 39002, "name": "Harbour Lights Bakery", "revenue": 310000, "employees": 9, "industry": "Food"},
    ]
    driver.upload("legacy-data/late.ndjson", "\n".join(json.dumps(r) for r in new))
    driver.settle()
    incremental = run_golden(driver)
    assert incremental.success
    meta = metadata(incremental)
    assert meta["mode"] == "incremental" and meta["entities_scored"] == 2
    # The first run left a prepared store: the incremental one read only its delta and started from it.
    assert meta["prepared_store"] == "started from it"
    after_incremental = membership(stack.pg.owner_url)
    assert {"legacy_39001", "legacy_39002"} <= set(after_incremental)
    full = run_golden(driver, mode="full")
    assert full.success
    # Same partition, hence the same ids: the full run moves nothing the incremental one placed.
    assert membership(stack.pg.owner_url) == after_incremental
    assert (metadata(full)["ids_created"], metadata(full)["members_moved"]) == (0, 0)
    # The full run found the store the incremental one left, and moved it on rather than writing it anew.
    assert metadata(full)["prepared_store"] == "moved on"


def test_an_incremental_run_whose_prepared_store_is_stale_resolves_the_whole_store_and_writes_a_new_one(
    driver: Driver, stack: Any, tmp_path: Path
) -> None:
    kept = str(tmp_path / "prepared.duckdb")
    assert run_golden(driver, prepared_store_path=kept).success
    # A run that kept no store moves the store on: the kept one is no longer the last run's.
    driver.upload("legacy-data/late.ndjson", json.dumps({"id": 39003, "name": "Harbour Lights Bakery"}))
    driver.settle()
    assert run_golden(driver, prepared_store_path="off").success
    driver.upload("legacy-data/later.ndjson", json.dumps({"id": 39004, "name": "Tech Corp Global"}))
    driver.settle()
    stale = run_golden(driver, prepared_store_path=kept)
    assert stale.success
    meta = metadata(stale)
    assert meta["mode"] == "incremental" and "not the last run's" in meta["prepared_store"]
    after = membership(stack.pg.owner_url)
    again = run_golden(driver, prepared_store_path=kept)
    assert metadata(again)["prepared_store"] == "started from it"
    full = run_golden(driver, mode="full", prepared_store_path="off")
    assert membership(stack.pg.owner_url) == after
    assert (metadata(full)["ids_created"], metadata(full)["members_moved"]) == (0, 0)


def _generated_file(records: int, seed: int, first_id: int) -> str:
    """Generated companies as one legacy export (ids from `first_id`)."""
    data = generate(records, seed=seed).records
    lines = []
    for i, r in enumerate(data.to_dict("records")):
        rec = {"id": first_id + i, "name": r["name"]}
        for k in ("industry", "revenue", "employees", "country", "email", "website", "phone", "address"):
            v = r.get(k)
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                rec[k] = v
        lines.append(json.dumps(rec))
    return "\n".join(lines)


def test_a_steward_not_same_survives_the_next_resolution_and_a_retrain(
    driver: Driver, stack: Any, tmp_path: Path
) -> None:
    assert run_golden(driver).success
    with psycopg.connect(stack.settings.database_url) as conn:
        decision = record_decision(
            conn,
            kind="not_same",
            canonical_id="crm_CUST-1001",
            other_canonical_id="erp_ERP-2001",
            decided_by="steward@test",
        )
    assert not hasattr(decision, "code"), decision
    assert run_golden(driver).success
    members = membership(stack.pg.owner_url)
    assert members["crm_CUST-1001"] != members["erp_ERP-2001"]

    driver.upload("legacy-data/generated.ndjson", _generated_file(300, seed=13, first_id=800000))
    driver.settle()
    config = tmp_path / "resolution.json"
    config.write_text(json.dumps(FAST_TRAINING))
    retrained = run_golden(driver, retrain=True, config_path=str(config))
    assert retrained.success, [e.message for e in retrained.all_events if e.is_failure]
    meta = metadata(retrained)
    assert meta["model_trained"] is True and meta["mode"] == "full" and "model" in meta
    members = membership(stack.pg.owner_url)
    assert members["crm_CUST-1001"] != members["erp_ERP-2001"]
    assert (
        q1(stack.pg.owner_url, "SELECT model_version FROM golden.models WHERE active")
        == meta["model_version"]
    )


def test_an_incremental_run_without_a_previous_resolution_fails_with_the_reason(driver: Driver) -> None:
    result = run_golden(driver, mode="incremental")
    assert not result.success
    failure = result.failure_data_for_node(OP)
    assert failure is not None and "run it full" in failure.error.message


def test_auto_mode_is_incremental_only_when_the_active_model_scored_the_last_run() -> None:
    auto = GoldenConfig()
    assert _choose_mode(auto, "m1", ("r1", "full", "m1", None)) == "incremental"
    assert _choose_mode(auto, "m2", ("r1", "full", "m1", None)) == "full"
    assert _choose_mode(auto, "m1", None) == "full"
    assert _choose_mode(auto, None, None) == "full"
    assert _choose_mode(GoldenConfig(retrain=True), "m1", ("r1", "full", "m1", None)) == "full"
    assert "full" in _choose_mode(
        GoldenConfig(mode="incremental", retrain=True), "m1", ("r", "f", "m1", None)
    )


def test_the_incremental_scope_holds_every_golden_entity_and_cluster_the_delta_touched_whole() -> None:
    # d joins a's cluster, which took a out of G1 = {a, b}; c (G2) is untouched.
    clusters = {"a": "a", "d": "a", "b": "b", "c": "c"}
    previous = {"a": "G1", "b": "G1", "c": "G2"}
    assert incremental_scope(clusters, previous, ["d"]) == {"a", "b", "d"}
    assert incremental_scope(clusters, previous, []) == set()


def test_the_golden_asset_runs_after_ingest_by_its_automation_condition() -> None:
    from assets.golden import golden_entities

    spec = golden_entities.specs_by_key[GOLDEN_ENTITIES]
    assert spec.automation_condition is not None
    assert spec.automation_condition.get_label() == "eager"


def test_with_no_active_model_the_shipped_one_resolves_and_becomes_active(driver: Driver, stack: Any) -> None:
    url = stack.settings.database_url
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE golden.models SET active = false")
    result = run_golden(driver)
    assert result.success
    meta = metadata(result)
    shipped = shipped_model()
    assert meta["model_trained"] is False and meta["model_version"] == shipped.version
    with psycopg.connect(url) as conn:
        active = conn.execute("SELECT model_version FROM golden.models WHERE active").fetchall()
    assert active == [(shipped.version,)]


def test_the_golden_automation_sensor_runs_by_default_so_resolution_follows_ingest_unattended() -> None:
    from dagster import DefaultSensorStatus

    from assets.golden import golden_entities
    from pipeline_defs.domains.golden import golden_automation

    assert golden_automation.default_status == DefaultSensorStatus.RUNNING
    assert golden_automation.asset_selection.resolve([golden_entities]) == {GOLDEN_ENTITIES}


def test_every_run_shows_the_active_models_match_weights_not_only_a_training_one(driver: Driver) -> None:
    full = run_golden(driver)
    incremental = run_golden(driver)
    for result, mode in ((full, "full"), (incremental, "incremental")):
        assert result.success
        meta = metadata(result)
        assert meta["mode"] == mode and meta["model_trained"] is False
        assert meta["model"].startswith("| comparison | level | m | u | match weight |")
        assert meta["model_version"]
