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
    return (
        f"{index}\t{text_field(record.canonical_id)}\t{record.source_system}\t{text_field(record.source_id)}\t"
        f"{record.entity_type}\t{text_field(record.name)}\t{text_field(record.industry)}\t"
        f"{number_field(record.revenue)}\t{number_field(record.employees)}\t"
        f"{record.attributes_json.replace(_BACKSLASH, _DOUBLED_BACKSLASH)}\t"
        f"\\\\x{record.attributes_hash.hex()}\t{record.data_quality}\t"
        f"{text_field(record.parent_canonical_id)}\t"
        f"{NULL if record.changed_at is None else record.changed_at.isoformat()}\t{record.status}\n"
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
    memory stays flat however many rows it has."""

    def __init__(self) -> None:
        self.file: IO[str] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by close()
            _SPOOL_MEMORY_BYTES, mode="w+", encoding="utf-8"
        )
        self.rows = 0

    def write(self, line: str) -> None:
        self.file.write(line)
        self.rows += 1

    def copy_into(self, cur: psycopg.Cursor, statement: str, piece: int = COPY_FLUSH_BYTES) -> None:
        if not self.rows:
            return
        self.file.seek(0)
        with cur.copy(statement) as copy:
            while chunk := self.file.read(piece):
                copy.write(chunk)

    def close(self) -> None:
        self.file.close()
