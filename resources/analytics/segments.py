"""Segment analytics over the entities: customer_analysis, revenue_analysis, count_analysis.

Each counts either source records (entity_scope 'source', the default: canonical.entities, one row per
record, as every answer before golden entities) or golden entities (entity_scope 'golden': one row per
company of the latest resolution, with its golden record's values; resources/analytics/scope.py). At
golden scope each answer also says how many records its rows stand for: `members` per segment,
`golden_id` and `member_count` per ranked entity.

A segment is the value of the whitelisted `group_by` dimension (NULL is a segment of its own: entities
that lack the field). Metrics and dimensions are fixed SQL fragments chosen by whitelisted name
(params.GROUP_BY_SQL / METRIC_SQL); every other value is bound. Text sorts use COLLATE "C" so the row
order is the same on every server, whatever its default collation.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from resources.analytics.params import (
    GROUP_BY_SQL,
    METRIC_SQL,
    CountAnalysisParams,
    CustomerAnalysisParams,
    RevenueAnalysisParams,
)
from resources.analytics.result import Table, fetch
from resources.analytics.scope import golden_entities, needs_of

# Value buckets for revenue_analysis's top-n pass: width_bucket over powers of two (and their negatives)
# is monotone in the value, so a segment's top_n values lie in its highest buckets, and a first counting
# pass (a hash aggregate, no sort) tells which. Values beyond ±2^80 fall in the two open end buckets,
# which stays correct, just less selective.
BUCKET_EDGES: list[float] = sorted(
    [-(2.0**k) for k in range(-40, 81)] + [0.0] + [2.0**k for k in range(-40, 81)]
)

# Every dimension and metric is a plain column (params.GROUP_BY_SQL / METRIC_SQL), so the aggregates can
# read it straight from the scan: no fence to compute a jsonb expression once, and without a fence the
# planner may run the scan in parallel workers. The median is not taken by percentile_cont over the
# whole grouping, because an ordered-set aggregate has no partial form: it forces one process to sort
# all rows by segment and then each segment by value. Instead each worker collects its segment's values
# (array_agg combines across workers) in the same hash pass as the other statistics, and
# percentile_cont runs per segment over the collected values: the same function over the same values,
# so the same result, with one sort per segment of only its values.
CUSTOMER_ANALYSIS = """
SELECT segment, entities, with_value, total, average,
       (SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY x))::numeric, 2) FROM unnest(vals) x) AS median,
       minimum, maximum{golden_columns}
FROM (SELECT ({group_by}) COLLATE "C" AS segment,
             count(*) AS entities,
             count({metric}) AS with_value,
             sum({metric}) AS total,
             round(avg({metric}), 2) AS average,
             array_agg(({metric})::float8) FILTER (WHERE {metric} IS NOT NULL) AS vals,
             min({metric}) AS minimum,
             max({metric}) AS maximum{golden_aggregates}
      FROM {entities}
      GROUP BY 1
      HAVING count(*) >= %(min_group_size)s) s
ORDER BY total DESC NULLS LAST, segment NULLS LAST
"""


# Deleted entities leave the segments unless asked for; `status` is in the canonical_id index (migration
# 0013), so the filter keeps the scans index-only.
LIVE_ONLY = "WHERE e.status <> 'deleted'"

# What each scope adds to a template: the relation `e` ({entities}) and the golden-only columns. Source
# scope adds nothing, so its statements are the ones the operations always sent.
_SOURCE_FRAGMENTS: dict[str, str] = {
    "golden_aggregates": "",
    "golden_columns": "",
    "golden_keys": "",
    "golden_candidates": "",
    "golden_ranked": "",
    # v is cheap to read twice at source scope (an index-only scan) and a fence would keep it out of
    # parallel plans; the golden relation (scope.py) is a union of joins, computed once.
    "v_materialized": "NOT MATERIALIZED",
    "name": "(SELECT e.name FROM canonical.entities e WHERE e.canonical_id = r.canonical_id)",
    "system_columns": "e.source_system",
}
_GOLDEN_FRAGMENTS: dict[str, str] = {
    "golden_aggregates": ", sum(member_count) AS members",
    "golden_columns": ", members",
    "golden_keys": ", e.golden_id, e.member_count",
    "golden_candidates": ", v.golden_id, v.member_count",
    "golden_ranked": ", r.golden_id, r.member_count",
    "v_materialized": "MATERIALIZED",
    # The golden record's name; a record no resolution has seen (no golden id) is its own.
    "name": "coalesce((SELECT g.name FROM golden.entities g WHERE g.golden_id = r.golden_id),"
    " (SELECT e.name FROM canonical.entities e WHERE e.canonical_id = r.canonical_id))",
    "system_columns": "e.systems",
}


def _has_system(system: str, entity_scope: str) -> str:
    # A golden entity is known to every system one of its members comes from.
    return f"'{system}' = ANY (systems)" if entity_scope == "golden" else f"source_system = '{system}'"


def segment_query(
    template: str,
    group_by: str,
    metric: str | None = None,
    *,
    include_deleted: bool = False,
    entity_scope: str = "source",
) -> sql.Composed:
    """`template` with the whitelisted dimension's and metric's fixed SQL in place of {group_by} / {metric},
    {entities} the scope's relation `e` (deleted entities filtered out unless `include_deleted`) and the
    scope's other fragments."""
    if entity_scope == "golden":
        needs = needs_of(
            GROUP_BY_SQL[group_by],
            METRIC_SQL[metric] if metric is not None else "",
            _GOLDEN_FRAGMENTS["system_columns"] if "{system_columns}" in template else "",
        )
        entities = golden_entities(include_deleted=include_deleted, needs=needs)
        chosen = _GOLDEN_FRAGMENTS
    else:
        entities = "canonical.entities e" + ("" if include_deleted else " " + LIVE_ONLY)
        chosen = _SOURCE_FRAGMENTS
    fragments = {
        "group_by": sql.SQL(GROUP_BY_SQL[group_by]),
        "entities": sql.SQL(entities),
        **{k: sql.SQL(v) for k, v in chosen.items() if "{" + k + "}" in template},
    }
    if "{has_crm}" in template:
        # count_analysis's per-system columns: the three the answer always had.
        for system in ("crm", "erp", "legacy"):
            fragments[f"has_{system}"] = sql.SQL(_has_system(system, entity_scope))
    if metric is not None:
        fragments["metric"] = sql.SQL(METRIC_SQL[metric])
    return sql.SQL(template).format(**fragments)


def customer_analysis(conn: psycopg.Connection, p: CustomerAnalysisParams, *, max_rows: int) -> Table:
    """Segments of at least min_group_size entities, with count, sum, average, median, min and max of the
    metric (entities without a value count in `entities`, not in the statistics). entity_scope 'source'
    (the default) counts source records; 'golden' counts golden entities with their golden records'
    values and adds `members`, the records they stand for."""
    with conn.cursor() as cur:
        cur.execute(
            segment_query(
                CUSTOMER_ANALYSIS,
                p.group_by,
                p.metric,
                include_deleted=p.include_deleted,
                entity_scope=p.entity_scope,
            ),
            {"min_group_size": p.min_group_size},
        )
        return fetch(cur, max_rows)


# Only the rows that can make a segment's top_n are ranked: the counting pass finds, per segment, the
# highest bucket from which the buckets above hold at least top_n values (BUCKET_EDGES), and every row
# from that bucket up is a candidate. Every row ranked above a candidate is a candidate too, so RANK and
# LAG over the candidates equal RANK and LAG over the whole segment; PERCENT_RANK is (rank - 1) / (n - 1)
# with n counted in the first pass. Names are looked up for the kept rows only. `v` is not fenced: its
# columns are plain (no jsonb expression to compute once), and a fence (OFFSET 0) would keep both passes
# out of parallel plans; each pass is an index-only scan of the canonical_id index (migration 0007).
REVENUE_ANALYSIS = """
WITH v AS {v_materialized} (
    SELECT ({group_by}) COLLATE "C" AS segment, e.canonical_id, {metric} AS value{golden_keys} FROM {entities}
), hist AS (
    SELECT segment IS NULL AS seg_null, coalesce(segment, '') AS seg_key,
           width_bucket(value::float8, %(edges)s::float8[]) AS bucket, count(*) AS n, sum(value) AS total
    FROM v WHERE value IS NOT NULL
    GROUP BY segment, 3
), cut AS (
    SELECT seg_null, seg_key, sum(n) AS segment_size, sum(total) AS segment_total,
           coalesce(max(bucket) FILTER (WHERE above >= %(top_n)s), -1) AS first_bucket
    FROM (SELECT h.*, sum(h.n) OVER (PARTITION BY h.seg_null, h.seg_key ORDER BY h.bucket DESC) AS above
          FROM hist h) x
    GROUP BY seg_null, seg_key
), candidates AS (
    SELECT v.segment, v.canonical_id, v.value, c.segment_size, c.segment_total{golden_candidates}
    FROM v
    JOIN cut c ON c.seg_null = (v.segment IS NULL) AND c.seg_key = coalesce(v.segment, '')
    WHERE v.value IS NOT NULL AND width_bucket(v.value::float8, %(edges)s::float8[]) >= c.first_bucket
), ranked AS (
    SELECT candidates.*,
           rank() OVER by_value AS rank,
           lag(value) OVER by_value_id AS previous_value
    FROM candidates
    WINDOW by_value AS (PARTITION BY segment ORDER BY value DESC),
           by_value_id AS (PARTITION BY segment ORDER BY value DESC, canonical_id COLLATE "C")
)
SELECT r.segment, r.rank, r.canonical_id,
       {name} AS name,
       r.value, r.previous_value,
       r.previous_value - r.value AS gap_to_previous,
       round((CASE WHEN r.segment_size > 1 THEN (r.rank - 1)::float8 / (r.segment_size - 1)::float8
                   ELSE 0 END)::numeric, 4) AS percent_rank,
       round(100 * r.value / NULLIF(r.segment_total, 0), 4) AS share_of_segment_pct,
       r.segment_size{golden_ranked}
FROM ranked r
WHERE r.rank <= %(top_n)s
ORDER BY r.segment NULLS LAST, r.rank, r.canonical_id COLLATE "C"
"""


def revenue_analysis(conn: psycopg.Connection, p: RevenueAnalysisParams, *, max_rows: int) -> Table:
    """The top_n entities of each segment by the metric: RANK (ties share a rank, so a segment can give
    more than top_n rows), the next higher value (LAG, ties broken by canonical id) and the gap to it,
    PERCENT_RANK (0 = the top), share of the segment's total, segment size. entity_scope 'source' (the
    default) ranks source records; 'golden' ranks golden entities by their golden records' values, each
    once however many systems know it, and adds its golden_id and member_count (canonical_id: the member
    its golden name came from)."""
    with conn.cursor() as cur:
        cur.execute(
            segment_query(
                REVENUE_ANALYSIS,
                p.group_by,
                p.metric,
                include_deleted=p.include_deleted,
                entity_scope=p.entity_scope,
            ),
            {"top_n": p.top_n, "edges": BUCKET_EDGES},
        )
        return fetch(cur, max_rows)


COUNT_ANALYSIS = """
SELECT segment,
       count(*) AS entities,
       round(100.0 * count(*) / sum(count(*)) OVER (), 2) AS share_pct,
       count(*) FILTER (WHERE {has_crm}) AS crm,
       count(*) FILTER (WHERE {has_erp}) AS erp,
       count(*) FILTER (WHERE {has_legacy}) AS legacy,
       count(*) FILTER (WHERE entity_type = 'large_enterprise') AS large_enterprise,
       count(*) FILTER (WHERE entity_type = 'medium_business') AS medium_business,
       count(*) FILTER (WHERE entity_type = 'small_business') AS small_business{golden_aggregates}
FROM (SELECT ({group_by}) COLLATE "C" AS segment, {system_columns}, e.entity_type{golden_keys} FROM {entities}) v
GROUP BY segment
ORDER BY entities DESC, segment NULLS LAST
"""


def count_analysis(conn: psycopg.Connection, p: CountAnalysisParams, *, max_rows: int) -> Table:
    """Entities per segment, share of all entities, and the split by source system and entity type.
    entity_scope 'source' (the default) counts source records; 'golden' counts golden entities (the
    system columns: those a system knows, so a company two systems know counts in both; entity type: the
    member its golden name came from) and adds `members`, the records they stand for."""
    with conn.cursor() as cur:
        cur.execute(
            segment_query(
                COUNT_ANALYSIS, p.group_by, include_deleted=p.include_deleted, entity_scope=p.entity_scope
            )
        )
        return fetch(cur, max_rows)
