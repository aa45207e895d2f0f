"""COPY text format: the rows the loader stages, and the spool that holds them until they are sent.

Rows are formatted by hand rather than through psycopg's COPY adaptation: the producer formats every
record of a file, so this is on the load's critical path.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from typing import IO, Any

import psycopg

from resources.canonical.model import CanonicalRecord, Metric, Problem

NULL = "\\N"
TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
# The producer's write buffer, and the pieces the calling thread COPYs: large enough that per-call
# overheads vanish.
COPY_FLUSH_BYTES = 1 << 20
# The worker thread sends in pieces below glibc's initial mmap threshold: larger pieces make the
# threshold adapt upwards and the worker's malloc arena fragments, so its memory creeps up over a file.
WORKER_COPY_PIECE = 64 << 10
_SPOOL_MEMORY_BYTES = 8 << 20
_BACKSLASH = "\\"
_DOUBLED_BACKSLASH = "\\\\"


def text_field(value: str | None) -> str:
    """A text value as a COPY text field."""
    if value is None:
        return NULL
    # Substring scans are cheaper than translate's per-character table lookups, and most values need no
    # escape.
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(TEXT_ESCAPES)
    return value


def number_field(value: Any) -> str:
    """A number (or None) as a COPY text field."""
    return NULL if value is None else str(value)


def entity_row(index: int, record: CanonicalRecord) -> str:
    """One staging_entities row (STAGING_DDL's column order). JSON text never holds raw tabs or newlines
    (json.dumps escapes them): only its backslashes need doubling."""
    canonical_id, source_id, name = record.canonical_id, record.source_id, record.name
    industry, parent = record.industry, record.parent_canonical_id
    # One scan of the text fields together: the row's own call per field would cost more than the scans,
    # and they almost never need an escape.
    texts = f"{canonical_id}{source_id}{name}{industry}{parent}"
    if "\\" in texts or "\t" in texts or "\n" in texts or "\r" in texts:
        canonical_id, source_id, name = text_field(canonical_id), text_field(source_id), text_field(name)
        industry, parent = text_field(industry), text_field(parent)
    else:
        industry = NULL if industry is None else industry
        parent = NULL if parent is None else parent
    revenue, employees, changed_at = record.revenue, record.employees, record.changed_at
    return (
        f"{index}\t{canonical_id}\t{record.source_system}\t{source_id}\t"
        f"{record.entity_type}\t{name}\t{industry}\t"
        f"{NULL if revenue is None else str(revenue)}\t{NULL if employees is None else str(employees)}\t"
        f"{record.attributes_json.replace(_BACKSLASH, _DOUBLED_BACKSLASH)}\t"
        f"\\\\x{record.attributes_hash.hex()}\t{record.data_quality}\t"
        f"{parent}\t{NULL if changed_at is None else changed_at.isoformat()}\t{record.status}\n"
    )


def metric_row(index: int, canonical_id: str, metric: Metric) -> str:
    """One staging_metrics row: `index` ties it to its record's staging_entities row."""
    return (
        f"{index}\t{text_field(canonical_id)}\t{text_field(metric.metric_type)}\t"
        f"{metric.observed_at.isoformat()}\t{metric.value}\n"
    )


def refusal_row(
    file_id: int,
    attempt: int,
    index: int,
    source_id: str | None,
    problems: Iterable[Problem],
    record_json: str,
) -> str:
    """One ingest.rejected_records row (COPY_REJECTED_RECORDS' column order)."""
    reasons = json.dumps([p.as_dict() for p in problems], ensure_ascii=True)
    return (
        f"{file_id}\t{attempt}\t{index}\t{text_field(source_id)}\t{text_field(reasons)}\t"
        f"{text_field(record_json)}\n"
    )


class Spool:
    """COPY text rows written to a temporary file that stays in memory until it is large, so a file's
    memory stays flat however many rows it has. Rows are stored encoded as the connection sends them
    (`encoding`: its `info.encoding`), so the COPY sends the stored bytes: a text file would decode them
    again on the way out, and psycopg encode them once more, every byte of the file twice over."""

    def __init__(self, encoding: str = "utf-8") -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by close()
            _SPOOL_MEMORY_BYTES, mode="w+b"
        )
        self.encoding = encoding
        self.rows = 0

    def write(self, line: str) -> None:
        self.file.write(line.encode(self.encoding))
        self.rows += 1

    def write_counted(self, text: str) -> None:
        """Rows the caller collected and has counted in `rows` already, at once."""
        self.file.write(text.encode(self.encoding))

    def copy_into(self, cur: psycopg.Cursor, statement: str, piece: int = COPY_FLUSH_BYTES) -> None:
        if not self.rows:
            return
        self.file.seek(0)
        with cur.copy(statement) as copy:
            while chunk := self.file.read(piece):
                copy.write(chunk)

    def close(self) -> None:
        self.file.close()
