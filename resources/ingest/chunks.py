"""The producer/worker pipeline of one load: the calling thread reads, maps and formats records into
chunks of COPY rows; a worker thread owns the connection while the records are read, COPYs each chunk
into staging and, when the chunks are merged as they come, merges it.

psycopg releases the GIL while it waits for the server, so Python keeps one core busy formatting while
the backend works on the other. At most two chunks exist: one being filled, one being worked on.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import psycopg

from resources.canonical.model import CanonicalRecord, Problem, Refusal
from resources.ingest import merge_sql as sql
from resources.ingest.copy_text import (
    COPY_FLUSH_BYTES,
    WORKER_COPY_PIECE,
    Spool,
    entity_row,
    metric_row,
    refusal_row,
)
from resources.ingest.merge import Merger
from resources.ingest.outcomes import FileLoadResult
from resources.ingest.parsing import MalformedLine


@dataclass(slots=True)
class Chunk:
    entities: Spool
    metrics: Spool
    merge: bool  # merge after the COPY (chunked mode), else only stage

    @classmethod
    def new(cls, merge: bool, encoding: str) -> Chunk:
        return cls(Spool(encoding), Spool(encoding), merge)

    def close(self) -> None:
        self.entities.close()
        self.metrics.close()


class ChunkWorker:
    """Runs what the database does while the file is read: the staging COPY of each chunk and, in
    chunked mode, its merge. Its thread owns the connection until `finish`."""

    def __init__(self, conn: psycopg.Connection, merger: Merger) -> None:
        self.conn, self.merger = conn, merger
        self.encoding = conn.info.encoding  # what the COPY sends: the chunks are spooled in it
        self.staged = 0  # rows of the file COPYed into staging (valid records)
        self.metric_rows = 0  # metric rows staged and not merged yet (whole mode)
        self.error: BaseException | None = None
        self._chunks: queue.Queue[Chunk | None] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name="load-merge", daemon=True)
        self._thread.start()

    def hand_over(self, chunk: Chunk) -> None:
        """Blocks while the previous chunk is still being worked on. Once the worker failed, the chunk is
        not taken (the caller closes it) and the producer stops here."""
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

    def merge_whole(self, cur: psycopg.Cursor) -> None:
        """After `finish`, in whole mode: merge everything staged, once."""
        self.merger.merge(cur, self.staged, chunked=False, metric_rows=self.metric_rows)

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            try:
                if (
                    self.error is None
                ):  # after a failure, only drain: the producer stops at its next hand-over
                    self._stage(chunk)
            except BaseException as exc:  # noqa: BLE001 - raised again in the producer thread
                self.error = exc
            finally:
                chunk.close()

    def _stage(self, chunk: Chunk) -> None:
        with self.conn.cursor() as cur:
            chunk.entities.copy_into(cur, sql.COPY_STAGING_ENTITIES, WORKER_COPY_PIECE)
            if chunk.merge:
                self.merger.merge(cur, chunk.entities.rows, chunked=True, metrics=chunk.metrics)
                cur.execute(sql.TRUNCATE_STAGING)
            else:
                chunk.metrics.copy_into(cur, sql.COPY_STAGING_METRICS, WORKER_COPY_PIECE)
                self.metric_rows += chunk.metrics.rows
        self.staged += chunk.entities.rows


def produce(
    worker: ChunkWorker,
    results: Iterable[CanonicalRecord | Refusal | MalformedLine],
    out: FileLoadResult,
    refusals: Spool,
    *,
    file_id: int,
    attempt: int,
    rows_per_chunk: int,
    early_file_at: Callable[[], datetime | None] | None,
) -> datetime | None:
    """Read every record into COPY rows, handing chunks to the worker; return the file time the chunks
    were merged with (None: only staged, the caller merges)."""
    early: datetime | None = None
    decided = early_file_at is None
    chunk = Chunk.new(False, worker.encoding)
    handed_last = False
    try:
        # Entity rows reach the spool in pieces, not one call per row: that call's overhead would be paid
        # on every record.
        buf: list[str] = []
        size = 0
        entities, metrics = chunk.entities, chunk.metrics
        for index, res in enumerate(results):
            out.received += 1
            if isinstance(res, CanonicalRecord):
                if res.unmapped:
                    out.unmapped.add(res.unmapped)
                line = entity_row(index, res)
                for m in res.metrics:
                    metrics.write(metric_row(index, res.canonical_id, m))
                buf.append(line)
                size += len(line)
                entities.rows += 1
                if size >= COPY_FLUSH_BYTES or entities.rows >= rows_per_chunk:
                    entities.write_counted("".join(buf))
                    buf.clear()
                    size = 0
                    if entities.rows >= rows_per_chunk:
                        if not decided:
                            # The first full chunk decides: merge as we go if the file's time is known.
                            decided = True
                            assert early_file_at is not None  # undecided only when there is one
                            early = early_file_at()
                            if early is not None:
                                worker.merger.place_file_at(early)
                                chunk.merge = True
                        merge = chunk.merge
                        worker.hand_over(chunk)
                        chunk = Chunk.new(merge, worker.encoding)
                        entities, metrics = chunk.entities, chunk.metrics
            elif isinstance(res, Refusal):
                refusals.write(
                    refusal_row(file_id, attempt, index, res.source_id, res.problems, res.record_json)
                )
            else:  # MalformedLine
                problem = Problem("malformed_json", res.error)
                refusals.write(
                    refusal_row(
                        file_id, attempt, index, None, [problem], json.dumps(res.text, ensure_ascii=True)
                    )
                )
        if buf:
            entities.write_counted("".join(buf))
        handed_last = True
        if chunk.entities.rows:
            worker.hand_over(chunk)
        else:
            chunk.close()
    finally:
        if not handed_last:  # failed before the last hand-over
            chunk.close()
    return early
