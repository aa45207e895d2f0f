"""The segment operations read the analytics projection of canonical.entities (migration 0007): plain
columns for every dimension and metric, all of them in the canonical_id index, and queries the planner
may run in parallel workers. The 1M-entity timings (README, Benchmark) depend on each of these; the golden tests pin
the answers, these pin the shape that makes them fast."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from resources.analytics import segments
from resources.analytics.params import (
    GROUP_BY_SQL,
    GROUP_BYS,
    METRIC_SQL,
    METRICS,
)

pytestmark = [pytest.mark.integration]

COVERING_INDEX = "entities_canonical_id_key"


@pytest.fixture
def owner(pg) -> Iterator[psycopg.Connection]:
    """The owner's connection in a transaction that is rolled back: nothing written here is seen elsewhere."""
    with psycopg.connect(pg.owner_url) as conn, conn.transaction(force_rollback=True):
        yield conn


def _columns(fragment: str) -> set[str]:
    return set(re.findall(r"\be\.(\w+)", fragment))


def test_every_dimension_and_metric_is_one_plain_column():
    for fragment in [*GROUP_BY_SQL.values(), *METRIC_SQL.values()]:
        assert len(_columns(fragment)) == 1 and "attributes" not in fragment, fragment


def test_the_canonical_id_index_covers_every_column_the_segment_operations_read(owner):
    indexed = {
        r[0]
        for r in owner.execute(
            """SELECT a.attname FROM pg_index x
           JOIN pg_class i ON i.oid = x.indexrelid
           JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY (x.indkey)
           WHERE i.relname = %s AND x.indrelid = 'canonical.entities'::regclass AND x.indisunique""",
            (COVERING_INDEX,),
        )
    }
    needed = set().union(*(_columns(f) for f in [*GROUP_BY_SQL.values(), *METRIC_SQL.values()]))
    needed |= {
        "canonical_id",
        "entity_type",
        "source_system",
        "revenue",
        "employees",
    }  # ranking, counts, demo
    assert needed <= indexed, needed - indexed


def _insert(conn: psycopg.Connection, attributes: str, revenue: str | None, employees: int | None) -> None:
    conn.execute(
        """INSERT INTO canonical.entities (entity_type, source_system, canonical_id, name, revenue, employees,
                                           attributes, attributes_hash)
           VALUES ('small_business', 'crm', 'crm_PROJ-1', 'Projection Test', %s, %s, %s::jsonb, '\\x00')""",
        (revenue, employees, attributes),
    )


def _projection(conn: psycopg.Connection) -> tuple:
    return conn.execute(
        """SELECT region, country, lifetime_value, total_spent, revenue_per_employee
           FROM canonical.entities WHERE canonical_id = 'crm_PROJ-1'"""
    ).fetchone()


def test_the_projection_is_what_the_attributes_say_and_follows_an_update(owner):
    from decimal import Decimal

    _insert(
        owner,
        '{"region": "Europe", "country": "France", "lifetime_value": 1200.5, "total_spent": "n/a"}',
        "1000",
        3,
    )
    assert _projection(owner) == ("Europe", "France", Decimal("1200.5"), None, Decimal("333.33"))
    owner.execute("""UPDATE canonical.entities SET attributes = '{"total_spent": 7}'::jsonb, employees = 0
                     WHERE canonical_id = 'crm_PROJ-1'""")
    assert _projection(owner) == (None, None, None, Decimal("7"), None)


def _plan(conn: psycopg.Connection, query: sql.Composable, params: dict) -> str:
    return "\n".join(r[0] for r in conn.execute(sql.SQL("EXPLAIN (COSTS OFF) ") + query, params))


def _queries() -> list[tuple[str, sql.Composable, dict]]:
    out: list[tuple[str, sql.Composable, dict]] = []
    for group_by in GROUP_BYS:
        out.append(
            (f"count_analysis {group_by}", segments.segment_query(segments.COUNT_ANALYSIS, group_by), {})
        )
        for metric in METRICS:
            label = f"{metric} by {group_by}"
            out.append(
                (
                    f"customer_analysis {label}",
                    segments.segment_query(segments.CUSTOMER_ANALYSIS, group_by, metric),
                    {"min_group_size": 1},
                )
            )
            out.append(
                (
                    f"revenue_analysis {label}",
                    segments.segment_query(segments.REVENUE_ANALYSIS, group_by, metric),
                    {"top_n": 10, "edges": segments.BUCKET_EDGES},
                )
            )
    return out


def test_segment_queries_scan_in_parallel_workers_when_parallelism_is_cheap(owner):
    """No fence (OFFSET 0), no parallel-unsafe function, no ordered-set aggregate over the whole table:
    with parallel workers priced at nothing, every scan of the entities runs under a Gather."""
    for setting in (
        "parallel_setup_cost",
        "parallel_tuple_cost",
        "min_parallel_table_scan_size",
        "min_parallel_index_scan_size",
    ):
        owner.execute(sql.SQL("SET LOCAL {} = 0").format(sql.Identifier(setting)))
    owner.execute("SET LOCAL max_parallel_workers_per_gather = 2")
    for label, query, params in _queries():
        plan = _plan(owner, query, params)
        assert "Gather" in plan, f"{label}\n{plan}"


def test_segment_queries_read_the_covering_index_not_the_heap(owner):
    owner.execute("SET LOCAL enable_seqscan = off")
    owner.execute("SET LOCAL enable_bitmapscan = off")
    for label, query, params in _queries():
        plan = _plan(owner, query, params)
        scans = re.findall(r"(\w[\w ]*Scan)(?: using (\w+))? on entities\b", plan)
        assert scans, f"{label}\n{plan}"
        # revenue_analysis looks the kept rows' names up by key: an index scan of a handful of rows
        heap_reads = [
            s
            for s in scans
            if s != ("Index Only Scan", COVERING_INDEX)
            and not (label.startswith("revenue_analysis") and s == ("Index Scan", COVERING_INDEX))
        ]
        assert not heap_reads, f"{label}\n{plan}"
