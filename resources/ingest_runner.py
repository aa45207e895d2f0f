"""Ingest one registered file: stream it from S3, map, load, record the outcome. Dagster-free.

Each file is its own transaction: it lands whole (data, refused records, its `ingest.files` row) or
not at all, and one bad file never blocks or half-loads another.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError

from resources.canonical.mapping import map_record
from resources.canonical.model import CanonicalRecord, Refusal
from resources.ingest_registry import FileRow
from resources.loader import FileLoadResult, load_records
from resources.parsing import MalformedLine, ParseError, iter_records


@dataclass(frozen=True, slots=True)
class FileOutcome:
    file: FileRow
    result: FileLoadResult | None = None
    error: str | None = None  # why the file failed; nothing of it landed
    skipped: str | None = None  # why this run did not touch the file (another run has it)

    @property
    def ok(self) -> bool:
        return self.error is None


class FileUnavailable(RuntimeError):
    """The object cannot be read as registered (gone, or changed since)."""


def _open_body(s3: Any, bucket: str, file: FileRow) -> IO[bytes]:
    try:
        # IfMatch: load exactly the version that was registered; a newer one is its own row.
        return s3.get_object(Bucket=bucket, Key=file.s3_key, IfMatch=file.etag)["Body"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "412"):
            raise FileUnavailable("the object changed after it was registered; its new version is "
                                  "registered and loaded separately") from exc
        if code in ("NoSuchKey", "404"):
            raise FileUnavailable("the object no longer exists in the bucket") from exc
        raise


def _mapped(source: str, records: Iterator[Any]) -> Iterator[CanonicalRecord | Refusal | MalformedLine]:
    for record in records:
        yield record if isinstance(record, MalformedLine) else map_record(source, record)  # type: ignore[arg-type]


def ingest_file(conn: psycopg.Connection, s3: Any, bucket: str, file: FileRow, run_id: str) -> FileOutcome:
    """Load one file. `conn` must not be in a transaction; it is left idle."""
    claimed = conn.execute(
        """UPDATE ingest.files SET status = 'loading', run_id = %s, started_at = now()
           WHERE file_id = %s AND (status IN ('pending', 'queued') OR (status = 'loading' AND run_id = %s))""",
        (run_id, file.file_id, run_id),
    ).rowcount
    conn.commit()
    if not claimed:
        return FileOutcome(file, skipped="not pending or queued any more (already handled by another run)")
    try:
        with conn.transaction():
            records = iter_records(file.s3_key, lambda: _open_body(s3, bucket, file))
            result = load_records(conn, _mapped(file.source_system or "", records), file_id=file.file_id,
                                  attempt=file.attempt, source_key=file.s3_key, run_id=run_id)
            conn.execute(
                """UPDATE ingest.files SET status = 'loaded', reason = NULL, received = %s, inserted = %s,
                          updated = %s, unchanged = %s, rejected = %s, duplicates = %s, relationships = %s,
                          time_series = %s, seconds = %s, finished_at = now()
                   WHERE file_id = %s""",
                (result.received, result.inserted, result.updated, result.unchanged, result.rejected,
                 result.duplicates, result.relationships, result.time_series, result.seconds, file.file_id),
            )
        return FileOutcome(file, result=result)
    except (ParseError, FileUnavailable, psycopg.DataError, psycopg.IntegrityError) as exc:
        return _fail(conn, file, str(exc))
    except (ClientError, BotoCoreError) as exc:
        return _fail(conn, file, f"could not read s3://{bucket}/{file.s3_key}: {exc}")


def _fail(conn: psycopg.Connection, file: FileRow, reason: str) -> FileOutcome:
    conn.execute(
        """UPDATE ingest.files SET status = 'failed', reason = %s, finished_at = now(),
                  received = NULL, inserted = NULL, updated = NULL, unchanged = NULL, rejected = NULL
           WHERE file_id = %s""",
        (reason[:2000], file.file_id),
    )
    conn.commit()
    return FileOutcome(file, error=reason)
