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

Chunked and overlapped (issue 14): the calling thread parses, maps and formats COPY rows into chunks of
`CHUNK_ROWS`; a worker thread owns the connection while the records are read, and COPYs each chunk into
staging. psycopg releases the GIL while it waits for the server, so Python keeps one core busy while
the backend works on the other. When the file's place in its source's history is known before its last
record (`early_file_at`), the worker also merges each chunk as it arrives (staging is emptied after
each); otherwise the whole file is staged and merged once at the end, as before. Still one transaction:
the file lands whole or not at all. A chunked merge gives the same result as one merge of the whole
file, because it refuses (`ChunkedMergeRefused`, the caller reloads the file whole) the cases where the
two could differ: a canonical id that an earlier chunk already merged (the later occurrence must win,
as within one chunk, and the earlier one must leave no trace: version, history, parent link, metric
point), and a file time that turned out different from the one announced early. Chunked loads take a
transaction-level advisory lock exclusively, whole-file loads share it: per-chunk claims do not take
their row locks in one global order, so a chunked load must not run beside another load of entities.
A file with metric points also takes the summary's lock (`SUMMARY_LOCK`) before merging them and holds
it to the commit: the triggers that keep analytics.time_series_cells read after it (migration 0005).
Dagster-free: the benchmark and tests drive it directly.
"""

from __future__ import annotations

import json
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import IO, Any

import psycopg

from resources.canonical.model import TRANSFORMATION_VERSION, CanonicalRecord, Problem, Refusal
from resources.ingest.parsing import MalformedLine

_COPY_FLUSH_BYTES = 1 << 20
_SPOOL_MEMORY_BYTES = 8 << 20
# Records per chunk: large enough that per-statement overheads vanish, small enough that two chunks in
# flight stay a few MB of client memory (a chunk spills to disk beyond _SPOOL_MEMORY_BYTES).
CHUNK_ROWS = 50_000
# The worker sends a chunk in pieces below glibc's initial mmap threshold (128 KiB): with 1 MiB pieces
# the threshold adapts upwards and the worker thread's malloc arena fragments (the prototype's RSS
# crept from 75 to 140 MB over a 1M-record file; with 64 KiB it stays flat).
_WORKER_READ_CHARS = 64 << 10
# Chunked loads hold it exclusively, whole-file loads shared (see the module docstring).
_LOAD_LOCK = "SELECT pg_advisory_xact_lock{}(hashtext('ingest.entity_order chunked loads'))"
# The summary of the metric points (analytics.time_series_cells, migration 0005) is kept by triggers that
# take this lock before they read, so that concurrent writers count an entity once; held to the commit.
# Taken here before the partitions' lock (canonical.ensure_time_series_partitions) so that every load
# takes its locks in one order: this load lock, entity_order rows, entity rows (whose industry change
# takes this lock in its trigger), this one, the partitions', then rows no other load holds.
SUMMARY_LOCK = "SELECT pg_advisory_xact_lock(hashtext('analytics.time_series_cells'))"
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
    if value is None:
        return _NULL
    # Four substring scans are ~4x cheaper than translate's per-character table lookups, and most
    # values need no escape.
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_TEXT_ESCAPES)
    return value


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

    def copy_into(self, cur: psycopg.Cursor, statement: str, piece: int = _COPY_FLUSH_BYTES) -> None:
        if not self.rows:
            return
        self.file.seek(0)
        with cur.copy(statement) as copy:
            while chunk := self.file.read(piece):
                copy.write(chunk)

    def close(self) -> None:
        self.file.close()


# attributes are staged as text: most records of a reload leave staging at the claim (unchanged), and
# only those the merge writes pay for the jsonb parse.
STAGING_DDL = """
CREATE TEMP TABLE staging_entities (
    ord integer NOT NULL, canonical_id text NOT NULL, source_system text NOT NULL, source_id text NOT NULL,
    entity_type text NOT NULL, name text NOT NULL, industry text, revenue numeric, employees bigint,
    attributes text NOT NULL, attributes_hash bytea NOT NULL, data_quality real NOT NULL,
    parent_canonical_id text, changed_at timestamptz
) ON COMMIT DROP;
CREATE TEMP TABLE staging_metrics (
    ord integer NOT NULL, canonical_id text NOT NULL, metric_type text NOT NULL,
    observed_at timestamptz NOT NULL, value numeric NOT NULL
) ON COMMIT DROP;
CREATE TEMP TABLE staging_keep (canonical_id text NOT NULL, fresh boolean NOT NULL) ON COMMIT DROP;
CREATE TEMP TABLE file_lost (canonical_id text NOT NULL) ON COMMIT DROP;
"""

# What a changed entity takes from the incoming row (EXCLUDED), shared by every upsert of entities.
ENTITY_UPDATE_SET = (
    "entity_type = EXCLUDED.entity_type, name = EXCLUDED.name, industry = EXCLUDED.industry, "
    "revenue = EXCLUDED.revenue, employees = EXCLUDED.employees, attributes = EXCLUDED.attributes, "
    "attributes_hash = EXCLUDED.attributes_hash, metadata = EXCLUDED.metadata, "
    "source_changed_at = EXCLUDED.source_changed_at, source_file_at = EXCLUDED.source_file_at, "
    "source_file_id = EXCLUDED.source_file_id"
)

# The staged rows whose content is new, as canonical.entities rows (the statements add the filter).
_ENTITY_COLUMNS = """(entity_type, source_system, canonical_id, name, industry, revenue, employees,
         attributes, attributes_hash, metadata, source_changed_at, source_file_at, source_file_id)"""
_ENTITY_ROWS = """
    SELECT s.entity_type, s.source_system, s.canonical_id, s.name, s.industry, s.revenue, s.employees,
           s.attributes::jsonb, s.attributes_hash,
           jsonb_build_object('source_key', %(source_key)s::text, 'source_id', s.source_id,
                              'run_id', %(run_id)s::text, 'file_id', %(file_id)s::bigint,
                              'data_quality', s.data_quality,
                              'transformation_version', %(transformation_version)s::text),
           coalesce(s.changed_at, %(file_at)s::timestamptz), %(file_at)s::timestamptz, %(file_id)s::bigint
    FROM staging_entities s"""
# Upserted: everything up to the SET list's end (the version rule and RETURNING follow).
ENTITY_UPSERT_HEAD = """
    INSERT INTO canonical.entities AS e
        """ + _ENTITY_COLUMNS + _ENTITY_ROWS + """
    /*filter*/
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
# A fresh record (its id never claimed before, so never merged: only the loader writes entities, after
# claiming) is a plain INSERT: no speculative insertion and no RETURNING old.* (measured at 200k new
# rows: 3.5-3.6 s backend CPU instead of 4.0-4.3). Not guarded by a NOT EXISTS on canonical.entities:
# that anti-join's plan depends on the table's statistics, and planned as a nested loop over a table
# vacuumed while empty it re-reads the rows this very statement inserts (a 200k first load took 56 s
# instead of 7). An entity written around ingest instead trips the unique canonical_id: the loader
# raises FreshInsertRefused and the caller loads the file again with fresh_inserts=False.
_INSERT_FRESH = "INSERT INTO canonical.entities " + _ENTITY_COLUMNS + _ENTITY_ROWS + " /*filter*/"
_FRESH = "SELECT 1 FROM staging_keep k WHERE k.canonical_id = s.canonical_id AND k.fresh"
# (insert the fresh, upsert the rest) by how many of the staged rows are fresh: none, all, some
_MERGE_PLANS: dict[str, tuple[str | None, str | None]] = {
    "none": (None, _MERGE_ENTITIES),
    "all": (_INSERT_FRESH, None),
    "some": (_INSERT_FRESH.replace("/*filter*/", f"WHERE EXISTS ({_FRESH})"),
             _MERGE_ENTITIES.replace("/*filter*/", f"WHERE NOT EXISTS ({_FRESH})")),
}
ENTITIES_CANONICAL_ID_KEY = "entities_canonical_id_key"

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
              old.canonical_id IS NULL OR old.attributes_hash IS DISTINCT FROM new.attributes_hash AS writes,
              -- claimed before by this very transaction: an earlier chunk of the file (xid 0 when whole)
              old.xmin = %(xid)s::xid AS repeat,
              old.canonical_id IS NULL AS fresh
), kept AS (
    INSERT INTO staging_keep SELECT canonical_id, fresh FROM claimed WHERE writes RETURNING fresh
)
SELECT (SELECT count(*) FROM incoming), (SELECT count(*) FROM claimed), (SELECT count(*) FROM kept),
       (SELECT count(*) FROM claimed WHERE repeat), (SELECT count(*) FROM kept WHERE fresh)
"""
# A chunk's records that lost their claim: remembered (a later chunk naming one of them must not be
# merged apart from it), and counted where the position that beat them is this transaction's own, i.e.
# an earlier chunk's occurrence of the same id. A winner's row holds exactly the position it brought; a
# loser's holds a newer one.
_CHUNK_LOSERS = """
WITH incoming AS (
    SELECT DISTINCT ON (canonical_id COLLATE "C") canonical_id,
           coalesce(changed_at, %(file_at)s::timestamptz) AS changed_at
    FROM staging_entities
    ORDER BY canonical_id COLLATE "C", coalesce(changed_at, %(file_at)s::timestamptz) DESC, ord DESC
), lost AS (
    SELECT i.canonical_id, o.xmin = %(xid)s::xid AS ours
    FROM incoming i JOIN ingest.entity_order o ON o.canonical_id = i.canonical_id COLLATE "C"
    WHERE (o.changed_at, o.file_at, o.file_id)
          IS DISTINCT FROM (i.changed_at, %(file_at)s::timestamptz, %(file_id)s::bigint)
), saved AS (
    INSERT INTO file_lost SELECT canonical_id FROM lost
)
SELECT count(*) FILTER (WHERE ours) FROM lost
"""
_NAMES_AN_EARLIER_LOSER = """
SELECT EXISTS (SELECT 1 FROM staging_entities s JOIN file_lost l ON l.canonical_id = s.canonical_id)
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


class ChunkedMergeRefused(Exception):
    """Merging this file chunk by chunk could differ from merging it whole: roll the transaction back and
    load the file again with `early_file_at=None`."""


class FreshInsertRefused(Exception):
    """An entity this file's claim found never claimed is already in canonical.entities (written around
    ingest): roll the transaction back and load the file again with `fresh_inserts=False`."""


@dataclass(slots=True)
class _Chunk:
    entities: _Spool
    metrics: _Spool
    merge: bool  # merge after the COPY (chunked mode), else only stage


def _new_chunk(merge: bool) -> _Chunk:
    return _Chunk(_Spool(), _Spool(), merge)


class _Merger:
    """Runs what the database does for one load: the staging COPY of each chunk and, per chunk (chunked
    mode) or once at the end (whole mode), the merge. Its thread owns the connection until `finish`."""

    def __init__(self, conn: psycopg.Connection, params: dict[str, Any], out: FileLoadResult, *,
                 fresh_inserts: bool) -> None:
        self.conn, self.params, self.out = conn, params, out
        self.fresh_inserts = fresh_inserts
        self.staged = 0  # rows of the file COPYed into staging (valid records)
        self.metric_rows = 0  # metric rows staged and not merged yet (whole mode)
        self.lost = 0  # records that lost their claim so far (file_lost rows)
        self.analyzed = False
        self.locked: str | None = None
        self.error: BaseException | None = None
        self._chunks: queue.Queue[_Chunk | None] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name="load-merge", daemon=True)
        self._thread.start()

    def hand_over(self, chunk: _Chunk) -> None:
        """Blocks while the previous chunk is still being worked on: at most two chunks exist. Once the
        worker failed, the chunk is not taken (the caller closes it) and the producer stops here."""
        if self.error is not None:
            raise self.error
        chunk.entities.file.flush()
        self._chunks.put(chunk)

    def finish(self) -> None:
        """Wait until every handed chunk is done; the calling thread owns the connection again."""
        self._chunks.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            try:
                if self.error is None:  # after a failure, only drain: the producer stops at its next hand-over
                    self._stage(chunk)
            except BaseException as exc:  # noqa: BLE001 - raised again in the producer thread
                self.error = exc
            finally:
                chunk.entities.close()
                chunk.metrics.close()

    def _stage(self, chunk: _Chunk) -> None:
        with self.conn.cursor() as cur:
            chunk.entities.copy_into(cur, "COPY staging_entities FROM STDIN", _WORKER_READ_CHARS)
            if chunk.merge:
                self.merge(cur, chunk.entities.rows, chunk.metrics, chunked=True)
                cur.execute("TRUNCATE staging_entities, staging_metrics, staging_keep")
            else:
                chunk.metrics.copy_into(cur, "COPY staging_metrics FROM STDIN", _WORKER_READ_CHARS)
                self.metric_rows += chunk.metrics.rows
        self.staged += chunk.entities.rows

    def merge(self, cur: psycopg.Cursor, staged: int, metrics: _Spool | None, *, chunked: bool) -> None:
        """Claim, then merge what staging holds (`staged` rows). `metrics`: the rows to COPY into
        staging_metrics first (None: already there)."""
        out, params = self.out, self.params
        mode = "" if chunked else "_shared"
        if self.locked != mode:
            cur.execute(_LOAD_LOCK.format(mode))
            self.locked = mode
        if chunked and params["xid"] == "0":
            # The xid this (sub)transaction writes with, as tuples carry it: a row with it was written
            # by an earlier chunk of this file.
            row = cur.execute("SELECT xmin::text FROM staging_entities LIMIT 1").fetchone()
            params["xid"] = row[0] if row else "0"
        if not self.analyzed:
            # Temporary tables are never auto-analyzed; without statistics the merge may pick a nested
            # loop. Once: later chunks look alike.
            cur.execute("ANALYZE staging_entities")
            self.analyzed = True
        if chunked and self.lost and cur.execute(_NAMES_AN_EARLIER_LOSER).fetchone()[0]:  # type: ignore[index]
            raise ChunkedMergeRefused("a record repeats one that lost its claim in an earlier chunk")
        distinct, claimed, kept, repeats, fresh = cur.execute(_CLAIM_SOURCE_ORDER, params).fetchone()  # type: ignore[misc]
        if repeats:
            raise ChunkedMergeRefused(f"{repeats} canonical ids repeat ones merged from an earlier chunk")
        if distinct < staged:  # the same id more than once in the chunk (rare): keep the one claimed
            out.duplicates += _drop_superseded_duplicates(cur, params)
        if claimed < distinct:
            if chunked:
                if cur.execute(_CHUNK_LOSERS, params).fetchone()[0]:  # type: ignore[index]
                    raise ChunkedMergeRefused("a record lost its claim to an earlier chunk of the file")
                self.lost += distinct - claimed
            out.superseded += distinct - claimed
        if kept < distinct:
            cur.execute("ANALYZE staging_keep")
            cur.execute(_KEEP_ONLY_WRITES)
        if not self.fresh_inserts:
            fresh = 0
        insert_fresh, upsert = _MERGE_PLANS["none" if not fresh else "all" if fresh == kept else "some"]
        if insert_fresh is not None:
            try:
                out.inserted += cur.execute(insert_fresh, params).rowcount
            except psycopg.errors.UniqueViolation as exc:
                if exc.diag.constraint_name != ENTITIES_CANONICAL_ID_KEY:
                    raise
                raise FreshInsertRefused(str(exc).splitlines()[0]) from exc
        if upsert is not None:
            row = cur.execute(upsert, params).fetchone()
            assert row is not None
            out.inserted += row[0]
            out.updated += row[1]
            out.moved_back += row[2]

        cur.execute(_CLOSE_CHANGED_PARENTS)
        cur.execute(_INSERT_PARENTS, params)
        out.relationships += cur.rowcount

        if metrics is not None:
            metrics.copy_into(cur, "COPY staging_metrics FROM STDIN", _WORKER_READ_CHARS)
        if (metrics.rows if metrics is not None else self.metric_rows):
            cur.execute(SUMMARY_LOCK)
            cur.execute(
                "SELECT canonical.ensure_time_series_partitions(array_agg(DISTINCT date_trunc('month', "
                "observed_at AT TIME ZONE 'UTC')::date)) FROM staging_metrics "
                "WHERE observed_at >= '1900-01-01' AND observed_at < '2200-01-01'"
            )
            cur.execute(_MERGE_METRICS, params)
            out.time_series += cur.rowcount


def load_records(
    conn: psycopg.Connection,
    results: Iterable[CanonicalRecord | Refusal | MalformedLine],
    *,
    file_id: int,
    attempt: int,
    source_key: str,
    run_id: str,
    file_at: Callable[[], datetime],
    early_file_at: Callable[[], datetime | None] | None = None,
    chunk_rows: int | None = None,
    fresh_inserts: bool = True,
) -> FileLoadResult:
    """Stage and merge one file. Call inside a transaction: the caller commits or rolls back whole.

    `file_at` gives the file's place in its source's history (export date, else LastModified); it is
    called once every record has been read, because an export may state its date after its records.
    `early_file_at`, called when the first full chunk is ready, gives that place if it is already known
    (else None): then chunks are merged while the next ones are read. Raises ChunkedMergeRefused when
    that must not be (see the module docstring): the caller rolls back and loads the file again without
    `early_file_at`. `fresh_inserts`: records whose id was never claimed are plain-INSERTed; raises
    FreshInsertRefused when such an entity exists after all (then load again with False: all upserted).
    """
    started = time.perf_counter()
    rows_per_chunk = chunk_rows or CHUNK_ROWS
    out = FileLoadResult()
    params: dict[str, Any] = {"source_key": source_key, "run_id": run_id, "file_id": file_id, "xid": "0",
                              "transformation_version": TRANSFORMATION_VERSION}
    refusals = _Spool()
    try:
        with conn.cursor() as cur:
            cur.execute(STAGING_DDL)
        merger = _Merger(conn, params, out, fresh_inserts=fresh_inserts)
        try:
            early = _produce(merger, results, out, refusals, file_id=file_id, attempt=attempt,
                             rows_per_chunk=rows_per_chunk, early_file_at=early_file_at)
        finally:
            merger.finish()  # re-raises the worker's failure, if any
        with conn.cursor() as cur:
            final = file_at()
            if early is not None:
                if final != early:
                    raise ChunkedMergeRefused(f"the file's time is {final.isoformat()}, not "
                                              f"{early.isoformat()} as known before its records were read")
            else:  # whole mode: everything is staged, merge it once
                params["file_at"] = final
                merger.merge(cur, merger.staged, None, chunked=False)
            out.rejected = refusals.rows
            # By subtraction, so the counts add up even for an entity the claim did not know (written
            # around ingest): its merge found the same content and wrote nothing.
            out.unchanged = merger.staged - out.duplicates - out.superseded - out.inserted - out.updated
            refusals.copy_into(
                cur,
                "COPY ingest.rejected_records (file_id, attempt, record_index, source_id, reasons, record) "
                "FROM STDIN",
            )
            if out.changed_rows:
                cur.execute("UPDATE ingest.data_version SET version = version + 1, updated_at = now()")
    finally:
        refusals.close()
    out.seconds = time.perf_counter() - started
    return out


def _produce(merger: _Merger, results: Iterable[CanonicalRecord | Refusal | MalformedLine],
             out: FileLoadResult, refusals: _Spool, *, file_id: int, attempt: int, rows_per_chunk: int,
             early_file_at: Callable[[], datetime | None] | None) -> datetime | None:
    """Read every record into COPY rows, handing chunks to the merger; return the file time the chunks
    were merged with (None: only staged, the caller merges)."""
    early: datetime | None = None
    decided = early_file_at is None
    chunk: _Chunk | None = _new_chunk(False)
    try:
        buf: list[str] = []
        size = 0
        entities, metrics = chunk.entities, chunk.metrics
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
                entities.rows += 1
                if size >= _COPY_FLUSH_BYTES or entities.rows >= rows_per_chunk:
                    entities.file.write("".join(buf))
                    buf.clear()
                    size = 0
                    if entities.rows >= rows_per_chunk:
                        if not decided:
                            # The first full chunk decides: merge as we go if the file's time is known.
                            decided = True
                            early = early_file_at()  # type: ignore[misc]
                            if early is not None:
                                merger.params["file_at"] = early
                                chunk.merge = True
                        merge = chunk.merge
                        merger.hand_over(chunk)
                        chunk = _new_chunk(merge)
                        entities, metrics = chunk.entities, chunk.metrics
            elif isinstance(res, Refusal):
                refusals.write(_refusal_row(file_id, attempt, index, res.source_id, res.problems,
                                            res.record_json))
            else:  # MalformedLine
                problem = Problem("malformed_json", res.error)
                refusals.write(_refusal_row(file_id, attempt, index, None, [problem],
                                            json.dumps(res.text, ensure_ascii=True)))
        if buf:
            entities.file.write("".join(buf))
        last, chunk = chunk, None
        if last.entities.rows:
            merger.hand_over(last)
        else:
            last.entities.close()
            last.metrics.close()
    finally:
        if chunk is not None:  # failed before the last hand-over
            chunk.entities.close()
            chunk.metrics.close()
    return early


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
