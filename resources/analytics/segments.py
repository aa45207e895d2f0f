"""Segment analytics over canonical.entities: customer_analysis, revenue_analysis, count_analysis.

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

CUSTOMER_ANALYSIS = """
SELECT segment,
       count(*) AS entities,
       count(value) AS with_value,
       sum(value) AS total,
       round(avg(value), 2) AS average,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY value::float8))::numeric, 2) AS median,
       min(value) AS minimum,
       max(value) AS maximum
FROM (SELECT {group_by} AS segment, {metric} AS value FROM canonical.entities e) v
GROUP BY segment
HAVING count(*) >= %(min_group_size)s
ORDER BY total DESC NULLS LAST, segment COLLATE "C" NULLS LAST
"""


def customer_analysis(conn: psycopg.Connection, p: CustomerAnalysisParams, *, max_rows: int) -> Table:
    """Segments of at least min_group_size entities, with count, sum, average, median, min and max of the
    metric (entities without a value count in `entities`, not in the statistics)."""
    query = sql.SQL(CUSTOMER_ANALYSIS).format(group_by=sql.SQL(GROUP_BY_SQL[p.group_by]),
                                              metric=sql.SQL(METRIC_SQL[p.metric]))
    with conn.cursor() as cur:
        cur.execute(query, {"min_group_size": p.min_group_size})
        return fetch(cur, max_rows)


# One sort serves every window: (segment, value DESC) is a prefix of (segment, value DESC, canonical_id).
# Names are looked up for the kept rows only, so the sort carries narrow rows.
REVENUE_ANALYSIS = """
WITH ranked AS (
    SELECT segment, canonical_id, value,
           rank() OVER by_value AS rank,
           lag(value) OVER by_value_id AS previous_value,
           percent_rank() OVER by_value AS percent_rank,
           count(*) OVER by_segment AS segment_size,
           sum(value) OVER by_segment AS segment_total
    FROM (SELECT {group_by} AS segment, e.canonical_id, {metric} AS value FROM canonical.entities e) v
    WHERE value IS NOT NULL
    WINDOW by_segment AS (PARTITION BY segment),
           by_value AS (PARTITION BY segment ORDER BY value DESC),
           by_value_id AS (PARTITION BY segment ORDER BY value DESC, canonical_id COLLATE "C")
)
SELECT r.segment, r.rank, r.canonical_id, e.name, r.value,
       r.previous_value,
       r.previous_value - r.value AS gap_to_previous,
       round(r.percent_rank::numeric, 4) AS percent_rank,
       round(100 * r.value / NULLIF(r.segment_total, 0), 4) AS share_of_segment_pct,
       r.segment_size
FROM ranked r
JOIN canonical.entities e ON e.canonical_id = r.canonical_id
WHERE r.rank <= %(top_n)s
ORDER BY r.segment COLLATE "C" NULLS LAST, r.rank, r.canonical_id COLLATE "C"
"""


def revenue_analysis(conn: psycopg.Connection, p: RevenueAnalysisParams, *, max_rows: int) -> Table:
    """The top_n entities of each segment by the metric: RANK (ties share a rank, so a segment can give
    more than top_n rows), the next higher value (LAG, ties broken by canonical id) and the gap to it,
    PERCENT_RANK (0 = the top), share of the segment's total, segment size."""
    query = sql.SQL(REVENUE_ANALYSIS).format(group_by=sql.SQL(GROUP_BY_SQL[p.group_by]),
                                             metric=sql.SQL(METRIC_SQL[p.metric]))
    with conn.cursor() as cur:
        cur.execute(query, {"top_n": p.top_n})
        return fetch(cur, max_rows)


COUNT_ANALYSIS = """
SELECT segment,
       count(*) AS entities,
       round(100.0 * count(*) / sum(count(*)) OVER (), 2) AS share_pct,
       count(*) FILTER (WHERE source_system = 'crm') AS crm,
       count(*) FILTER (WHERE source_system = 'erp') AS erp,
       count(*) FILTER (WHERE source_system = 'legacy') AS legacy,
       count(*) FILTER (WHERE entity_type = 'large_enterprise') AS large_enterprise,
       count(*) FILTER (WHERE entity_type = 'medium_business') AS medium_business,
       count(*) FILTER (WHERE entity_type = 'small_business') AS small_business
FROM (SELECT {group_by} AS segment, e.source_system, e.entity_type FROM canonical.entities e) v
GROUP BY segment
ORDER BY entities DESC, segment COLLATE "C" NULLS LAST
"""


def count_analysis(conn: psycopg.Connection, p: CountAnalysisParams, *, max_rows: int) -> Table:
    """Entities per segment, share of all entities, and the split by source system and entity type."""
    query = sql.SQL(COUNT_ANALYSIS).format(group_by=sql.SQL(GROUP_BY_SQL[p.group_by]))
    with conn.cursor() as cur:
        cur.execute(query)
        return fetch(cur, max_rows)
