"""Upload → landing_sensor tick → ingest run → rows, against embedded PostgreSQL and a moto server."""

from __future__ import annotations

import gzip
import json

import pytest
from dagster import DagsterInstance, instance_for_test

from assets.ingest import ENTITIES
from tests.support.ingest import Driver, q, q1
from tests.support.stack import SAMPLES

pytestmark = pytest.mark.integration

SEED = (SAMPLES / "crm-data" / "customer-data.json").read_bytes()


@pytest.fixture
def instance() -> DagsterInstance:
    with instance_for_test() as inst:
        yield inst


@pytest.fixture
def driver(stack, instance) -> Driver:
    return Driver(stack, instance)


def _materialization_metadata(instance: DagsterInstance) -> dict:
    ev = instance.get_latest_materialization_event(ENTITIES)
    assert ev is not None
    return {k: v.value for k, v in ev.asset_materialization.metadata.items()}


def test_seed_export_lands_as_ten_entities_with_counts_in_the_materialization(driver, stack, instance):
    driver.upload("crm-data/customer-data.json", SEED)
    result = driver.tick()
    assert len(result.run_requests) == 1
    [run] = driver.run(result)
    assert run.success
    url = stack.pg.owner_url
    assert q1(url, "SELECT count(*) FROM canonical.entities") == 10
    assert (
        q1(
            url,
            "SELECT count(DISTINCT canonical_id) FROM canonical.entities WHERE canonical_id LIKE 'crm_CUST-%'",
        )
        == 10
    )
    row = q(url, "SELECT status, received, inserted, updated, unchanged, rejected FROM ingest.files")
    assert row == [("loaded", 10, 10, 0, 0, 0)]
    meta = _materialization_metadata(instance)
    assert (meta["received"], meta["inserted"], meta["updated"], meta["unchanged"], meta["rejected"]) == (
        10,
        10,
        0,
        0,
        0,
    )
    assert meta["dagster/row_count"] == 10  # the table's rows, not this run's
    # lineage
    lineage = q(url, "SELECT metadata FROM canonical.entities WHERE canonical_id = 'crm_CUST-1001'")[0][0]
    assert lineage["source_key"] == "crm-data/customer-data.json"
    assert lineage["run_id"] == run.run_id
    assert lineage["source_id"] == "CUST-1001"
    assert "transformation_version" in lineage and 0 <= lineage["data_quality"] <= 1
    checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
    assert checks == {
        "refused_share_below_threshold": True,
        "no_entity_moved_back_in_source_order": True,
        "newest_file_within_freshness_bound": True,
        "required_attributes_present": True,
        "coded_values_in_vocabularies": True,
        "no_snapshot_held": True,
        "loaded_files_kept_their_source_shape": True,
    }
    # the real CRM export states its own date: that is the file's place in the source's history
    assert q(url, "SELECT source_file_at::text, superseded FROM ingest.files") == [
        ("2024-11-17 10:40:00+00", 0)
    ]
    assert (
        q1(url, "SELECT count(*) FROM canonical.entities WHERE source_file_at = '2024-11-17T10:40:00Z'") == 10
    )


def test_same_bytes_uploaded_again_are_not_ingested_again(driver, stack):
    driver.upload("crm-data/customer-data.json", SEED)
    driver.settle()
    driver.upload("crm-data/customer-data.json", SEED)  # same key, same ETag: already handled
    result = driver.tick()
    assert not result.run_requests
    assert q1(stack.pg.owner_url, "SELECT count(*) FROM ingest.files") == 1


def test_same_records_under_a_new_key_change_nothing(driver, stack):
    driver.upload("crm-data/customer-data.json", SEED)
    driver.settle()
    driver.upload("crm-data/customer-data-copy.json", SEED)
    driver.settle()
    url = stack.pg.owner_url
    assert q(url, "SELECT inserted, updated, unchanged FROM ingest.files WHERE s3_key LIKE '%copy%'") == [
        (0, 0, 10)
    ]
    assert q1(url, "SELECT max(version) FROM canonical.entities") == 1
    assert q1(url, "SELECT count(*) FROM canonical.entity_history") == 0


def test_a_changed_record_gets_version_2_and_its_previous_version_in_history(driver, stack):
    driver.upload("crm-data/customer-data.json", SEED)
    driver.settle()
    doc = json.loads(SEED)
    doc["records"][0]["annual_revenue"] = 99_000_000
    driver.upload("crm-data/customer-data.json", json.dumps(doc))  # same key, new ETag: new work
    driver.settle()
    url = stack.pg.owner_url
    assert q(
        url,
        "SELECT version, revenue, entity_type FROM canonical.entities WHERE canonical_id = 'crm_CUST-1001'",
    ) == [(2, 99_000_000, "large_enterprise")]
    assert q(
        url, "SELECT version, (attributes->>'annual_revenue')::numeric FROM canonical.entity_history"
    ) == [(1, 2_500_000)]
    assert q1(url, "SELECT count(*) FROM canonical.entities WHERE version > 1") == 1
    assert q(url, "SELECT inserted, updated, unchanged FROM ingest.files ORDER BY file_id DESC LIMIT 1") == [
        (0, 1, 9)
    ]


def test_a_changed_object_under_the_same_key_is_new_work(driver, stack):
    driver.upload("crm-data/a.json", {"records": [{"id": 1, "name": "A"}]})
    driver.settle()
    driver.upload("crm-data/a.json", {"records": [{"id": 1, "name": "A2"}]})
    driver.settle()
    rows = q(
        stack.pg.owner_url,
        "SELECT status FROM ingest.files WHERE s3_key = 'crm-data/a.json' ORDER BY file_id",
    )
    assert rows == [("loaded",), ("loaded",)]


def test_gzip_ndjson_and_array_files_all_load(driver, stack):
    driver.upload(
        "erp-data/a.json", [{"id": "E1", "business_name": "Erp One", "financials": {"annualRevenue": 5}}]
    )
    driver.upload(
        "legacy-data/b.ndjson.gz",
        gzip.compress(b'{"id": 7, "name": "Legacy Seven"}\n{"id": 8, "name": "Legacy Eight"}\n'),
    )
    driver.upload(
        "crm-data/c.json.gz", gzip.compress(json.dumps({"records": [{"id": 3, "name": "C"}]}).encode())
    )
    driver.settle()
    ids = {r[0] for r in q(stack.pg.owner_url, "SELECT canonical_id FROM canonical.entities")}
    assert ids == {"erp_E1", "legacy_7", "legacy_8", "crm_3"}


def test_malformed_json_fails_the_file_with_position_lands_nothing_and_is_not_retried(driver, stack):
    good = [{"id": i, "name": f"N{i}"} for i in range(50)]
    body = json.dumps({"records": good})[:-30] + "{{{ broken"
    driver.upload("crm-data/broken.json", body)
    [run] = driver.tick_and_run()
    assert not run.success
    url = stack.pg.owner_url
    status, reason = q(url, "SELECT status, reason FROM ingest.files")[0]
    assert status == "failed"
    assert "malformed JSON" in reason and "near byte" in reason and "after record" in reason
    assert q1(url, "SELECT count(*) FROM canonical.entities") == 0
    assert q1(url, "SELECT count(*) FROM ingest.rejected_records") == 0
    assert not driver.tick().run_requests  # no retry loop


def test_one_bad_file_in_a_batch_does_not_block_the_others(driver, stack):
    driver.upload("crm-data/1-good.json", {"records": [{"id": 1, "name": "Good"}]})
    driver.upload("crm-data/2-bad.json", "{not json")
    driver.upload("crm-data/3-good.json", {"records": [{"id": 3, "name": "Also good"}]})
    result = driver.tick()
    assert len(result.run_requests) == 1  # one batch
    [run] = driver.run(result)
    assert not run.success
    statuses = dict(q(stack.pg.owner_url, "SELECT s3_key, status FROM ingest.files"))
    assert statuses == {
        "crm-data/1-good.json": "loaded",
        "crm-data/2-bad.json": "failed",
        "crm-data/3-good.json": "loaded",
    }
    assert q1(stack.pg.owner_url, "SELECT count(*) FROM canonical.entities") == 2


def test_invalid_records_are_refused_with_reasons_and_valid_ones_land(driver, stack):
    records = [
        {"id": 1, "name": "Valid"},
        {"id": 2},  # no name
        {"name": "No id"},
        {"id": 4, "name": "Neg", "annual_revenue": -5},
        {"id": 5, "name": "Text", "employee_count": "many"},
        {"id": 6, "name": "Huge", "annual_revenue": 10**40},
        {"id": 7, "name": "Bool", "annual_revenue": True},
        "not an object",
        {"id": 9, "name": "Zoë Ünïcødé 株式会社 🚀"},
        {"id": 10, "name": "nul\u0000char"},
    ]
    driver.upload("crm-data/mixed.json", {"records": records})
    [run] = driver.tick_and_run()
    # 8 of 10 refused is over the 0.5 threshold: the blocking check fails the run, but what was valid
    # has landed and every refusal is kept.
    assert not run.success
    checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
    assert checks["refused_share_below_threshold"] is False
    url = stack.pg.owner_url
    assert sorted(r[0] for r in q(url, "SELECT canonical_id FROM canonical.entities")) == ["crm_1", "crm_9"]
    assert (
        q1(url, "SELECT name FROM canonical.entities WHERE canonical_id = 'crm_9'")
        == "Zoë Ünïcødé 株式会社 🚀"
    )
    refused = q(url, "SELECT record_index, reasons FROM ingest.rejected_records ORDER BY record_index")
    codes = {idx: {r["code"] for r in reasons} for idx, reasons in refused}
    assert codes[1] == {"missing_name"}
    assert codes[2] == {"missing_id"}
    assert codes[3] == {"negative"}
    assert codes[4] == {"not_numeric"}
    assert codes[5] == {"out_of_range"}
    assert codes[6] == {"not_numeric"}
    assert codes[7] == {"not_an_object"}
    assert codes[9] == {"unstorable_text"}
    assert q(url, "SELECT received, inserted, rejected FROM ingest.files") == [(10, 2, 8)]
    # The refused record is kept as received, even one PostgreSQL's jsonb cannot hold.
    assert "\\u0000" in q1(url, "SELECT record FROM ingest.rejected_records WHERE record_index = 9")


def test_duplicate_ids_in_one_file_last_one_wins_and_the_metadata_says_so(driver, stack, instance):
    driver.upload(
        "crm-data/dups.json",
        {"records": [{"id": 1, "name": "First"}, {"id": 2, "name": "Other"}, {"id": 1, "name": "Last"}]},
    )
    driver.settle()
    url = stack.pg.owner_url
    assert q1(url, "SELECT name FROM canonical.entities WHERE canonical_id = 'crm_1'") == "Last"
    assert q(url, "SELECT received, inserted, duplicates, unchanged FROM ingest.files") == [(3, 2, 1, 0)]
    assert _materialization_metadata(instance)["duplicates"] == 1


def test_an_empty_json_document_loads_nothing_and_a_zero_byte_file_is_skipped(driver, stack):
    driver.upload("crm-data/empty-records.json", {"records": []})
    driver.upload("crm-data/zero.json", b"")
    driver.settle()
    rows = {k: (s, r) for k, s, r in q(stack.pg.owner_url, "SELECT s3_key, status, reason FROM ingest.files")}
    assert rows["crm-data/empty-records.json"] == ("loaded", None)
    assert rows["crm-data/zero.json"][0] == "skipped" and "empty" in rows["crm-data/zero.json"][1]


@pytest.mark.parametrize(
    "body, expected",
    [
        ('"just a string"', "expected a JSON object"),
        ("42", "expected a JSON object"),
        ('{"rows": [1, 2]}', "no 'records' array"),
        ('{"records": {"id": 1}}', "'records' must be an array"),
    ],
)
def test_json_that_is_not_records_fails_the_file_clearly(driver, stack, body, expected):
    driver.upload("legacy-data/odd.json", body)
    driver.settle()
    status, reason = q(stack.pg.owner_url, "SELECT status, reason FROM ingest.files")[0]
    assert status == "failed" and expected in reason


def test_objects_the_pipeline_will_not_process_are_recorded_with_the_reason(driver, stack):
    driver.upload("elsewhere/x.json", {"records": []})
    driver.upload("crm-data/notes.txt", "hello")
    driver.tick()
    rows = {k: (s, r) for k, s, r in q(stack.pg.owner_url, "SELECT s3_key, status, reason FROM ingest.files")}
    assert rows["elsewhere/x.json"][0] == "skipped" and "unknown prefix" in rows["elsewhere/x.json"][1]
    assert (
        rows["crm-data/notes.txt"][0] == "skipped"
        and "unsupported extension" in rows["crm-data/notes.txt"][1]
    )


def test_relationships_and_monthly_time_series_land_with_partitions_created(driver, stack):
    driver.upload(
        "erp-data/group.json",
        [
            {"id": "P", "business_name": "Parent Co"},
            {
                "id": "C",
                "business_name": "Child Co",
                "parent_company_id": "P",
                "metrics": [
                    {"date": "2024-01-31", "type": "monthly_revenue", "value": 10},
                    {"date": "2024-02-29", "type": "monthly_revenue", "value": 12.5},
                ],
            },
        ],
    )
    driver.settle()
    url = stack.pg.owner_url
    assert q(url, "SELECT parent_canonical_id, child_canonical_id FROM canonical.entity_relationships") == [
        ("erp_P", "erp_C")
    ]
    points = q(
        url, "SELECT tableoid::regclass::text, value FROM canonical.time_series_data ORDER BY observed_at"
    )
    assert [p[0] for p in points] == [
        "canonical.time_series_data_2024_01",
        "canonical.time_series_data_2024_02",
    ]
    assert [float(p[1]) for p in points] == [10.0, 12.5]


def test_reprocess_runs_a_loaded_file_again_on_purpose(driver, stack):
    import psycopg

    from resources.ingest.registry import request_reprocess

    driver.upload("crm-data/customer-data.json", SEED)
    driver.settle()
    with psycopg.connect(stack.pg.writer_url) as conn:
        row = request_reprocess(conn, "crm-data/customer-data.json")
    assert row.status == "pending" and row.attempt == 2
    [run] = driver.tick_and_run()
    assert run.success
    assert q(stack.pg.owner_url, "SELECT status, attempt, unchanged FROM ingest.files") == [("loaded", 2, 10)]


def _refused_metric_sum(stack) -> float:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    stats = stack.client("cloudwatch").get_metric_statistics(
        Namespace="CanonicalPipeline",
        MetricName="RefusedRecords",
        StartTime=now - dt.timedelta(hours=1),
        Dimensions=[{"Name": "Environment", "Value": stack.settings.pipeline_env}],  # what its alarm watches
        EndTime=now + dt.timedelta(minutes=5),
        Period=3600,
        Statistics=["Sum"],
    )
    return sum(p["Sum"] for p in stats["Datapoints"])


def test_a_few_refused_records_under_the_threshold_pass_the_blocking_check(driver, stack):
    records = [{"id": i, "name": f"Co {i}"} for i in range(9)] + [{"id": 99, "annual_revenue": "lots"}]
    driver.upload("crm-data/mostly-good.json", {"records": records})
    before = _refused_metric_sum(stack)
    [run] = driver.tick_and_run()
    assert run.success
    assert _refused_metric_sum(stack) - before == 1  # the CloudWatch alarm's input
    assert q(stack.pg.owner_url, "SELECT received, inserted, rejected FROM ingest.files") == [(10, 9, 1)]
    reasons = q1(stack.pg.owner_url, "SELECT reasons FROM ingest.rejected_records")
    assert {r["code"] for r in reasons} == {"missing_name", "not_numeric"}


def test_monthly_partitions_are_bounded_in_utc_whatever_the_session_time_zone(db):
    import psycopg

    with psycopg.connect(db.writer_url) as conn:
        conn.execute("SET TimeZone = 'America/New_York'")
        conn.execute("SELECT canonical.ensure_time_series_partitions(ARRAY['2031-03-01'::date])")
        conn.execute("SET TimeZone = 'UTC'")
        bound = conn.execute(
            "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c "
            "WHERE c.relname = 'time_series_data_2031_03'"
        ).fetchone()[0]
        conn.rollback()
    assert bound == "FOR VALUES FROM ('2031-03-01 00:00:00+00') TO ('2031-04-01 00:00:00+00')"
