"""PROTOTYPE, for measurement only (the platform uses resources/loader.py): the same load_records
contract, with the file's merge split into chunks that run while Python parses the next chunk.

Why: resources/loader.py stages the whole file (Python parse/map/format overlaps with the backend's
COPY), then runs one merge while Python sits idle. On 2 cores the merge — index maintenance — and the
Python work are each about one core's worth, so doing them one after the other wastes a core.

How (still one transaction, the caller's; memory still flat):
- the calling thread parses, maps and formats COPY rows into a chunk file (a SpooledTemporaryFile:
  the chunk lives on disk beyond 8 MB), and hands each full chunk (CHUNK_ROWS rows) to a worker thread
  through a queue of one: at most two chunks exist at any time;
- the worker thread owns the connection while the load runs: COPY the chunk into staging, drop the
  chunk's superseded duplicates, merge, TRUNCATE staging, next chunk. psycopg releases the GIL while it
  waits for the server, so the parse thread keeps a core busy while the backend merges on the other.

In-file duplicates across chunks (last one wins, as in resources/loader.py):
- a temp table `file_ids` (canonical_id primary key) holds the ids already seen in this file: a chunk
  whose ids are all new to it (the common case) costs one INSERT … ON CONFLICT DO NOTHING; otherwise the
  difference is the duplicates count and the chunk's own superseded rows are dropped;
- a row the file already wrote (its xmin is this transaction's, read from the staging rows) is
  overwritten without a version bump or a history row (`again`);
- an entity whose later occurrence restores the content it had before the file (A → B → A inside one
  file) is put back to its previous version at the end, its history row removed: the version rises
  only on a real change.
Known differences kept for the prototype: a child whose parent changes twice inside one file keeps a
closed link for the intermediate parent; metric points of a superseded occurrence in an earlier chunk
stay loaded. Neither occurs in the benchmark data.
"""

from __future__ import annotations

import json
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import IO

import psycopg

from resources.canonical.model import TRANSFORMATION_VERSION, CanonicalRecord, Problem, Refusal
from resources.loader import (
    _BACKSLASH,
    _CLOSE_CHANGED_PARENTS,
    _COPY_FLUSH_BYTES,
    _INSERT_PARENTS,
    _MERGE_METRICS,
    ENTITY_UPSERT_HEAD,
    STAGING_DDL,
    FileLoadResult,
    _drop_superseded_duplicates,
    _num,
    _refusal_row,
    _Spool,
    _text,
)
from resources.parsing import MalformedLine

CHUNK_ROWS = 50_000
# Filled by the last load_records call (the benchmark reads it): producer/worker seconds.
LAST_STATS: dict[str, float] = {}
_CHUNK_MEMORY_BYTES = 8 << 20
# The worker copies a chunk in pieces below glibc's initial mmap threshold (128 KiB): with 1 MiB pieces
# the threshold adapts upwards and the worker thread's malloc arena fragments, so RSS crept from 75 to
# 140 MB over a 1M-record file; with 64 KiB it stays flat.
_WORKER_READ_CHARS = 64 << 10
# Session settings for the load (SET LOCAL: they end with the transaction).
SESSION_SETTINGS = {"work_mem": "64MB"}

SUMMARY = (f"chunked merge ({CHUNK_ROWS:,} rows) overlapped with parsing; SET LOCAL "
           + ", ".join(f"{k}={v}" for k, v in SESSION_SETTINGS.items()))
def gin_storage(setting: str) -> str:
    """Set a storage parameter on every GIN index of canonical.entities."""
    return f"""
DO $$
DECLARE i regclass;
BEGIN
    FOR i IN SELECT x.indexrelid::regclass FROM pg_index x
             JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_am a ON a.oid = c.relam
             WHERE x.indrelid = 'canonical.entities'::regclass AND a.amname = 'gin' LOOP
        EXECUTE format('ALTER INDEX %s SET ({setting})', i);
    END LOOP;
END
$$"""


_GIN_PENDING_32MB = gin_storage("gin_pending_list_limit = 32768")
# Index sets measured with the prototype, applied to the migrated schema: (tag, label, DDL).
PROPOSALS: list[tuple[str, str, list[str]]] = [
    ("proposal-migrated", "proposal A: chunked loader, indexes as migrated, GIN pending list 32MB",
     [_GIN_PENDING_32MB]),
    ("proposal-lean", "proposal B: A without the source_system / entity_type btrees",
     ["DROP INDEX IF EXISTS canonical.entities_source_system_idx",
      "DROP INDEX IF EXISTS canonical.entities_entity_type_idx", _GIN_PENDING_32MB]),
    ("proposal-attr-gin", "proposal C: A plus the attributes GIN (jsonb_path_ops) back",
     [("CREATE INDEX IF NOT EXISTS entities_attributes_gin ON canonical.entities "
       "USING gin (attributes jsonb_path_ops)"), _GIN_PENDING_32MB]),
]


_STAGING_DDL = STAGING_DDL + """
CREATE TEMP TABLE file_ids (canonical_id text PRIMARY KEY) ON COMMIT DROP;
CREATE TEMP TABLE again_ids (canonical_id text NOT NULL) ON COMMIT DROP;
"""

# The shipped loader drops unchanged records at its source-order claim; the prototype has no claim, so it
# filters them here (the merge's own hash check would otherwise lock every unchanged row).
_FROM_STAGING = "    FROM staging_entities s\n"
assert _FROM_STAGING in ENTITY_UPSERT_HEAD
_UPSERT_CHANGED_HEAD = ENTITY_UPSERT_HEAD.replace(_FROM_STAGING, _FROM_STAGING + """\
    WHERE NOT EXISTS (SELECT 1 FROM canonical.entities x
                      WHERE x.canonical_id = s.canonical_id AND x.attributes_hash = s.attributes_hash)
""")

_MERGE_ENTITIES = """
WITH merged AS (""" + _UPSERT_CHANGED_HEAD + """,
            -- a row this file already wrote: last one wins, still one version
            version = CASE WHEN e.xmin = %(xid)s::xid THEN e.version ELSE e.version + 1 END,
            updated_at = now()
        WHERE e.attributes_hash IS DISTINCT FROM EXCLUDED.attributes_hash
    RETURNING old.entity_id AS old_entity_id, old.canonical_id AS old_canonical_id, old.version AS old_version,
              old.entity_type AS old_entity_type, old.attributes AS old_attributes,
              old.metadata AS old_metadata, old.updated_at AS old_updated_at,
              old.version IS NOT NULL AND new.version = old.version AS again
), history AS (
    INSERT INTO canonical.entity_history
        (entity_id, canonical_id, version, entity_type, attributes, metadata, valid_from)
    SELECT old_entity_id, old_canonical_id, old_version, old_entity_type, old_attributes, old_metadata,
           old_updated_at
    FROM merged WHERE old_entity_id IS NOT NULL AND NOT again
), again AS (
    INSERT INTO again_ids SELECT old_canonical_id FROM merged WHERE again
)
SELECT count(*) FILTER (WHERE old_entity_id IS NULL),
       count(*) FILTER (WHERE old_entity_id IS NOT NULL AND NOT again),
       count(*) FILTER (WHERE again)
FROM merged
"""

# A -> B -> A inside one file: back to the version it had before the file, history row removed.
_REVERT_RESTORED = """
WITH restored AS (
    DELETE FROM canonical.entity_history h
    USING canonical.entities e
    WHERE e.canonical_id IN (SELECT canonical_id FROM again_ids)
      AND h.entity_id = e.entity_id AND h.version = e.version - 1
      AND h.xmin = %(xid)s::xid AND h.attributes = e.attributes
    RETURNING h.entity_id, h.version, h.entity_type, h.metadata, h.valid_from
)
UPDATE canonical.entities e
SET version = r.version, entity_type = r.entity_type, metadata = r.metadata, updated_at = r.valid_from
FROM restored r WHERE e.entity_id = r.entity_id
"""

class _Chunk:
    def __init__(self) -> None:
        self.entities: IO[str] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by close()
            _CHUNK_MEMORY_BYTES, mode="w+", encoding="utf-8")
        self.metrics = _Spool()
        self.rows = 0

    def close(self) -> None:
        self.entities.close()
        self.metrics.close()


class _Worker(threading.Thread):
    """Owns the connection while the load runs: COPY + merge of each chunk handed over."""

    def __init__(self, conn: psycopg.Connection, params: dict, out: FileLoadResult) -> None:
        super().__init__(name="load-merge", daemon=True)
        self.conn, self.params, self.out = conn, params, out
        self.chunks: queue.Queue[_Chunk | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.analyzed = False
        self.timings: dict[str, float] = {}

    def _timed(self, label: str, t0: float) -> None:
        self.timings[label] = self.timings.get(label, 0.0) + time.perf_counter() - t0

    def run(self) -> None:
        try:
            while (chunk := self.chunks.get()) is not None:
                try:
                    self._load(chunk)
                finally:
                    chunk.close()
        except BaseException as exc:  # noqa: BLE001 - handed to the producer thread
            self.error = exc
            while self.chunks.get() is not None:  # drain so the producer never blocks
                pass

    def _load(self, chunk: _Chunk) -> None:
        out, params = self.out, self.params
        with self.conn.cursor() as cur:
            t0 = time.perf_counter()
            chunk.entities.seek(0)
            with cur.copy("COPY staging_entities FROM STDIN") as copy:
                while data := chunk.entities.read(_WORKER_READ_CHARS):
                    copy.write(data)
            self._timed("copy", t0)
            if "xid" not in params:
                params["xid"] = cur.execute("SELECT xmin::text FROM staging_entities LIMIT 1").fetchone()[0]
            if not self.analyzed:  # statistics once: later chunks look alike
                cur.execute("ANALYZE staging_entities")
                self.analyzed = True
            t0 = time.perf_counter()
            # Ids new to this file; every other row supersedes (or is superseded by) another occurrence:
            # an earlier one in a previous chunk, or one in this chunk (dropped here, last one wins).
            new_ids = cur.execute(
                "INSERT INTO file_ids SELECT canonical_id FROM staging_entities ON CONFLICT DO NOTHING").rowcount
            if new_ids < chunk.rows:
                out.duplicates += chunk.rows - new_ids
                _drop_superseded_duplicates(cur, params)
            self._timed("dedup", t0)
            t0 = time.perf_counter()
            inserted, updated, _again = cur.execute(_MERGE_ENTITIES, params).fetchone()
            out.inserted += inserted
            out.updated += updated
            self._timed("merge", t0)
            t0 = time.perf_counter()
            cur.execute(_CLOSE_CHANGED_PARENTS)
            cur.execute(_INSERT_PARENTS, params)
            out.relationships += cur.rowcount
            if chunk.metrics.rows:
                chunk.metrics.copy_into(cur, "COPY staging_metrics FROM STDIN")
                cur.execute(
                    "SELECT canonical.ensure_time_series_partitions(array_agg(DISTINCT date_trunc('month', "
                    "observed_at AT TIME ZONE 'UTC')::date)) FROM staging_metrics "
                    "WHERE observed_at >= '1900-01-01' AND observed_at < '2200-01-01'"
                )
                cur.execute(_MERGE_METRICS, params)
                out.time_series += cur.rowcount
                cur.execute("TRUNCATE staging_metrics")
            cur.execute("TRUNCATE staging_entities")
            self._timed("rest", t0)


def load_records(
    conn: psycopg.Connection,
    results: Iterable[CanonicalRecord | Refusal | MalformedLine],
    *,
    file_id: int,
    attempt: int,
    source_key: str,
    run_id: str,
    file_at: Callable[[], datetime] | None = None,
) -> FileLoadResult:
    """Same contract as resources.loader.load_records: call inside a transaction."""
    started = time.perf_counter()
    LAST_STATS.clear()
    out = FileLoadResult()
    refusals = _Spool()
    params = {"source_key": source_key, "run_id": run_id, "file_id": file_id,
              "transformation_version": TRANSFORMATION_VERSION,
              # The prototype does not take the source-order claim (resources/loader.py does): it merges
              # with the load's start as every row's source position.
              "file_at": datetime.now(UTC)}
    with conn.cursor() as cur:
        for k, v in SESSION_SETTINGS.items():
            cur.execute(f"SET LOCAL {k} = '{v}'")
        cur.execute(_STAGING_DDL)
    worker = _Worker(conn, params, out)
    worker.start()
    chunk = _Chunk()
    try:
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
                    f"{_text(res.parent_canonical_id)}\t\\N\n"
                )
                for m in res.metrics:
                    chunk.metrics.write(f"{index}\t{_text(res.canonical_id)}\t{_text(m.metric_type)}\t"
                                        f"{m.observed_at.isoformat()}\t{m.value}\n")
                buf.append(line)
                size += len(line)
                chunk.rows += 1
                if size >= _COPY_FLUSH_BYTES or chunk.rows >= CHUNK_ROWS:
                    chunk.entities.write("".join(buf))
                    buf.clear()
                    size = 0
                    if chunk.rows >= CHUNK_ROWS:
                        _hand_over(worker, chunk)
                        chunk = _Chunk()
            elif isinstance(res, Refusal):
                refusals.write(_refusal_row(file_id, attempt, index, res.source_id, res.problems, res.record_json))
            else:  # MalformedLine
                problem = Problem("malformed_json", res.error)
                refusals.write(_refusal_row(file_id, attempt, index, None, [problem],
                                            json.dumps(res.text, ensure_ascii=True)))
        if buf:
            chunk.entities.write("".join(buf))
        if chunk.rows:
            _hand_over(worker, chunk)
        else:
            chunk.close()
        chunk = None  # type: ignore[assignment]
    finally:
        if chunk is not None:
            chunk.close()
        produced = time.perf_counter()
        worker.chunks.put(None)
        worker.join()
        LAST_STATS["producer (parse, map, format)"] = produced - started
        LAST_STATS["tail: worker after the last record"] = time.perf_counter() - produced
        LAST_STATS.update({f"worker {k}": v for k, v in worker.timings.items()})
    if worker.error is not None:
        refusals.close()
        raise worker.error
    try:
        with conn.cursor() as cur:
            if "xid" in params:
                reverted = cur.execute(_REVERT_RESTORED, params).rowcount
                out.updated -= reverted
            out.rejected = refusals.rows
            refusals.copy_into(
                cur,
                "COPY ingest.rejected_records (file_id, attempt, record_index, source_id, reasons, record) "
                "FROM STDIN",
            )
            out.unchanged = out.received - out.rejected - out.duplicates - out.inserted - out.updated
            if out.changed_rows:
                cur.execute("UPDATE ingest.data_version SET version = version + 1, updated_at = now()")
    finally:
        refusals.close()
    out.seconds = time.perf_counter() - started
    LAST_STATS["final (revert check, refusals)"] = out.seconds - (LAST_STATS["producer (parse, map, format)"]
                                                                  + LAST_STATS["tail: worker after the last record"])
    return out


def _hand_over(worker: _Worker, chunk: _Chunk) -> None:
    if worker.error is not None:
        raise RuntimeError("the load worker failed") from worker.error
    chunk.entities.flush()
    t0 = time.perf_counter()
    worker.chunks.put(chunk)
    LAST_STATS["producer blocked handing over"] = LAST_STATS.get("producer blocked handing over", 0.0) + \
        time.perf_counter() - t0
