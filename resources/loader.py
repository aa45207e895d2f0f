"""Load one file's mapped records into the canonical tables, inside the caller's transaction.

COPY into temporary staging tables, then one merge per table:
- source order first: each staged record claims its entity's row in `ingest.entity_order` (the newest
  source position seen for it) with `INSERT … ON CONFLICT DO UPDATE … WHERE newer`, in canonical_id
  order. A record that does not win is older than what the store holds: it is counted as superseded
  and dropped from staging, so it changes no entity, parent link or metric point. The winner holds
  that row's lock to the end of the file's transaction: a concurrent run over the same entity waits
  for it and then compares against the committed result (no lost update, no deadlock).
- entities: `INSERT … ON CONFLICT (canonical_id) DO UPDATE … WHERE attributes changed`; records whose
  attributes hash equals the current version's (kept beside the position in ingest.entity_order) left
  staging at the claim, so a reload never reads the entities table for them. PostgreSQL 18's
  `RETURNING old.*` hands the replaced version to entity_history in the same statement, under the row
  lock the merge already holds.
- relationships: the current parent of each child, history kept by closing effective_to.
- time series: monthly partitions ensured, then upserted.
Refused records are spooled (memory stays flat) and copied into ingest.rejected_records.
Dagster-free: the benchmark and tests drive it directly.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import IO, Any

import psycopg

from resources.canonical.model import TRANSFORMATION_VERSION, CanonicalRecord, Problem, Refusal
from resources.parsing import MalformedLine

_COPY_FLUSH_BYTES = 1 << 20
_SPOOL_MEMORY_BYTES = 8 << 20
# JSON text never holds raw tabs or newlines (json.dumps escapes them); only its backslashes need
# doubling for COPY's text format.
_BACKSLASH = "\\"
_NULL = "\\N"  # COPY text format's NULL
_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@dataclass(slots=True)
class FileLoadResult:
    received: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    duplicates: int = 0  # records whose canonical id appeared again later in the file (last one wins)
    superseded: int = 0  # records older (in source order) than what the store already held: not applied
    moved_back: int = 0  # entities this file moved back in source order: 0 unless the ordering rule broke
    relationships: int = 0  # current parent links created or changed
    time_series: int = 0  # metric points inserted or changed
    seconds: float = 0.0

    @property
    def records_per_second(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0

    @property
    def changed_rows(self) -> int:
        return self.inserted + self.updated + self.relationships + self.time_series

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["records_per_second"] = round(self.records_per_second, 1)
        return d


def _text(value: str | None) -> str:
    return "\\N" if value is None else value.translate(_TEXT_ESCAPES)


def _num(value: Any) -> str:
    return "\\N" if value is None else str(value)


class _Spool:
    """COPY text rows written to a temporary file that stays in memory until it is large."""

    def __init__(self) -> None:
        self.file: IO[str] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by close()
            _SPOOL_MEMORY_BYTES, mode="w+", encoding="utf-8")
        self.rows = 0

    def write(self, line: str) -> None:
        self.file.write(line)
        self.rows += 1

    def copy_into(self, cur: psycopg.Cursor, statement: str) -> None:
        if not self.rows:
            return
        self.file.seek(0)
        with cur.copy(statement) as copy:
            while chunk := self.file.read(_COPY_FLUSH_BYTES):
                copy.write(chunk)

    def close(self) -> None:
        self.file.close()


STAGING_DDL = """
CREATE TEMP TABLE staging_entities (
    ord integer NOT NULL, canonical_id text NOT NULL, source_system text NOT NULL, source_id text NOT NULL,
    entity_type text NOT NULL, name text NOT NULL, industry text, revenue numeric, employees bigint,
    attributes jsonb NOT NULL, attributes_hash bytea NOT NULL, data_quality real NOT NULL,
    parent_canonical_id text, changed_at timestamptz
) ON COMMIT DROP;
CREATE TEMP TABLE staging_metrics (
    ord integer NOT NULL, canonical_id text NOT NULL, metric_type text NOT NULL,
    observed_at timestamptz NOT NULL, value numeric NOT NULL
) ON COMMIT DROP;
CREATE TEMP TABLE staging_keep (canonical_id text NOT NULL) ON COMMIT DROP;
"""

# What a changed entity takes from the incoming row (EXCLUDED), shared by every upsert of entities.
ENTITY_UPDATE_SET = (
    "entity_type = EXCLUDED.entity_type, name = EXCLUDED.name, industry = EXCLUDED.industry, "
    "revenue = EXCLUDED.revenue, employees = EXCLUDED.employees, attributes = EXCLUDED.attributes, "
    "attributes_hash = EXCLUDED.attributes_hash, metadata = EXCLUDED.metadata, "
    "source_changed_at = EXCLUDED.source_changed_at, source_file_at = EXCLUDED.source_file_at, "
    "source_file_id = EXCLUDED.source_file_id"
)

# The staged rows whose content is new, upserted: everything up to the SET list's end (the version rule
# and RETURNING follow). Shared with the chunked prototype (bench/loader_proto.py).
ENTITY_UPSERT_HEAD = """
    INSERT INTO canonical.entities AS e
        (entity_type, source_system, canonical_id, name, industry, revenue, employees,
         attributes, attributes_hash, metadata, source_changed_at, source_file_at, source_file_id)
    SELECT s.entity_type, s.source_system, s.canonical_id, s.name, s.industry, s.revenue, s.employees,
           s.attributes, s.attributes_hash,
           jsonb_build_object('source_key', %(source_key)s::text, 'source_id', s.source_id,
                              'run_id', %(run_id)s::text, 'file_id', %(file_id)s::bigint,
                              'data_quality', s.data_quality,
                              'transformation_version', %(transformation_version)s::text),
           coalesce(s.changed_at, %(file_at)s::timestamptz), %(file_at)s::timestamptz, %(file_id)s::bigint
    FROM staging_entities s
    ON CONFLICT (canonical_id) DO UPDATE
        SET """ + ENTITY_UPDATE_SET

_MERGE_ENTITIES = """
WITH merged AS (""" + ENTITY_UPSERT_HEAD + """, version = e.version + 1, updated_at = now()
        WHERE e.attributes_hash IS DISTINCT FROM EXCLUDED.attributes_hash
    RETURNING old.entity_id AS old_entity_id, old.canonical_id AS old_canonical_id, old.version AS old_version,
              old.entity_type AS old_entity_type, old.attributes AS old_attributes,
              old.metadata AS old_metadata, old.updated_at AS old_updated_at,
              old.source_changed_at AS old_changed_at, old.source_file_at AS old_file_at,
              old.source_file_id AS old_file_id,
              -- measured by the database at write time, so the asset check can fail if the rule breaks
              (old.source_changed_at, old.source_file_at, old.source_file_id)
                  > (new.source_changed_at, new.source_file_at, new.source_file_id) AS moved_back
), history AS (
    INSERT INTO canonical.entity_history
        (entity_id, canonical_id, version, entity_type, attributes, metadata, valid_from,
         source_changed_at, source_file_at, source_file_id)
    SELECT old_entity_id, old_canonical_id, old_version, old_entity_type, old_attributes, old_metadata,
           old_updated_at, old_changed_at, old_file_at, old_file_id
    FROM merged WHERE old_entity_id IS NOT NULL
)
SELECT count(*) FILTER (WHERE old_entity_id IS NULL), count(*) FILTER (WHERE old_entity_id IS NOT NULL),
       count(*) FILTER (WHERE moved_back)
FROM merged
"""

# Each staged record claims its entity's source position, and with it the content hash it brings (so
# ingest.entity_order.attributes_hash is always the current version's). ORDER BY: every run takes these
# row locks in one global order (bytewise: cheap to sort, the same on every server), so two runs over
# the same ids cannot deadlock. `>=`: the same file again (a reprocess) is not older than itself. A run
# that meets another's uncommitted claim waits, then compares against the committed position (READ
# COMMITTED re-checks the WHERE on the latest row version): the result is the same in any interleaving.
# Then staging keeps only what the merge must write: the records that won their claim with new content.
# Those that lost (superseded: older than the position held) change no entity, parent link or metric
# point; those that won with the content the store already holds (unchanged) leave too, so the merge
# never probes the entities for them.
_CLAIM_SOURCE_ORDER = """
WITH incoming AS MATERIALIZED (
    -- one record per id: the newest by its own change time, the file's last among equals
    SELECT DISTINCT ON (canonical_id COLLATE "C") canonical_id,
           coalesce(changed_at, %(file_at)s::timestamptz) AS changed_at, attributes_hash
    FROM staging_entities
    ORDER BY canonical_id COLLATE "C", coalesce(changed_at, %(file_at)s::timestamptz) DESC, ord DESC
), claimed AS (
    INSERT INTO ingest.entity_order AS o (canonical_id, changed_at, file_at, file_id, attributes_hash)
    SELECT canonical_id, changed_at, %(file_at)s::timestamptz, %(file_id)s::bigint, attributes_hash FROM incoming
    ON CONFLICT (canonical_id) DO UPDATE
        SET changed_at = EXCLUDED.changed_at, file_at = EXCLUDED.file_at, file_id = EXCLUDED.file_id,
            attributes_hash = EXCLUDED.attributes_hash
        WHERE (EXCLUDED.changed_at, EXCLUDED.file_at, EXCLUDED.file_id) >= (o.changed_at, o.file_at, o.file_id)
    RETURNING new.canonical_id,
              old.canonical_id IS NULL OR old.attributes_hash IS DISTINCT FROM new.attributes_hash AS writes
), kept AS (
    INSERT INTO staging_keep SELECT canonical_id FROM claimed WHERE writes RETURNING 1
)
SELECT (SELECT count(*) FROM incoming), (SELECT count(*) FROM claimed), (SELECT count(*) FROM kept)
"""
_KEEP_ONLY_WRITES = """
DELETE FROM staging_entities s WHERE NOT EXISTS (SELECT 1 FROM staging_keep k WHERE k.canonical_id = s.canonical_id)
"""


# A child named in this file gets the parent the file names; a child the file names without a
# parent loses its current one. Closed links stay as history.
_CLOSE_CHANGED_PARENTS = """
UPDATE canonical.entity_relationships r SET effective_to = now()
FROM staging_entities s
WHERE r.child_canonical_id = s.canonical_id AND r.relationship_type = 'parent_of' AND r.effective_to IS NULL
  AND r.parent_canonical_id IS DISTINCT FROM s.parent_canonical_id
"""
_INSERT_PARENTS = """
INSERT INTO canonical.entity_relationships (parent_canonical_id, child_canonical_id, relationship_type, properties)
SELECT s.parent_canonical_id, s.canonical_id, 'parent_of', jsonb_build_object('source_key', %(source_key)s::text)
FROM staging_entities s
WHERE s.parent_canonical_id IS NOT NULL
ON CONFLICT (child_canonical_id, relationship_type) WHERE effective_to IS NULL DO NOTHING
"""
_MERGE_METRICS = """
INSERT INTO canonical.time_series_data AS t (entity_canonical_id, metric_type, observed_at, value, source_key)
SELECT DISTINCT ON (m.canonical_id, m.metric_type, m.observed_at)
       m.canonical_id, m.metric_type, m.observed_at, m.value, %(source_key)s::text
FROM staging_metrics m
JOIN staging_entities s ON s.canonical_id = m.canonical_id AND s.ord = m.ord
ORDER BY m.canonical_id, m.metric_type, m.observed_at, m.ord DESC
ON CONFLICT (entity_canonical_id, metric_type, observed_at) DO UPDATE
    SET value = EXCLUDED.value, source_key = EXCLUDED.source_key, loaded_at = now()
    WHERE t.value IS DISTINCT FROM EXCLUDED.value
"""


def _refusal_row(file_id: int, attempt: int, index: int, source_id: str | None,
                 problems: Iterable[Problem], record_json: str) -> str:
    reasons = json.dumps([p.as_dict() for p in problems], ensure_ascii=True)
    return (f"{file_id}\t{attempt}\t{index}\t{_text(source_id)}\t{_text(reasons)}\t"
            f"{_text(record_json)}\n")


def load_records(
    conn: psycopg.Connection,
    results: Iterable[CanonicalRecord | Refusal | MalformedLine],
    *,
    file_id: int,
    attempt: int,
    source_key: str,
    run_id: str,
    file_at: Callable[[], datetime],
) -> FileLoadResult:
    """Stage and merge one file. Call inside a transaction: the caller commits or rolls back whole.

    `file_at` gives the file's place in its source's history (export date, else LastModified); it is
    called once every record has been read, because an export may state its date after its records.
    """
    started = time.perf_counter()
    out = FileLoadResult()
    refusals, metrics = _Spool(), _Spool()
    try:
        with conn.cursor() as cur:
            cur.execute(STAGING_DDL)
            with cur.copy("COPY staging_entities FROM STDIN") as copy:
                buf: list[str] = []
                size = 0
                for index, res in enumerate(results):
                    out.received += 1
                    if isinstance(res, CanonicalRecord):
                        line = (
                            f"{index}\t{_text(res.canonical_id)}\t{res.source_system}\t{_text(res.source_id)}\t"
                            f"{res.entity_type}\t{_text(res.name)}\t{_text(res.industry)}\t{_num(res.revenue)}\t"
                            f"{_num(res.employees)}\t{res.attributes_json.replace(_BACKSLASH, _BACKSLASH * 2)}\t"
                            f"\\\\x{res.attributes_hash.hex()}\t{res.data_quality}\t"
                            f"{_text(res.parent_canonical_id)}\t"
                            f"{_NULL if res.changed_at is None else res.changed_at.isoformat()}\n"
                        )
                        for m in res.metrics:
                            metrics.write(f"{index}\t{_text(res.canonical_id)}\t{_text(m.metric_type)}\t"
                                          f"{m.observed_at.isoformat()}\t{m.value}\n")
                        buf.append(line)
                        size += len(line)
                        if size >= _COPY_FLUSH_BYTES:
                            copy.write("".join(buf))
                            buf.clear()
                            size = 0
                    elif isinstance(res, Refusal):
                        refusals.write(_refusal_row(file_id, attempt, index, res.source_id, res.problems,
                                                    res.record_json))
                    else:  # MalformedLine
                        problem = Problem("malformed_json", res.error)
                        refusals.write(_refusal_row(file_id, attempt, index, None, [problem],
                                                    json.dumps(res.text, ensure_ascii=True)))
                if buf:
                    copy.write("".join(buf))
            out.rejected = refusals.rows
            # Temporary tables are never auto-analyzed; without statistics the merge may pick a nested loop.
            cur.execute("ANALYZE staging_entities")

            params = {"source_key": source_key, "run_id": run_id, "file_id": file_id, "file_at": file_at(),
                      "transformation_version": TRANSFORMATION_VERSION}
            distinct, claimed, kept = cur.execute(_CLAIM_SOURCE_ORDER, params).fetchone()  # type: ignore[misc]
            staged = out.received - out.rejected
            if distinct < staged:  # the same id more than once in the file (rare): keep the one claimed
                out.duplicates = _drop_superseded_duplicates(cur, params)
            out.superseded = distinct - claimed
            if kept < distinct:
                cur.execute("ANALYZE staging_keep")
                cur.execute(_KEEP_ONLY_WRITES)
            row = cur.execute(_MERGE_ENTITIES, params).fetchone()
            assert row is not None
            out.inserted, out.updated, out.moved_back = row
            # By subtraction, so the counts add up even for an entity the claim did not know (written
            # around ingest): its merge found the same content and wrote nothing.
            out.unchanged = staged - out.duplicates - out.superseded - out.inserted - out.updated

            cur.execute(_CLOSE_CHANGED_PARENTS)
            cur.execute(_INSERT_PARENTS, params)
            out.relationships = cur.rowcount

            if metrics.rows:
                metrics.copy_into(cur, "COPY staging_metrics FROM STDIN")
                cur.execute(
                    "SELECT canonical.ensure_time_series_partitions(array_agg(DISTINCT date_trunc('month', "
                    "observed_at AT TIME ZONE 'UTC')::date)) FROM staging_metrics "
                    "WHERE observed_at >= '1900-01-01' AND observed_at < '2200-01-01'"
                )
                cur.execute(_MERGE_METRICS, params)
                out.time_series = cur.rowcount

            refusals.copy_into(
                cur,
                "COPY ingest.rejected_records (file_id, attempt, record_index, source_id, reasons, record) "
                "FROM STDIN",
            )
            if out.changed_rows:
                cur.execute("UPDATE ingest.data_version SET version = version + 1, updated_at = now()")
    finally:
        refusals.close()
        metrics.close()
    out.seconds = time.perf_counter() - started
    return out


def _drop_superseded_duplicates(cur: psycopg.Cursor, params: dict[str, Any]) -> int:
    """Keep one occurrence of each canonical id in the file: the newest by its own change time, the last
    one among equals (the file's own order); return how many were dropped."""
    cur.execute(
        """DELETE FROM staging_entities s
           USING (SELECT DISTINCT ON (canonical_id) canonical_id, ord AS keep_ord
                  FROM staging_entities
                  WHERE canonical_id IN (SELECT canonical_id FROM staging_entities
                                         GROUP BY canonical_id HAVING count(*) > 1)
                  ORDER BY canonical_id, coalesce(changed_at, %(file_at)s::timestamptz) DESC, ord DESC) d
           WHERE s.canonical_id = d.canonical_id AND s.ord <> d.keep_ord""",
        params,
    )
    return cur.rowcount
