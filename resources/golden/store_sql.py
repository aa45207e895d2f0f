"""Every statement resources/golden/store.py sends: the resolution's reads and writes of schema golden."""

from __future__ import annotations

# One resolution writes at a time (arbitrary, fixed key among advisory locks).
RESOLUTION_LOCK = 727_014
LOCK = "SELECT pg_advisory_xact_lock(%s)"

# The member's content as its golden record was built from: a change of attributes, status or source
# position shows as a different fingerprint.
FINGERPRINT = (
    "md5(encode(e.attributes_hash, 'hex') || '|' || e.status || '|' || e.source_changed_at::text || '|' "
    "|| e.source_file_at::text || '|' || e.source_file_id::text)"
)

NEXT_NUMBER = "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM golden.golden_id_seq"
# setval only moves forward here (the caller passes a number past every one given), and is not undone by
# a rollback: a number once handed out is never handed out again.
ADVANCE_SEQUENCE = "SELECT setval('golden.golden_id_seq', %s, true)"

INSERT_RUN = """INSERT INTO golden.runs (run_id, mode, model_version, started_at) VALUES (%s, %s, %s, coalesce(%s, now()))
                ON CONFLICT (run_id) DO UPDATE SET mode = EXCLUDED.mode, model_version = EXCLUDED.model_version,
                                                   started_at = EXCLUDED.started_at, finished_at = NULL"""
FINISH_RUN = """UPDATE golden.runs SET finished_at = clock_timestamp(), entities = %s, clusters = %s, pairs = %s,
                       review_pairs = %s, ids_created = %s, ids_retired = %s, members_moved = %s,
                       records_written = %s
                WHERE run_id = %s"""

ALL_MEMBERS = "SELECT canonical_id, golden_id FROM golden.members"

CREATE_SCOPE = "CREATE TEMPORARY TABLE golden_scope (canonical_id text PRIMARY KEY) ON COMMIT DROP"
COPY_SCOPE = "COPY golden_scope (canonical_id) FROM STDIN"
MEMBERS_OF_SCOPE = """SELECT m.canonical_id, m.golden_id FROM golden.members m
                      WHERE m.golden_id IN (SELECT s.golden_id FROM golden.members s
                                            JOIN golden_scope USING (canonical_id))"""

CONTENT_CHANGED = f"""SELECT DISTINCT m.golden_id FROM golden.members m
                      JOIN canonical.entities e USING (canonical_id)
                      WHERE m.fingerprint <> {FINGERPRINT}"""
CONTENT_CHANGED_IN = f"""SELECT DISTINCT m.golden_id FROM golden.members m
                         JOIN canonical.entities e USING (canonical_id)
                         WHERE m.golden_id = ANY(%s) AND m.fingerprint <> {FINGERPRINT}"""
RULES_CHANGED = """SELECT golden_id FROM golden.entities
                   WHERE status = 'active' AND rules_version IS DISTINCT FROM %s"""
RULES_CHANGED_IN = """SELECT golden_id FROM golden.entities
                      WHERE status = 'active' AND golden_id = ANY(%s) AND rules_version IS DISTINCT FROM %s"""

CREATE_REBUILD = """CREATE TEMPORARY TABLE golden_rebuild (canonical_id text PRIMARY KEY, golden_id text NOT NULL)
                    ON COMMIT DROP"""
COPY_REBUILD = "COPY golden_rebuild (canonical_id, golden_id) FROM STDIN"
# Positions at -infinity (rows loaded before positions existed) come back as NULL: older than any.
ANALYZE_REBUILD = "ANALYZE golden_rebuild"
# In golden id order: a golden entity's members arrive together, so each is built when the next starts.
# The attributes as text: parsed by the client's faster JSON reader.
REBUILD_MEMBERS = """SELECT r.golden_id, e.canonical_id, e.source_system, e.name, e.industry, e.revenue,
                            e.employees, e.attributes::text,
                            CASE WHEN isfinite(e.source_changed_at) THEN e.source_changed_at END,
                            CASE WHEN isfinite(e.source_file_at) THEN e.source_file_at END,
                            e.source_file_id, e.status
                     FROM golden_rebuild r JOIN canonical.entities e USING (canonical_id)
                     ORDER BY r.golden_id COLLATE "C"
                  """

CREATE_STAGED_MEMBERS = """CREATE TEMPORARY TABLE golden_staged_members (
                               canonical_id text PRIMARY KEY, golden_id text NOT NULL, fingerprint text NOT NULL
                           ) ON COMMIT DROP"""
STAGE_REBUILT_MEMBERS = f"""INSERT INTO golden_staged_members (canonical_id, golden_id, fingerprint)
                              SELECT r.canonical_id, r.golden_id, {FINGERPRINT}
                              FROM golden_rebuild r JOIN canonical.entities e USING (canonical_id)"""
MERGE_MEMBERS = """INSERT INTO golden.members AS m (canonical_id, golden_id, fingerprint, since_run_id, since)
                   SELECT canonical_id, golden_id, fingerprint, %(run)s, now() FROM golden_staged_members
                   ON CONFLICT (canonical_id) DO UPDATE
                   SET golden_id = EXCLUDED.golden_id, fingerprint = EXCLUDED.fingerprint,
                       since_run_id = CASE WHEN m.golden_id = EXCLUDED.golden_id THEN m.since_run_id
                                           ELSE EXCLUDED.since_run_id END,
                       since = CASE WHEN m.golden_id = EXCLUDED.golden_id THEN m.since ELSE EXCLUDED.since END
                   WHERE m.golden_id <> EXCLUDED.golden_id OR m.fingerprint <> EXCLUDED.fingerprint"""
DELETE_MEMBERS = "DELETE FROM golden.members WHERE canonical_id = ANY(%s)"

RECORD_COLUMNS = (
    "name",
    "industry",
    "revenue",
    "employees",
    "country",
    "email",
    "website",
    "phone",
    "address",
)
CREATE_STAGED_RECORDS = f"""CREATE TEMPORARY TABLE golden_staged_records (
                                golden_id text PRIMARY KEY, seq bigint NOT NULL, member_count integer NOT NULL,
                                {", ".join(f"{c} {'numeric' if c == 'revenue' else 'bigint' if c == 'employees' else 'text'}" for c in RECORD_COLUMNS)},
                                attributes jsonb NOT NULL, lineage jsonb NOT NULL
                            ) ON COMMIT DROP"""
COPY_STAGED_RECORDS = (
    f"COPY golden_staged_records (golden_id, seq, member_count, {', '.join(RECORD_COLUMNS)}, attributes, lineage) "
    "FROM STDIN"
)
MERGE_RECORDS = f"""INSERT INTO golden.entities AS g (golden_id, seq, status, member_count,
                                                     {", ".join(RECORD_COLUMNS)}, attributes, lineage,
                                                     rules_version, created_run_id, updated_run_id)
                    SELECT golden_id, seq, 'active', member_count, {", ".join(RECORD_COLUMNS)}, attributes,
                           lineage, %(rules)s, %(run)s, %(run)s
                    FROM golden_staged_records
                    ON CONFLICT (golden_id) DO UPDATE
                    SET status = 'active', successor_id = NULL, retired_at = NULL,
                        member_count = EXCLUDED.member_count,
                        {", ".join(f"{c} = EXCLUDED.{c}" for c in RECORD_COLUMNS)},
                        attributes = EXCLUDED.attributes, lineage = EXCLUDED.lineage,
                        rules_version = EXCLUDED.rules_version, updated_run_id = EXCLUDED.updated_run_id,
                        updated_at = now()"""
RETIRE = """UPDATE golden.entities SET status = 'retired', successor_id = %s, member_count = 0,
                   retired_at = now(), updated_at = now(), updated_run_id = %s
            WHERE golden_id = %s"""

COPY_HISTORY = "COPY golden.history (run_id, kind, golden_id, other_golden_id, members, reason) FROM STDIN"

DELETE_ALL_PAIRS = "DELETE FROM golden.pairs"
DELETE_PAIRS_OF = """DELETE FROM golden.pairs p USING golden_scope s
                     WHERE p.canonical_id_l = s.canonical_id OR p.canonical_id_r = s.canonical_id"""
CREATE_STAGED_PAIRS = """CREATE TEMPORARY TABLE golden_staged_pairs (LIKE golden.pairs) ON COMMIT DROP"""
COPY_STAGED_PAIRS = """COPY golden_staged_pairs (canonical_id_l, canonical_id_r, match_weight, match_probability,
                                                  band, comparisons, run_id) FROM STDIN"""
MERGE_PAIRS = """INSERT INTO golden.pairs SELECT * FROM golden_staged_pairs
                 ON CONFLICT (canonical_id_l, canonical_id_r) DO UPDATE
                 SET match_weight = EXCLUDED.match_weight, match_probability = EXCLUDED.match_probability,
                     band = EXCLUDED.band, comparisons = EXCLUDED.comparisons, run_id = EXCLUDED.run_id"""

# The decision in force on each pair: the latest, a move_out standing for a not_same with each record it
# was moved apart from.
DECISIONS_IN_FORCE = """
WITH links AS (
    SELECT d.decision_id, d.kind, d.decided_by, d.canonical_id_l AS l, d.canonical_id_r AS r, NULL::text AS leaving
    FROM golden.decisions d WHERE d.kind <> 'move_out'
    UNION ALL
    SELECT d.decision_id, d.kind, d.decided_by,
           least(d.canonical_id_l COLLATE "C", a COLLATE "C"), greatest(d.canonical_id_l COLLATE "C", a COLLATE "C"),
           d.canonical_id_l
    FROM golden.decisions d CROSS JOIN LATERAL unnest(d.apart_from) AS a
    WHERE d.kind = 'move_out' AND a <> d.canonical_id_l
)
SELECT DISTINCT ON (l, r) l, r, decision_id, kind, decided_by, leaving
FROM links ORDER BY l, r, decision_id DESC"""

UPSERT_MODEL = """INSERT INTO golden.models (model_version, parameters, trained_at) VALUES (%s, %s, %s)
                  ON CONFLICT (model_version) DO NOTHING"""
DEACTIVATE_MODELS = "UPDATE golden.models SET active = false WHERE active AND model_version <> %s"
ACTIVATE_MODEL = "UPDATE golden.models SET active = true WHERE model_version = %s"
ACTIVE_MODEL = "SELECT model_version, parameters, trained_at FROM golden.models WHERE active"
MODEL = "SELECT model_version, parameters, trained_at FROM golden.models WHERE model_version = %s"
