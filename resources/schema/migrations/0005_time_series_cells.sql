-- multi_dimensional_analytics from a summary kept by the database: per unit (month, quarter, year) ×
-- period × metric type × entity industry, the entities with points in that period and their total.
-- Computed from the points, every point is grouped by entity and joined to its entity for the industry,
-- which grows with the points (seconds at 1M entities: bench/schema_measurements.md); read from here it
-- is a few hundred rows. Ingest of metric points pays for the triggers below; loads without points do not.
--
-- Kept exact by triggers, whatever statement changes the data (no change in the loader):
--   - time_series_data: after each INSERT / UPDATE / DELETE statement (transition tables), the (entity,
--     metric type) pairs it touched are counted again before and after, and the difference is added;
--   - entities: a row whose industry (or canonical id) changes, or that is deleted, moves or removes its
--     points' contribution (row triggers that fire only on such a change: ingest's ordinary upserts pass);
--   - TRUNCATE of either table: rebuilt from scratch.
-- Concurrent writers: every one of these steps first takes one transaction-scoped advisory lock
-- (analytics.time_series_cells_lock, below), so their reads and deltas are serialised from there to the
-- commit; writes must run under READ COMMITTED (each statement after the lock reads a fresh snapshot).
-- Points whose entity does not exist (never the loader's case: it writes the entity first, in the same
-- transaction; an entity deleted by hand leaves its points so) count nowhere, as in the query's inner
-- join; their (entity, metric type) pairs are listed in analytics.time_series_orphans and stay out of
-- the cells whatever happens to them. The invariant: a pair with points is either listed there, or its
-- entity exists and its contribution is in the cells under the entity's current industry. While any
-- pair is listed, the reading side computes from the points (always right, just slow);
-- analytics.rebuild_time_series_cells() (owner) recounts everything and empties the list.
-- Not covered: dropping or detaching a partition that still holds points (rebuild afterwards).
--
-- Runs as the database owner. The trigger functions are SECURITY DEFINER (owner), so the writer needs no
-- privilege on the summary; the read-only role may SELECT it.

CREATE TABLE analytics.time_series_cells (
    unit        text NOT NULL CHECK (unit IN ('month', 'quarter', 'year')),
    period      date NOT NULL,
    metric_type text COLLATE "C" NOT NULL,
    industry    text COLLATE "C",                 -- NULL: entities without an industry
    entities    bigint NOT NULL,                  -- a row that reaches 0 is deleted by the same call
    total       numeric NOT NULL,
    UNIQUE NULLS NOT DISTINCT (unit, period, metric_type, industry)
);

CREATE TABLE analytics.time_series_orphans (
    entity_canonical_id text NOT NULL,
    metric_type         text NOT NULL,
    PRIMARY KEY (entity_canonical_id, metric_type)
);

-- Every maintenance step starts here, before it reads. Its deltas are differences between what it reads
-- before and after a change, so two transactions must not both read without seeing each other: the
-- second one to get here waits until the first commits (the lock is the transaction's), and under READ
-- COMMITTED each following statement of the trigger takes a fresh snapshot, which then holds the first
-- one's points and industries. Under REPEATABLE READ or SERIALIZABLE the snapshot would stay the one
-- taken before the wait: refused. The key is listed with the loader's other locks (resources/ingest/loader.py,
-- SUMMARY_LOCK), which takes it itself before its metric merge so that every load takes its locks in one
-- order.
CREATE FUNCTION analytics.time_series_cells_lock()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $fn$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'canonical.time_series_data and canonical.entities are written under READ COMMITTED only'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'analytics.time_series_cells is kept by triggers that must read after their lock.';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('analytics.time_series_cells'));
END
$fn$;

-- After each statement on the points: its changes, grouped per (entity, metric type, month) into the
-- points gained or lost and the value added, are turned into the cells' differences.
--   - Totals: the value added, under the entity's industry. Nothing else is read for a pair whose months
--     kept their number of points (an update of values only: a reload's usual case).
--   - Entities (an entity counts in a period if it has a point in any of the period's months): for the
--     pairs that gained or lost points, their points now in the years the statement touched are
--     counted, per pair. A pair that had none of them before (a first load: "fresh") or has none left
--     ("gone") needs nothing more: its change is its whole presence. Only for the others ("detail":
--     points added to or removed from an entity that keeps others in the same year) are the points
--     read again per month; before = now minus the change.
-- Each transition table is read once, the entities once per entity.
CREATE FUNCTION analytics.time_series_cells_after_statement()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, canonical
-- A big load's changes are grouped in memory (the writer's default 4MB spilled them to disk: 3x slower).
SET work_mem = '256MB'
AS $fn$
DECLARE
    changes text;
    small boolean;
    points_of text;
BEGIN
    PERFORM analytics.time_series_cells_lock();
    -- (entity, metric type, time, points: +1 added / -1 removed, value added); an update is both
    changes := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT entity_canonical_id, metric_type, observed_at, 1 AS n, value AS v FROM new_points'
        WHEN 'DELETE' THEN 'SELECT entity_canonical_id, metric_type, observed_at, -1 AS n, -value AS v FROM old_points'
        ELSE 'SELECT entity_canonical_id, metric_type, observed_at, 1 AS n, value AS v FROM new_points
              UNION ALL
              SELECT entity_canonical_id, metric_type, observed_at, -1 AS n, -value AS v FROM old_points'
    END;
    -- The points of some pairs (%1$s: which), now: for a statement small against the table one index
    -- lookup per pair (its years bound it to their partitions), for a big one a single pass.
    EXECUTE 'SELECT count(*) * 10 < (SELECT sum(c.reltuples) FROM pg_catalog.pg_class c
                                      WHERE c.oid IN (SELECT relid FROM pg_partition_tree(''canonical.time_series_data'')))
             FROM (' || changes || ') c' INTO STRICT small;
    points_of := CASE WHEN small THEN
        'SELECT t.* FROM %1$s c CROSS JOIN LATERAL (
             SELECT t.entity_canonical_id, t.metric_type, t.observed_at FROM canonical.time_series_data t
             WHERE t.entity_canonical_id = c.e AND t.metric_type = c.m AND t.observed_at >= c.since
               AND t.observed_at < c.until OFFSET 0) t'
    ELSE
        'SELECT t.entity_canonical_id, t.metric_type, t.observed_at FROM canonical.time_series_data t
         JOIN %1$s c ON c.e = t.entity_canonical_id AND c.m = t.metric_type
         WHERE t.observed_at >= c.since AND t.observed_at < c.until'
    END;
    -- Dynamic only to name the transition tables this trigger has; nothing from the data is pasted.
    EXECUTE format($q$
        WITH d AS MATERIALIZED (
            SELECT c.entity_canonical_id AS e, c.metric_type AS m,
                   date_trunc('month', c.observed_at AT TIME ZONE 'UTC')::date AS month,
                   sum(c.n)::bigint AS n, sum(c.v) AS v
            FROM (%s) c
            GROUP BY 1, 2, 3
        ), pairs AS MATERIALIZED (
            SELECT d.e, d.m, sum(d.n) AS n, bool_or(d.n <> 0) AS moved,
                   date_trunc('year', min(d.month))::timestamp AT TIME ZONE 'UTC' AS since,
                   (date_trunc('year', max(d.month)) + interval '1 year')::timestamp AT TIME ZONE 'UTC' AS until
            FROM d GROUP BY 1, 2
        ), entity AS MATERIALIZED (
            SELECT x.e, en.canonical_id IS NOT NULL AS present, en.industry COLLATE "C" AS industry
            FROM (SELECT DISTINCT p.e FROM pairs p) x
            LEFT JOIN canonical.entities en ON en.canonical_id = x.e
        ), orphans AS (
            -- points without their entity count nowhere (the query's inner join): listed, see above
            INSERT INTO analytics.time_series_orphans (entity_canonical_id, metric_type)
            SELECT p.e, p.m FROM pairs p JOIN entity en ON en.e = p.e WHERE NOT en.present
            ON CONFLICT DO NOTHING
        ), moved AS MATERIALIZED (
            -- the pairs that count (entity present, not listed as orphans: those stay so) and moved
            SELECT p.e, p.m, p.since, p.until FROM pairs p JOIN entity en ON en.e = p.e AND en.present
            WHERE p.moved AND NOT EXISTS (SELECT FROM analytics.time_series_orphans o
                                          WHERE o.entity_canonical_id = p.e AND o.metric_type = p.m)
        ), now_n AS MATERIALIZED (
            SELECT t.entity_canonical_id AS e, t.metric_type AS m, count(*) AS n
            FROM (%s) t GROUP BY 1, 2
        ), counted AS MATERIALIZED (
            SELECT p.e, p.m, p.since, p.until, en.industry,
                   -- now minus the change is 0: all of the pair's points in those years are new
                   p.moved AND coalesce(a.n, 0) = p.n AS fresh,
                   p.moved AND a.n IS NULL AS gone,
                   p.moved AND coalesce(a.n, 0) NOT IN (0, p.n) AS detail
            FROM pairs p JOIN entity en ON en.e = p.e AND en.present
            LEFT JOIN now_n a ON a.e = p.e AND a.m = p.m
            WHERE NOT EXISTS (SELECT FROM analytics.time_series_orphans o
                              WHERE o.entity_canonical_id = p.e AND o.metric_type = p.m)
        ), detail AS MATERIALIZED (
            SELECT c.e, c.m, c.since, c.until FROM counted c WHERE c.detail
        ), months AS MATERIALIZED (
            -- per counted pair and month (one row each): points after, points before, value added
            SELECT d.e, d.m, c.industry, d.month,
                   CASE WHEN c.fresh THEN d.n ELSE 0 END AS after_n,
                   CASE WHEN c.gone THEN -d.n ELSE 0 END AS before_n, d.v
            FROM d JOIN counted c ON c.e = d.e AND c.m = d.m AND NOT c.detail
            UNION ALL
            SELECT x.e, x.m, c.industry, x.month, sum(x.now_n), sum(x.now_n - x.n), sum(x.v)
            FROM (SELECT t.entity_canonical_id AS e, t.metric_type AS m,
                         date_trunc('month', t.observed_at AT TIME ZONE 'UTC')::date AS month,
                         1 AS now_n, 0 AS n, 0 AS v
                  FROM (%s) t
                  UNION ALL
                  SELECT d.e, d.m, d.month, 0, d.n, d.v FROM d) x
            JOIN counted c ON c.e = x.e AND c.m = x.m AND c.detail
            GROUP BY x.e, x.m, c.industry, x.month
        ), per_entity AS (
            SELECT 'month' AS unit, j.month AS period, j.m, j.industry,
                   (j.after_n > 0)::int - (j.before_n > 0)::int AS entities, j.v AS total
            FROM months j
            UNION ALL
            SELECT 'quarter', date_trunc('quarter', j.month::timestamp)::date, j.m, j.industry,
                   (sum(j.after_n) > 0)::int - (sum(j.before_n) > 0)::int, sum(j.v)
            FROM months j GROUP BY 2, 3, 4, j.e
            UNION ALL
            SELECT 'year', date_trunc('year', j.month::timestamp)::date, j.m, j.industry,
                   (sum(j.after_n) > 0)::int - (sum(j.before_n) > 0)::int, sum(j.v)
            FROM months j GROUP BY 2, 3, 4, j.e
        ), delta AS (
            SELECT d.unit, d.period, d.m COLLATE "C" AS metric_type, d.industry,
                   sum(d.entities) AS entities, sum(d.total) AS total
            FROM per_entity d
            GROUP BY 1, 2, 3, 4
        )
        INSERT INTO analytics.time_series_cells AS s (unit, period, metric_type, industry, entities, total)
        SELECT * FROM (SELECT * FROM delta WHERE entities <> 0 OR total <> 0 ORDER BY 1, 2, 3, 4) x
        ON CONFLICT (unit, period, metric_type, industry) DO UPDATE
            SET entities = s.entities + EXCLUDED.entities, total = s.total + EXCLUDED.total
    $q$, changes, format(points_of, 'moved'), format(points_of, 'detail'));
    DELETE FROM analytics.time_series_cells WHERE entities = 0;
    RETURN NULL;
END
$fn$;

-- Adds (sign +1) or removes (-1) the points of one entity, under the given industry (orphan pairs aside).
CREATE FUNCTION analytics.time_series_cells_move(p_entity text, p_industry text, p_sign int)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, canonical
BEGIN ATOMIC
    INSERT INTO analytics.time_series_cells AS s (unit, period, metric_type, industry, entities, total)
    SELECT p.unit, p.period, p.metric_type, p_industry COLLATE "C", p_sign * count(*), p_sign * sum(p.total)
    FROM (SELECT u.unit, date_trunc(u.unit, t.observed_at AT TIME ZONE 'UTC')::date AS period,
                 t.metric_type COLLATE "C" AS metric_type, sum(t.value) AS total
          FROM canonical.time_series_data t CROSS JOIN (VALUES ('month'), ('quarter'), ('year')) u (unit)
          WHERE t.entity_canonical_id = p_entity
            AND NOT EXISTS (SELECT FROM analytics.time_series_orphans o
                            WHERE o.entity_canonical_id = t.entity_canonical_id AND o.metric_type = t.metric_type)
          GROUP BY 1, 2, 3) p
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (unit, period, metric_type, industry) DO UPDATE
        SET entities = s.entities + EXCLUDED.entities, total = s.total + EXCLUDED.total;
    DELETE FROM analytics.time_series_cells WHERE entities = 0;
END;

-- An entity's points move with its industry (or leave with it): one row at a time, only for rows whose
-- industry or canonical id changed (the trigger's WHEN), or that are deleted.
CREATE FUNCTION analytics.time_series_cells_entity_changed()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, canonical
AS $fn$
BEGIN
    PERFORM analytics.time_series_cells_lock();
    PERFORM analytics.time_series_cells_move(OLD.canonical_id, OLD.industry, -1);
    IF TG_OP = 'UPDATE' THEN
        PERFORM analytics.time_series_cells_move(NEW.canonical_id, NEW.industry, 1);
    END IF;
    -- Points left without their entity count nowhere (the query's inner join); listed, see above.
    INSERT INTO analytics.time_series_orphans (entity_canonical_id, metric_type)
    SELECT DISTINCT t.entity_canonical_id, t.metric_type FROM canonical.time_series_data t
    WHERE t.entity_canonical_id = OLD.canonical_id
      AND NOT EXISTS (SELECT FROM canonical.entities e WHERE e.canonical_id = OLD.canonical_id)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION analytics.rebuild_time_series_cells()
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, canonical
AS $fn$
BEGIN
    -- plpgsql, so that the statements after the lock read a snapshot taken after it
    PERFORM analytics.time_series_cells_lock();
    DELETE FROM analytics.time_series_cells;
    DELETE FROM analytics.time_series_orphans;
    INSERT INTO analytics.time_series_cells (unit, period, metric_type, industry, entities, total)
    SELECT p.unit, p.period, p.metric_type, e.industry COLLATE "C", count(*), sum(p.total)
    FROM (SELECT u.unit, date_trunc(u.unit, t.observed_at AT TIME ZONE 'UTC')::date AS period,
                 t.metric_type COLLATE "C" AS metric_type, t.entity_canonical_id, sum(t.value) AS total
          FROM canonical.time_series_data t CROSS JOIN (VALUES ('month'), ('quarter'), ('year')) u (unit)
          GROUP BY 1, 2, 3, 4) p
    JOIN canonical.entities e ON e.canonical_id = p.entity_canonical_id
    GROUP BY 1, 2, 3, 4;
    INSERT INTO analytics.time_series_orphans (entity_canonical_id, metric_type)
    SELECT DISTINCT t.entity_canonical_id, t.metric_type FROM canonical.time_series_data t
    WHERE NOT EXISTS (SELECT FROM canonical.entities e WHERE e.canonical_id = t.entity_canonical_id);
END
$fn$;

CREATE FUNCTION analytics.time_series_cells_after_truncate()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, canonical
AS $fn$
BEGIN
    PERFORM analytics.rebuild_time_series_cells();
    RETURN NULL;
END
$fn$;

CREATE TRIGGER time_series_cells_insert AFTER INSERT ON canonical.time_series_data
    REFERENCING NEW TABLE AS new_points
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.time_series_cells_after_statement();
CREATE TRIGGER time_series_cells_update AFTER UPDATE ON canonical.time_series_data
    REFERENCING OLD TABLE AS old_points NEW TABLE AS new_points
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.time_series_cells_after_statement();
CREATE TRIGGER time_series_cells_delete AFTER DELETE ON canonical.time_series_data
    REFERENCING OLD TABLE AS old_points
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.time_series_cells_after_statement();
CREATE TRIGGER time_series_cells_truncate AFTER TRUNCATE ON canonical.time_series_data
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.time_series_cells_after_truncate();
CREATE TRIGGER time_series_cells_entity_update AFTER UPDATE OF industry, canonical_id ON canonical.entities
    FOR EACH ROW
    WHEN (OLD.industry IS DISTINCT FROM NEW.industry OR OLD.canonical_id IS DISTINCT FROM NEW.canonical_id)
    EXECUTE FUNCTION analytics.time_series_cells_entity_changed();
CREATE TRIGGER time_series_cells_entity_delete AFTER DELETE ON canonical.entities
    FOR EACH ROW EXECUTE FUNCTION analytics.time_series_cells_entity_changed();
CREATE TRIGGER time_series_cells_entity_truncate AFTER TRUNCATE ON canonical.entities
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.time_series_cells_after_truncate();

REVOKE ALL ON FUNCTION analytics.time_series_cells_move(text, text, int) FROM PUBLIC;
REVOKE ALL ON FUNCTION analytics.rebuild_time_series_cells() FROM PUBLIC;
REVOKE ALL ON FUNCTION analytics.time_series_cells_lock() FROM PUBLIC;
GRANT SELECT ON analytics.time_series_cells, analytics.time_series_orphans TO pipeline_reader;

-- The data already there (deploys run this on production data).
SELECT analytics.rebuild_time_series_cells();
