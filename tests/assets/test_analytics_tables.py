"""Scheduled analytics as assets: materialized into schema `analytics` against real PostgreSQL, with
checks that can fail, on a daily and a monthly schedule; and the lineage from the raw files."""

import psycopg
import pytest
from dagster import AssetKey, build_schedule_context, instance_for_test, materialize

from assets.analytics_tables import (
    TABLES,
    AnalyticsTable,
    analytics_daily_schedule,
    analytics_monthly_schedule,
    analytics_table_assets,
    build_asset,
)
from assets.golden import GOLDEN_ENTITIES
from assets.ingest import ENTITIES
from assets.raw import RAW_FILES
from assets.schemas import ENTITIES_SCHEMA, RELATIONSHIPS_SCHEMA, TIME_SERIES_SCHEMA
from tests.support.ingest import Driver, q, q1
from tests.support.stack import SAMPLES

pytestmark = pytest.mark.integration


@pytest.fixture
def loaded(stack):
    """The three samples, ingested through the real sensor and runs."""
    with instance_for_test() as instance:
        driver = Driver(stack, instance)
        for path in sorted((SAMPLES).rglob("*-data/*")):
            driver.upload(f"{path.parent.name}/{path.name}", path.read_bytes())
        driver.settle()
        yield driver


def test_the_analytics_assets_materialize_their_tables_and_pass_their_checks(loaded):
    result = materialize(analytics_table_assets, resources=loaded.resources, instance=loaded.instance)
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [
        (c.check_name, c.metadata) for c in checks if not c.passed
    ]
    url = loaded.stack.pg.owner_url
    for table in TABLES:
        rows = q1(url, f"SELECT count(*) FROM analytics.{table.name}")
        recorded = q(
            url,
            "SELECT operation, row_count, data_version FROM analytics.materializations WHERE name = %s",
            (table.name,),
        )
        assert recorded == [(table.operation, rows, q1(url, "SELECT version FROM ingest.data_version"))]
        mats = [m for m in result.asset_materializations_for_node(table.key.to_python_identifier())]
        assert mats[0].metadata["dagster/row_count"].value == rows
    assert q1(url, "SELECT count(*) FROM analytics.customer_segments") > 0
    # The read-only role (the REST API's) may read what the writer built.
    with psycopg.connect(loaded.stack.pg.reader_url) as conn:
        assert conn.execute("SELECT count(*) FROM analytics.revenue_rankings").fetchone()[0] > 0


def test_a_rebuild_replaces_the_table_whole(loaded):
    [segments] = [a for a in analytics_table_assets if a.key == AssetKey(["analytics", "customer_segments"])]
    assert materialize([segments], resources=loaded.resources, instance=loaded.instance).success
    first = q(loaded.stack.pg.owner_url, "SELECT * FROM analytics.customer_segments ORDER BY 1")
    assert materialize([segments], resources=loaded.resources, instance=loaded.instance).success
    assert q(loaded.stack.pg.owner_url, "SELECT * FROM analytics.customer_segments ORDER BY 1") == first


def test_a_check_fails_when_entities_exist_but_the_answer_is_empty(loaded):
    empty = build_asset(
        AnalyticsTable(
            "empty_segments",
            "customer_analysis",
            {"min_group_size": 1_000_000},
            "Segments no dataset fills",
            [ENTITIES],
            "daily",
            required_columns=("segment",),
        )
    )
    result = materialize([empty], resources=loaded.resources, instance=loaded.instance, raise_on_error=False)
    [check] = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "has_rows_when_entities_exist"
    ]
    assert not check.passed and check.metadata["entities_exist"].value is True


def test_a_required_columns_check_without_columns_is_refused():
    with pytest.raises(ValueError, match="needs the columns"):
        AnalyticsTable("vacuous", "customer_analysis", {}, "", [ENTITIES], "daily")


def test_a_check_fails_when_a_required_column_holds_null(loaded):
    gaps = build_asset(
        AnalyticsTable(
            "region_segments",
            "customer_analysis",
            {"group_by": "region"},
            "Segments by region (legacy rows have none)",
            [ENTITIES],
            "daily",
            required_columns=("segment",),
        )
    )
    result = materialize([gaps], resources=loaded.resources, instance=loaded.instance, raise_on_error=False)
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "required_columns_present"]
    assert not check.passed and check.metadata["rows_with_nulls"].value >= 1


def test_a_wrong_fixed_parameter_fails_when_the_code_location_loads():
    from resources.analytics.errors import InvalidParameters

    with pytest.raises(InvalidParameters):
        build_asset(
            AnalyticsTable(
                "bad",
                "customer_analysis",
                {"metric": "salary"},
                "",
                [ENTITIES],
                "daily",
                required_columns=("segment",),
            )
        )


@pytest.mark.parametrize(
    ("schedule", "when", "tables"),
    [
        (
            analytics_daily_schedule,
            "2026-03-04T02:00:00+00:00",
            {"customer_segments", "revenue_rankings", "duplicate_candidates"},
        ),
        (analytics_monthly_schedule, "2026-03-01T03:00:00+00:00", {"monthly_trends", "market_cube"}),
    ],
)
def test_the_schedules_request_their_tables(schedule, when, tables):
    import datetime as dt

    with instance_for_test() as instance:
        context = build_schedule_context(
            instance=instance, scheduled_execution_time=dt.datetime.fromisoformat(when)
        )
        data = schedule.evaluate_tick(context)
    [request] = data.run_requests
    assert schedule.execution_timezone == "UTC"
    selected = {k.path[-1] for k in schedule.job.selection.resolve(_asset_graph())}
    assert selected == tables and request.run_key is None


def _asset_graph():
    from pipeline_defs.definitions import defs

    return defs().get_repository_def().asset_graph


def test_the_canonical_column_schemas_are_the_migrated_tables(db):
    with psycopg.connect(db.owner_url) as conn:
        for table, schema in (
            ("entities", ENTITIES_SCHEMA),
            ("entity_relationships", RELATIONSHIPS_SCHEMA),
            ("time_series_data", TIME_SERIES_SCHEMA),
        ):
            columns = conn.execute(
                """SELECT column_name, CASE WHEN data_type LIKE 'timestamp with%%' THEN 'timestamptz'
                                            ELSE data_type END
                   FROM information_schema.columns WHERE table_schema = 'canonical' AND table_name = %s
                   ORDER BY ordinal_position""",
                (table,),
            ).fetchall()
            assert [(c.name, c.type) for c in schema.columns] == columns, table


def test_the_landing_sensor_observes_the_raw_files_per_source(stack):
    with instance_for_test() as instance:
        driver = Driver(stack, instance)
        driver.upload("crm-data/a.json", {"records": [{"id": 1, "name": "A"}]})
        driver.upload("erp-data/b.json", [{"id": "E1", "business_name": "B"}])
        result = driver.tick()
        # A file arriving seconds later is registered, but the summary waits (at most every 30 s).
        driver.upload("legacy-data/c.ndjson", '{"id": 1, "name": "C"}\n')
        soon = driver.tick()
    [observation] = [e for e in result.asset_events if e.asset_key == RAW_FILES]
    assert observation.metadata["files"].value == 2
    assert observation.metadata["crm_files"].value == 1 and observation.metadata["erp_files"].value == 1
    assert observation.metadata["crm_newest_file_age_hours"].value < 1
    assert soon.run_requests and not [e for e in soon.asset_events if e.asset_key == RAW_FILES]


def test_lineage_runs_from_the_raw_files_through_the_canonical_tables_to_analytics():
    graph = _asset_graph()
    assert graph.get(ENTITIES).parent_keys == {RAW_FILES}
    downstream = {k.to_user_string() for k in graph.get(ENTITIES).child_keys}
    assert {
        "analytics/customer_segments",
        "analytics/revenue_rankings",
        "analytics/duplicate_candidates",
    } <= downstream
    # The unified view: segments, rankings and duplicates read the golden entities.
    assert {
        "analytics/customer_segments",
        "analytics/revenue_rankings",
        "analytics/duplicate_candidates",
    } <= {k.to_user_string() for k in graph.get(GOLDEN_ENTITIES).child_keys}
