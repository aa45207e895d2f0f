"""analytics.time_series_cells (migration 0005): the summary multi_dimensional_analytics reads, kept by
triggers, equals what the points say after any sequence of writes, and the operation answers the same
from it as from the points.

Writes go through the writer role, as ingest's do; the expected cells are computed here in Python from
the tables' contents, not by the triggers' SQL.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resources.analytics import run_operation
from tests.support.periods import period_of

pytestmark = [pytest.mark.integration]

ENTITY_IDS = ["crm_A", "crm_B", "erp_C", "legacy_D"]
MISSING_ID = "erp_Z"  # points for an entity that does not exist
INDUSTRIES = ["Retail", "Energy", None]
METRICS = ["monthly_revenue", "active_users"]
# Around month, quarter and year boundaries (UTC), twice in one month for some entities.
TIMES = [
    datetime(2023, 12, 31, 23, 30, tzinfo=UTC),
    datetime(2024, 1, 1, tzinfo=UTC),
    datetime(2024, 1, 20, tzinfo=UTC),
    datetime(2024, 3, 31, 23, 59, 59, tzinfo=UTC),
    datetime(2024, 4, 1, tzinfo=UTC),
    datetime(2024, 4, 18, tzinfo=UTC),
    datetime(2025, 2, 1, tzinfo=UTC),
]
VALUES = st.decimals(min_value=-1000, max_value=100_000, places=2, allow_nan=False, allow_infinity=False)

point_keys = st.tuples(
    st.sampled_from([*ENTITY_IDS, MISSING_ID]), st.sampled_from(METRICS), st.sampled_from(TIMES)
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), st.lists(st.tuples(point_keys, VALUES), min_size=1, max_size=8)),
        st.tuples(st.just("delete_points"), st.lists(point_keys, min_size=1, max_size=4)),
        st.tuples(st.just("industry"), st.sampled_from(ENTITY_IDS), st.sampled_from(INDUSTRIES)),
        st.tuples(st.just("delete_entity"), st.sampled_from(ENTITY_IDS)),
        st.tuples(
            st.just("insert_entity"), st.sampled_from([*ENTITY_IDS, MISSING_ID]), st.sampled_from(INDUSTRIES)
        ),
    ),
    min_size=1,
    max_size=8,
)

UNITS = ("month", "quarter", "year")


def _insert_entity(conn: psycopg.Connection, cid: str, industry: str | None) -> None:
    conn.execute(
        """INSERT INTO canonical.entities (entity_type, source_system, canonical_id, name, industry, attributes,
                                           attributes_hash)
           VALUES ('small_business', split_part(%s, '_', 1), %s, %s, %s, '{}', '\\x00')
           ON CONFLICT (canonical_id) DO NOTHING""",
        (cid, cid, cid, industry),
    )


def _apply(conn: psycopg.Connection, op: tuple) -> None:
    kind = op[0]
    if kind == "upsert":
        rows = {key: value for key, value in op[1]}  # one value per key, as the loader's DISTINCT ON
        with conn.cursor() as cur:
            cur.execute(
                """INSERT INTO canonical.time_series_data AS t (entity_canonical_id, metric_type, observed_at, value)
                   SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::numeric[])
                   ON CONFLICT (entity_canonical_id, metric_type, observed_at) DO UPDATE
                       SET value = EXCLUDED.value WHERE t.value IS DISTINCT FROM EXCLUDED.value""",
                ([k[0] for k in rows], [k[1] for k in rows], [k[2] for k in rows], list(rows.values())),
            )
    elif kind == "delete_points":
        conn.execute(
            """DELETE FROM canonical.time_series_data
               WHERE (entity_canonical_id, metric_type, observed_at)
                     IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[]))""",
            ([k[0] for k in op[1]], [k[1] for k in op[1]], [k[2] for k in op[1]]),
        )
    elif kind == "industry":
        conn.execute("UPDATE canonical.entities SET industry = %s WHERE canonical_id = %s", (op[2], op[1]))
    elif kind == "delete_entity":
        conn.execute("DELETE FROM canonical.entities WHERE canonical_id = %s", (op[1],))
    else:
        _insert_entity(conn, op[1], op[2])


def _expected(conn: psycopg.Connection) -> dict[tuple, tuple[int, Decimal]]:
    industry = dict(conn.execute("SELECT canonical_id, industry FROM canonical.entities").fetchall())
    per_entity: dict[tuple, Decimal] = defaultdict(Decimal)
    for cid, metric, at, value in conn.execute(
        "SELECT entity_canonical_id, metric_type, observed_at, value FROM canonical.time_series_data"
    ):
        if cid in industry:
            for unit in UNITS:
                per_entity[(unit, period_of(at.astimezone(UTC), unit), metric, industry[cid], cid)] += value
    cells: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])
    for (*cell, _cid), value in per_entity.items():
        cells[tuple(cell)][0] += 1
        cells[tuple(cell)][1] += value
    return {k: (n, total) for k, (n, total) in cells.items()}


def _summary(conn: psycopg.Connection) -> dict[tuple, tuple[int, Decimal]]:
    return {
        (u, p, m, i): (n, t)
        for u, p, m, i, n, t in conn.execute(
            "SELECT unit, period, metric_type, industry, entities, total FROM analytics.time_series_cells"
        )
    }


def _orphans(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT EXISTS (SELECT FROM analytics.time_series_orphans)").fetchone()[0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=operations,
    initial=st.lists(st.sampled_from(INDUSTRIES), min_size=len(ENTITY_IDS), max_size=len(ENTITY_IDS)),
    big_table=st.booleans(),
)
def test_the_summary_equals_the_points_after_any_writes(db, ops, initial, big_table):
    with psycopg.connect(db.owner_url, autocommit=True) as owner:
        owner.execute("TRUNCATE canonical.entities, canonical.time_series_data CASCADE")
    with psycopg.connect(db.writer_url) as conn, psycopg.connect(db.owner_url, autocommit=True) as owner:
        for cid, industry in zip(ENTITY_IDS, initial, strict=True):
            _insert_entity(conn, cid, industry)
        if big_table:  # statements small against the table: the triggers look the touched pairs up one by one
            _insert_entity(conn, "crm_FILLER", "Energy")
            conn.execute("""INSERT INTO canonical.time_series_data (entity_canonical_id, metric_type, observed_at, value)
                            SELECT 'crm_FILLER', 'filler', d, 1
                            FROM generate_series('2024-01-01'::timestamptz, '2024-12-31', interval '1 day') d""")
        conn.commit()
        owner.execute("ANALYZE canonical.time_series_data")
        for op in ops:
            _apply(conn, op)
            conn.commit()
            if not _orphans(owner):  # the reading side uses the summary only then
                assert _summary(owner) == _expected(owner), op
        # Points without their entity are listed, so the reading side knows to compute from the points.
        missing = owner.execute(
            """SELECT EXISTS (SELECT FROM canonical.time_series_data t WHERE NOT EXISTS
                              (SELECT FROM canonical.entities e WHERE e.canonical_id = t.entity_canonical_id))"""
        ).fetchone()[0]
        assert _orphans(owner) or not missing
        owner.execute("SELECT analytics.rebuild_time_series_cells()")
        assert _summary(owner) == _expected(owner)


def test_truncate_empties_the_summary(db):
    with psycopg.connect(db.writer_url) as conn:
        _insert_entity(conn, "crm_A", "Retail")
        _apply(conn, ("upsert", [(("crm_A", "monthly_revenue", TIMES[0]), Decimal(5))]))
        conn.commit()
    with psycopg.connect(db.owner_url, autocommit=True) as owner:
        assert len(_summary(owner)) == 3
        owner.execute("TRUNCATE canonical.time_series_data")
        assert _summary(owner) == {}


@pytest.mark.parametrize("timeframe", ["month", "quarter", "year", "2 months", "1 year"])
def test_multi_dimensional_answers_the_same_from_the_summary_and_from_the_points(db, timeframe):
    with psycopg.connect(db.writer_url) as conn:
        for cid, industry in zip(ENTITY_IDS, ["Retail", "Energy", "Retail", None], strict=True):
            _insert_entity(conn, cid, industry)
        points = [
            ((cid, metric, at), Decimal(i * 7 + j) - 20)
            for i, cid in enumerate(ENTITY_IDS)
            for j, at in enumerate(TIMES)
            for metric in METRICS[: 1 + (i + j) % 2]
        ]
        _apply(conn, ("upsert", points))
        conn.commit()
    summary = run_operation(db.reader_url, "multi_dimensional_analytics", {"timeframe": timeframe})
    assert summary.row_count > 0
    with psycopg.connect(db.writer_url) as conn:  # a point without its entity: the points are read instead
        _apply(conn, ("upsert", [((MISSING_ID, "monthly_revenue", TIMES[0]), Decimal(1))]))
        conn.commit()
    with psycopg.connect(db.reader_url) as conn:
        assert _orphans(conn)
    from_points = run_operation(db.reader_url, "multi_dimensional_analytics", {"timeframe": timeframe})
    assert from_points.rows == summary.rows
    assert from_points.columns == summary.columns
