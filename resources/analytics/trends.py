"""Analytics over canonical.time_series_data: multi_dimensional_analytics, time_series_patterns.

Periods are calendar periods in UTC (observed_at AT TIME ZONE 'UTC'), so results do not depend on the
session's time zone. "Previous period" is the calendar period just before; a gap gives no growth.

A dataset with no metric points at all (CRM exports alone) still has a history, as the old system
read it: when each entity arrived. Both operations then use the entities' revenue by month of arrival
(metric type `entity_revenue`, which can also be asked for by name).

multi_dimensional_analytics reads its cells (period × metric type × industry: entities, total) from
analytics.time_series_cells, which the database keeps exact as the points and entities change
(migration 0005); it computes them from the points only while that summary lists points without
their entity (analytics.time_series_orphans), and the two ways give the same rows.
"""

from __future__ import annotations

import psycopg

from resources.analytics.params import TIMEFRAME_STEP, MultiDimensionalParams, TimeSeriesPatternsParams
from resources.analytics.result import Table, fetch
from resources.clients.postgres import scalar

# Where the points come from: the metric points, or (no points at all) each entity's revenue in the month
# it arrived. Fixed fragments, chosen in Python: each statement keeps its own plan.
POINTS: dict[str, str] = {
    "time_series": """SELECT t.observed_at AT TIME ZONE 'UTC' AS at, t.metric_type COLLATE "C" AS metric_type,
           t.entity_canonical_id COLLATE "C" AS entity_canonical_id, t.value
    FROM canonical.time_series_data t""",
    "entities": """SELECT e.created_at AT TIME ZONE 'UTC' AS at, 'entity_revenue' COLLATE "C" AS metric_type,
           e.canonical_id COLLATE "C" AS entity_canonical_id, e.revenue AS value
    FROM canonical.entities e WHERE e.revenue IS NOT NULL""",
}
# Points are first summed per entity and period (an entity with daily points counts once), then joined to
# their entity for the industry. Tiers follow the percentile among the period's industries.
_CELLS_FROM_POINTS = """per_entity AS (
    SELECT date_trunc(%(unit)s, p.at)::date AS period, p.metric_type, p.entity_canonical_id, sum(p.value) AS value
    FROM (/*points*/) p
    /*window*/
    GROUP BY 1, 2, 3
), cells AS (
    SELECT p.period, p.metric_type, e.industry COLLATE "C" AS industry, count(*) AS entities, sum(p.value) AS total
    FROM per_entity p
    JOIN canonical.entities e ON e.canonical_id = p.entity_canonical_id
    GROUP BY 1, 2, 3
)"""
# The same cells, kept by the database as the points change (migration 0005, analytics.time_series_cells).
_CELLS_FROM_SUMMARY = """cells AS (
    SELECT s.period, s.metric_type, s.industry, s.entities, s.total
    FROM analytics.time_series_cells s
    WHERE s.unit = %(unit)s /*window*/
)"""
_MULTI_DIMENSIONAL = """
WITH /*cells*/, framed AS (
    SELECT c.*,
           lag(c.period) OVER by_industry AS previous_period,
           lag(c.total) OVER by_industry AS previous_total_any,
           sum(c.total) OVER by_period AS period_total,
           percent_rank() OVER (PARTITION BY c.period, c.metric_type ORDER BY c.total) AS percentile
    FROM cells c
    WINDOW by_industry AS (PARTITION BY c.metric_type, c.industry ORDER BY c.period),
           by_period AS (PARTITION BY c.period, c.metric_type)
), compared AS (
    SELECT f.*,
           CASE WHEN f.previous_period = (f.period - %(step)s::interval)::date THEN f.previous_total_any END
               AS previous_total
    FROM framed f
)
SELECT period, metric_type, industry, entities, total,
       round(total / entities, 2) AS average_per_entity,
       previous_total,
       CASE WHEN previous_total <> 0 THEN round(100 * (total - previous_total) / abs(previous_total), 2) END
           AS growth_pct,
       round(100 * total / NULLIF(period_total, 0), 2) AS market_share_pct,
       round(percentile::numeric, 4) AS percentile,
       CASE WHEN percentile >= 0.75 THEN 'leader'
            WHEN percentile >= 0.5 THEN 'strong'
            WHEN percentile >= 0.25 THEN 'moderate'
            ELSE 'emerging' END AS tier
FROM compared
ORDER BY period, metric_type, total DESC, industry NULLS LAST
"""


def _multi_dimensional(cells: str, window: str) -> str:
    return _MULTI_DIMENSIONAL.replace("/*cells*/", cells).replace("/*window*/", window)


# basis → (every period, a window of the last months)
MULTI_DIMENSIONAL: dict[str, tuple[str, str]] = {
    basis: (
        _multi_dimensional(_CELLS_FROM_POINTS.replace("/*points*/", points), ""),
        _multi_dimensional(_CELLS_FROM_POINTS.replace("/*points*/", points), "WHERE p.at >= %(since)s"),
    )
    for basis, points in POINTS.items()
}
MULTI_DIMENSIONAL["summary"] = (
    _multi_dimensional(_CELLS_FROM_SUMMARY, ""),
    _multi_dimensional(_CELLS_FROM_SUMMARY, "AND s.period >= %(since)s::date"),
)
# The first month of a window: N calendar months up to the latest point's month.
WINDOW_START = (
    """SELECT date_trunc('month', max(p.at)) - make_interval(months => %(months)s - 1) FROM (/*points*/) p"""
)
WINDOW_START_SUMMARY = """SELECT max(s.period)::timestamp - make_interval(months => %(months)s - 1)
FROM analytics.time_series_cells s WHERE s.unit = 'month'"""
HAS_POINTS = "SELECT EXISTS (SELECT 1 FROM canonical.time_series_data)"
# The summary holds every point exactly when no point lacks its entity (analytics.time_series_orphans is
# empty: never after ingest alone); otherwise the cells are computed from the points.
SUMMARY_COMPLETE = "SELECT NOT EXISTS (SELECT 1 FROM analytics.time_series_orphans)"


def multi_dimensional_analytics(
    conn: psycopg.Connection, p: MultiDimensionalParams, *, max_rows: int
) -> Table:
    """Period × metric type × industry: entities, total, average per entity, growth against the previous
    period, market share within the period, percentile among the period's industries and a tier
    (leader ≥ 0.75, strong ≥ 0.5, moderate ≥ 0.25, else emerging). Periods of the timeframe, or monthly
    over a window ('3 months'); with no metric points at all, entity revenue by month of arrival."""
    with conn.cursor() as cur:
        basis = "time_series" if scalar(cur, HAS_POINTS) else "entities"
        if basis == "time_series" and scalar(cur, SUMMARY_COMPLETE):
            basis = "summary"
        every, window = MULTI_DIMENSIONAL[basis]
        args: dict[str, object] = {"unit": p.unit, "step": TIMEFRAME_STEP[p.unit]}
        if p.window_months is None:
            cur.execute(every, args)
        else:
            start = (
                WINDOW_START_SUMMARY
                if basis == "summary"
                else WINDOW_START.replace("/*points*/", POINTS[basis])
            )
            since = scalar(cur, start, {"months": p.window_months})
            cur.execute(window, {**args, "since": since})
        return fetch(cur, max_rows)


# From the monthly totals on, both series are read the same way.
_PATTERNS_TAIL = """), framed AS (
    SELECT m.*,
           lag(m.period) OVER by_period AS previous_period,
           lag(m.total) OVER by_period AS previous_total_any,
           avg(m.total) OVER last3 AS ma3,
           avg(m.total) OVER last6 AS ma6,
           stddev_samp(m.total) OVER last3 AS sd3
    FROM monthly m
    WINDOW by_period AS (ORDER BY m.period),
           last3 AS (ORDER BY m.period ROWS BETWEEN 2 PRECEDING AND CURRENT ROW),
           last6 AS (ORDER BY m.period ROWS BETWEEN 5 PRECEDING AND CURRENT ROW)
), measured AS (
    SELECT f.*,
           CASE WHEN f.previous_period = (f.period - interval '1 month')::date AND f.previous_total_any <> 0
                THEN 100 * (f.total - f.previous_total_any) / abs(f.previous_total_any) END AS growth,
           CASE WHEN f.ma3 <> 0 THEN 100 * f.sd3 / abs(f.ma3) END AS volatility
    FROM framed f
)
SELECT period, entities, total,
       round(total / entities, 2) AS average_per_entity,
       round(ma3, 2) AS moving_avg_3,
       round(ma6, 2) AS moving_avg_6,
       round(growth, 2) AS growth_pct,
       round(volatility, 2) AS volatility_pct,
       CASE WHEN growth IS NULL THEN 'insufficient_data'
            WHEN volatility >= %(volatile)s THEN 'volatile'
            WHEN growth >= 5 THEN 'strong_growth'
            WHEN growth > 0.5 THEN 'growth'
            WHEN growth >= -0.5 THEN 'stable'
            WHEN growth > -5 THEN 'decline'
            ELSE 'strong_decline' END AS trend
FROM measured
ORDER BY period
"""
# The window: the last N calendar months up to the month of the metric's latest observation.
TIME_SERIES_PATTERNS = (
    """
WITH latest AS (
    SELECT date_trunc('month', max(observed_at) AT TIME ZONE 'UTC') AS last_month
    FROM canonical.time_series_data WHERE metric_type = %(metric_type)s
), monthly AS (
    SELECT date_trunc('month', t.observed_at AT TIME ZONE 'UTC')::date AS period,
           count(DISTINCT t.entity_canonical_id) AS entities,
           sum(t.value) AS total
    FROM canonical.time_series_data t, latest l
    WHERE t.metric_type = %(metric_type)s
      AND (%(months)s::int IS NULL
           OR t.observed_at >= (l.last_month - make_interval(months => %(months)s::int - 1)) AT TIME ZONE 'UTC')
    GROUP BY 1
"""
    + _PATTERNS_TAIL
)
ENTITY_REVENUE_PATTERNS = (
    """
WITH arrivals AS (
    -- Entity revenue by month of arrival, cumulated: the revenue of the entities known by each month.
    SELECT date_trunc('month', e.created_at AT TIME ZONE 'UTC')::date AS period, count(*) AS n, sum(e.revenue) AS revenue
    FROM canonical.entities e
    WHERE e.revenue IS NOT NULL
    GROUP BY 1
), known AS (
    SELECT g.period::date AS period,
           sum(coalesce(a.n, 0)) OVER by_month AS entities,
           sum(coalesce(a.revenue, 0)) OVER by_month AS total
    FROM (SELECT generate_series(min(period), max(period), interval '1 month') AS period FROM arrivals) g
    LEFT JOIN arrivals a ON a.period = g.period::date
    WINDOW by_month AS (ORDER BY g.period)
), monthly AS (
    SELECT k.* FROM known k
    WHERE %(months)s::int IS NULL
       OR k.period > (SELECT max(period) FROM known) - make_interval(months => %(months)s::int)
"""
    + _PATTERNS_TAIL
)
ENTITY_REVENUE = "entity_revenue"  # the metric type of the series derived from the entities
VOLATILE_PCT = 20  # coefficient of variation over the last 3 months at or above which a month is 'volatile'


def time_series_patterns(conn: psycopg.Connection, p: TimeSeriesPatternsParams, *, max_rows: int) -> Table:
    """One row per month of the window: entities reporting, total, average per entity, 3- and 6-month
    moving averages, growth against the previous month, volatility (coefficient of variation of the
    last 3 months, %) and a trend label (insufficient_data, volatile, strong_growth ≥ 5 %, growth > 0.5 %,
    stable, decline, strong_decline ≤ -5 %). With no metric points at all (or metric_type
    entity_revenue): the revenue of the entities known by each month, by month of arrival."""
    with conn.cursor() as cur:
        from_entities = p.metric_type == ENTITY_REVENUE or not scalar(cur, HAS_POINTS)
        cur.execute(
            ENTITY_REVENUE_PATTERNS if from_entities else TIME_SERIES_PATTERNS,
            {"metric_type": p.metric_type, "months": p.months, "volatile": VOLATILE_PCT},
        )
        return fetch(cur, max_rows)
