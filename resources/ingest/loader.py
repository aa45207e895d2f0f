"""Load one file's mapped records into the canonical tables, inside the caller's transaction.

COPY into temporary staging tables (`copy_text`), then one merge per table (`merge`, its statements in
`merge_sql`):
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

Chunked and overlapped (`chunks`): the calling thread parses, maps and formats COPY rows into chunks of
`CHUNK_ROWS`; a worker thread owns the connection while the records are read, and COPYs each chunk into
staging, so formatting and the backend's work overlap. When the file's place in its source's history is
known before its last record (`early_file_at`), the worker also merges each chunk as it arrives (staging
is emptied after each); otherwise the whole file is staged and merged once at the end. Still one
transaction: the file lands whole or not at all. A chunked merge gives the same result as one merge of
the whole file, because it refuses (`ChunkedMergeRefused`, the caller reloads the file whole) the cases
where the two could differ: a canonical id that an earlier chunk already merged (the later occurrence
must win, as within one chunk, and the earlier one must leave no trace: version, history, parent link,
metric point), and a file time that turned out different from the one announced early. Chunked loads
take a transaction-level advisory lock exclusively, whole-file loads share it: per-chunk claims do not
take their row locks in one global order, so a chunked load must not run beside another load of
entities. A file with metric points also takes the summary's lock (`merge_sql.SUMMARY_LOCK`) before
merging them and holds it to the commit: the triggers that keep analytics.time_series_cells read after it.
Dagster-free: the benchmark and tests drive it directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime

import psycopg

from resources.canonical.model import CanonicalRecord, Refusal
from resources.ingest import merge_sql as sql
from resources.ingest.chunks import ChunkWorker, produce
from resources.ingest.copy_text import Spool
from resources.ingest.merge import Merger
from resources.ingest.outcomes import ChunkedMergeRefused, FileLoadResult, FreshInsertRefused
from resources.ingest.parsing import MalformedLine

__all__ = ["CHUNK_ROWS", "ChunkedMergeRefused", "FileLoadResult", "FreshInsertRefused", "load_records"]

# Records per chunk: large enough that per-statement overheads vanish, small enough that two chunks in
# flight stay small in client memory (a chunk spills to disk when it grows large).
CHUNK_ROWS = 50_000


def load_records(
    conn: psycopg.Connection,
    results: Iterable[CanonicalRecord | Refusal | MalformedLine],
    *,
    file_id: int,
    attempt: int,
    source_key: str,
    run_id: str,
    transformation_version: str,
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
    `early_file_at`. `transformation_version` is written into each entity version's metadata (the
    source's `CompiledSource.transformation_version`). `fresh_inserts`: records whose id was never
    claimed are plain-INSERTed; raises FreshInsertRefused when such an entity exists after all (then
    load again with False: all upserted).
    """
    started = time.perf_counter()
    out = FileLoadResult()
    merger = Merger(
        out,
        file_id=file_id,
        source_key=source_key,
        run_id=run_id,
        transformation_version=transformation_version,
        fresh_inserts=fresh_inserts,
    )
    refusals = Spool(conn.info.encoding)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.STAGING_DDL)
        worker = ChunkWorker(conn, merger)
        try:
            early = produce(
                worker,
                results,
                out,
                refusals,
                file_id=file_id,
                attempt=attempt,
                rows_per_chunk=chunk_rows or CHUNK_ROWS,
                early_file_at=early_file_at,
            )
        finally:
            worker.finish()  # re-raises the worker's failure, if any
        with conn.cursor() as cur:
            final = file_at()
            if early is not None:
                if final != early:
                    raise ChunkedMergeRefused(
                        f"the file's time is {final.isoformat()}, not "
                        f"{early.isoformat()} as known before its records were read"
                    )
            else:  # whole mode: everything is staged, merge it once
                merger.place_file_at(final)
                worker.merge_whole(cur)
            out.rejected = refusals.rows
            # By subtraction, so the counts add up even for an entity the claim did not know (written
            # around ingest): its merge found the same content and wrote nothing.
            out.unchanged = worker.staged - out.duplicates - out.superseded - out.inserted - out.updated
            refusals.copy_into(cur, sql.COPY_REJECTED_RECORDS)
            if out.changed_rows:
                cur.execute(sql.BUMP_DATA_VERSION)
    finally:
        refusals.close()
    out.seconds = time.perf_counter() - started
    return out
