"""database_info and simple_demo."""

from __future__ import annotations

import psycopg
from psycopg import sql

from resources.analytics.params import NoParams, SimpleDemoParams
from resources.analytics.result import Table, fetch
from resources.clients.postgres import scalar

# Tables whose planner estimate is below this are counted exactly (a count(*) of 100k narrow rows costs
# a few milliseconds); larger ones report pg_class.reltuples, refreshed by (auto)ANALYZE.
EXACT_COUNT_BELOW = 100_000

TABLES = """
SELECT c.oid, c.relname,
       CASE c.relkind WHEN 'p' THEN 'partitioned table' ELSE 'table' END AS kind,
       (SELECT count(*) FROM pg_catalog.pg_partition_tree(c.oid) t WHERE t.isleaf AND t.relid <> c.oid)
           AS partitions,
       s.estimated_rows, s.never_analyzed, s.total_bytes,
       (SELECT string_agg(a.attname || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod), ', '
                          ORDER BY a.attnum)
          FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
           AS columns,
       (SELECT count(*) FROM pg_catalog.pg_attribute a
          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS column_count
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
-- The relations that hold the rows: the table itself, or a partitioned table's leaf partitions.
CROSS JOIN LATERAL (
    SELECT sum(greatest(pc.reltuples, 0))::bigint AS estimated_rows,
           coalesce(bool_or(pc.reltuples < 0), false) AS never_analyzed,
           coalesce(sum(pg_catalog.pg_total_relation_size(pc.oid)), 0)::bigint AS total_bytes
    FROM pg_catalog.pg_class pc
    WHERE pc.oid IN (SELECT c.oid WHERE c.relkind <> 'p'
                     UNION ALL
                     SELECT t.relid FROM pg_catalog.pg_partition_tree(c.oid) t WHERE t.isleaf AND c.relkind = 'p')
) s
WHERE n.nspname = 'canonical' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND pg_catalog.has_table_privilege(c.oid, 'SELECT')
ORDER BY c.relname COLLATE "C"
"""


def database_info(conn: psycopg.Connection, p: NoParams, *, max_rows: int) -> Table:
    """The canonical tables this role can read: kind, partitions, rows (exact below 100,000 or when never
    analyzed, else the planner's estimate, with row_count_exact saying which), size, columns."""
    with conn.cursor() as cur:
        tables = cur.execute(TABLES).fetchall()
        rows = []
        for _oid, name, kind, partitions, estimate, never_analyzed, size, columns, ncols in tables:
            exact = bool(never_analyzed) or (estimate or 0) < EXACT_COUNT_BELOW
            if exact:
                # The name comes from the catalogue, quoted as an identifier.
                count = scalar(cur, sql.SQL("SELECT count(*) FROM canonical.{}").format(sql.Identifier(name)))
            else:
                count = estimate
            rows.append((name, kind, partitions, count, exact, size, ncols, columns))
    columns_out = [
        "table_name",
        "kind",
        "partitions",
        "row_count",
        "row_count_exact",
        "total_bytes",
        "column_count",
        "columns",
    ]
    return Table(columns_out, rows[:max_rows], len(rows) > max_rows)


SIMPLE_DEMO = """
SELECT coalesce(source_system, 'all') AS source_system,
       count(*) AS entities,
       count(revenue) AS with_revenue,
       sum(revenue) AS total_revenue,
       round(avg(revenue), 2) AS average_revenue,
       round(avg(employees), 1) AS average_employees,
       count(*) FILTER (WHERE entity_type = 'large_enterprise') AS large_enterprises
FROM canonical.entities
WHERE %(include_deleted)s OR status <> 'deleted'
GROUP BY ROLLUP (source_system)
ORDER BY grouping(source_system), source_system COLLATE "C"
"""


def simple_demo(conn: psycopg.Connection, p: SimpleDemoParams, *, max_rows: int) -> Table:
    """Entities per source system and in all: count, revenue total and average, average employees,
    large enterprises (deleted entities left out unless include_deleted)."""
    with conn.cursor() as cur:
        cur.execute(SIMPLE_DEMO, {"include_deleted": p.include_deleted})
        return fetch(cur, max_rows)
