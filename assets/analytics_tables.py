"""Scheduled analytics: the recurring answers people use, materialized into tables of schema `analytics`.

Each asset runs one catalogue operation with fixed parameters under the read-only role (the same code
path as the REST API and analytics_job), then replaces its table in one writer transaction (readers see
the old table until the commit) and records what it holds in `analytics.materializations` (operation,
parameters, the ingest data version it was computed at). A daily schedule rebuilds the segment,
ranking and duplicate answers and a monthly one the trends, as the old system's EventBridge rules did
(02:00 UTC daily, 03:00 UTC on the 1st). Each asset has checks that can fail.

The segment and ranking tables are the unified view: they count golden entities (entity_scope 'golden'),
each company once however many systems know it, and the duplicate candidates are the resolution's
scored pairs; so these assets depend on canonical/golden_entities as well as on the canonical tables.
"""

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    TableColumn,
    TableSchema,
    asset,
    define_asset_job,
)
from psycopg import sql
from psycopg.types.json import Jsonb

from assets.golden import GOLDEN_ENTITIES
from assets.ingest import ENTITIES, RELATIONSHIPS, TIME_SERIES
from assets.raw import OWNERS
from resources.analytics.catalogue import get_operation
from resources.analytics.result import Result
from resources.analytics.values import column_pg_type, jsonable
from resources.clients.postgres import scalar
from resources.dagster_resources import PostgresResource

SCHEMA = "analytics"
MAX_ROWS = 100_000
PREVIEW_ROWS = 10


@dataclass(frozen=True)
class AnalyticsTable:
    name: str  # the table in schema analytics and the asset's key (analytics/<name>)
    operation: str
    parameters: dict[str, Any]
    description: str
    deps: Sequence[AssetKey]
    schedule: str  # "daily" | "monthly"
    # Columns that must hold no NULL when the table has rows (a check that can fail).
    required_columns: tuple[str, ...] = ()
    checks: tuple[str, ...] = field(default=("has_rows_when_entities_exist", "required_columns_present"))

    def __post_init__(self) -> None:
        if "required_columns_present" in self.checks and not self.required_columns:
            raise ValueError(f"{self.name}: required_columns_present needs the columns it requires")

    @property
    def key(self) -> AssetKey:
        return AssetKey([SCHEMA, self.name])


TABLES: tuple[AnalyticsTable, ...] = (
    AnalyticsTable(
        "customer_segments",
        "customer_analysis",
        {"metric": "revenue", "group_by": "industry", "entity_scope": "golden"},
        "Revenue per industry segment over golden entities (each company once, its golden record's "
        "values): entities, the records they stand for, total, average, median (customer_analysis).",
        [ENTITIES, GOLDEN_ENTITIES],
        "daily",
        required_columns=("entities",),
    ),
    AnalyticsTable(
        "revenue_rankings",
        "revenue_analysis",
        {"metric": "revenue", "group_by": "industry", "top_n": 10, "entity_scope": "golden"},
        "The ten largest companies by revenue within each industry, each golden entity once with its "
        "golden id and member count (revenue_analysis).",
        [ENTITIES, GOLDEN_ENTITIES],
        "daily",
        required_columns=("rank", "canonical_id", "value", "member_count"),
    ),
    AnalyticsTable(
        "duplicate_candidates",
        "data_integrity_analysis",
        {"min_similarity": 0.6, "limit": 100},
        "Likely duplicates: the entity resolution's most probable scored pairs, with their evidence, "
        "whether they are linked or wait for review, and the record to keep (data_integrity_analysis).",
        [ENTITIES, GOLDEN_ENTITIES],
        "daily",
        required_columns=("a_id", "b_id", "match_score"),
        checks=("required_columns_present", "no_entity_paired_with_itself"),
    ),
    AnalyticsTable(
        "monthly_trends",
        "time_series_patterns",
        {"analysis_period": "12 months"},
        "The last twelve months of the main revenue series: totals, moving averages, growth, volatility, "
        "trend (time_series_patterns).",
        [TIME_SERIES, ENTITIES],
        "monthly",
        required_columns=("period", "total"),
    ),
    AnalyticsTable(
        "market_cube",
        "multi_dimensional_analytics",
        {"timeframe": "3 months"},
        "Industry × month over the last three months: entities, totals, growth, share, tier "
        "(multi_dimensional_analytics, as the old monthly schedule ran it).",
        [TIME_SERIES, ENTITIES, RELATIONSHIPS],
        "monthly",
        required_columns=("period", "industry"),
    ),
)


def write_table(conn: psycopg.Connection, name: str, result: Result) -> list[tuple[str, str]]:
    """Replace analytics.<name> with the result's rows (the caller commits); returns (column, type)."""
    columns = [(c, column_pg_type([row[i] for row in result.rows])) for i, c in enumerate(result.columns)]
    staging = f"{name}__next"
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SCHEMA, staging)))
    conn.execute(
        sql.SQL("CREATE TABLE {} ({})").format(
            sql.Identifier(SCHEMA, staging),
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns),
        )
    )
    jsonb = [t == "jsonb" for _, t in columns]
    with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(SCHEMA, staging))) as copy:
        for row in result.rows:
            copy.write_row([Jsonb(v) if j and v is not None else v for v, j in zip(row, jsonb, strict=True)])
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SCHEMA, name)))
    conn.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(SCHEMA, staging), sql.Identifier(name))
    )
    conn.execute(sql.SQL("GRANT SELECT ON {} TO pipeline_reader").format(sql.Identifier(SCHEMA, name)))
    return columns


def record_materialization(
    conn: psycopg.Connection,
    table: AnalyticsTable,
    result: Result,
    data_version: int,
    columns: list[tuple[str, str]],
    run_id: str,
) -> None:
    conn.execute(
        """INSERT INTO analytics.materializations
               (name, operation, parameters, data_version, row_count, columns, run_id, materialized_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, now())
           ON CONFLICT (name) DO UPDATE SET operation = EXCLUDED.operation, parameters = EXCLUDED.parameters,
               data_version = EXCLUDED.data_version, row_count = EXCLUDED.row_count, columns = EXCLUDED.columns,
               run_id = EXCLUDED.run_id, materialized_at = EXCLUDED.materialized_at""",
        (
            table.name,
            table.operation,
            Jsonb(result.parameters),
            data_version,
            result.row_count,
            Jsonb([c for c, _ in columns]),
            run_id,
        ),
    )


def _checks(conn: psycopg.Connection, table: AnalyticsTable, result: Result) -> Iterator[AssetCheckResult]:
    entities = conn.execute("SELECT EXISTS (SELECT 1 FROM canonical.entities)").fetchone()[0]  # type: ignore[index]
    if "has_rows_when_entities_exist" in table.checks:
        yield AssetCheckResult(
            asset_key=table.key,
            check_name="has_rows_when_entities_exist",
            passed=bool(result.rows) or not entities,
            metadata={"rows": result.row_count, "entities_exist": bool(entities)},
        )
    if "required_columns_present" in table.checks:
        positions = [result.columns.index(c) for c in table.required_columns if c in result.columns]
        missing = [c for c in table.required_columns if c not in result.columns]
        nulls = sum(1 for row in result.rows if any(row[i] is None for i in positions))
        yield AssetCheckResult(
            asset_key=table.key,
            check_name="required_columns_present",
            passed=not missing and nulls == 0,
            metadata={
                "required": list(table.required_columns),
                "missing_columns": missing,
                "rows_with_nulls": nulls,
            },
        )
    if "no_entity_paired_with_itself" in table.checks:
        a, b = result.columns.index("a_id"), result.columns.index("b_id")
        same = [row[a] for row in result.rows if row[a] == row[b]]
        yield AssetCheckResult(
            asset_key=table.key,
            check_name="no_entity_paired_with_itself",
            passed=not same,
            severity=AssetCheckSeverity.ERROR,
            metadata={"self_pairs": MetadataValue.json(same[:20])},
        )


def _preview(result: Result) -> str:
    """The first rows as a Markdown table (pandas, which the Dagster side has; never in the Lambda)."""
    import pandas as pd

    frame = pd.DataFrame(
        [[jsonable(v) for v in row] for row in result.rows[:PREVIEW_ROWS]], columns=result.columns
    )
    return frame.to_markdown(index=False) if not frame.empty else "(no rows)"


def build_asset(table: AnalyticsTable) -> AssetsDefinition:
    op = get_operation(table.operation)
    op.validate(table.parameters)  # a wrong fixed parameter fails at load, not at 02:00

    @asset(
        key=table.key,
        description=table.description,
        deps=list(table.deps),
        group_name=SCHEMA,
        kinds={"postgres"},
        owners=OWNERS,
        tags={"layer": "analytics", "schedule": table.schedule},
        metadata={
            "dagster/table_name": f"{SCHEMA}.{table.name}",
            "operation": table.operation,
            "parameters": MetadataValue.json(table.parameters),
        },
        check_specs=[
            AssetCheckSpec(name, asset=table.key, blocking=name == "no_entity_paired_with_itself")
            for name in table.checks
        ],
    )
    def _materialize(
        context: AssetExecutionContext, postgres: PostgresResource, readonly_postgres: PostgresResource
    ) -> Iterator[Any]:
        result = readonly_postgres.run_operation(table.operation, table.parameters, max_rows=MAX_ROWS)
        with postgres.connection() as conn:
            data_version = int(scalar(conn, "SELECT version FROM ingest.data_version"))
            columns = write_table(conn, table.name, result)
            record_materialization(conn, table, result, data_version, columns, context.run.run_id)
            checks = list(_checks(conn, table, result))
            conn.commit()
        yield MaterializeResult(
            metadata={
                "dagster/row_count": result.row_count,
                "dagster/column_schema": TableSchema(columns=[TableColumn(c, t) for c, t in columns]),
                "data_version": data_version,
                "truncated": result.truncated,
                "elapsed_ms": round(result.elapsed_s * 1000, 1),
                "parameters": MetadataValue.json(json.loads(json.dumps(result.parameters, default=str))),
                "preview": MetadataValue.md(_preview(result)),
            }
        )
        yield from checks

    return _materialize


analytics_table_assets: list[AssetsDefinition] = [build_asset(t) for t in TABLES]


def _schedule(name: str, cron: str, which: str, description: str) -> ScheduleDefinition:
    job = define_asset_job(
        f"analytics_{which}_job",
        selection=[t.key for t in TABLES if t.schedule == which],
        description=description,
        tags={"pipeline/kind": "scheduled-analytics"},
    )
    return ScheduleDefinition(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=description,
    )


analytics_daily_schedule = _schedule(
    "analytics_daily",
    "0 2 * * *",
    "daily",
    "Rebuilds the daily analytics tables (segments, rankings, duplicate candidates) at 02:00 UTC.",
)
analytics_monthly_schedule = _schedule(
    "analytics_monthly",
    "0 3 1 * *",
    "monthly",
    "Rebuilds the monthly analytics tables (trends, market cube) at 03:00 UTC on the 1st.",
)
