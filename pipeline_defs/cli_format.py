"""Plain-text tables for the CLI and the dev stack's summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[str] = ()) -> str:
    """Plain aligned columns; numbers (columns named in `right`) right-aligned; None as '-'."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if h in right else v.ljust(w) for v, w, h in zip(values, widths, headers, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(list(headers)), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _truncate(text: str | None, width: int) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


FILE_COLUMNS = (
    "key",
    "status",
    "att",
    "received",
    "inserted",
    "updated",
    "unchanged",
    "superseded",
    "rejected",
    "retired",
    "reason",
)
_NUMERIC = ("att", "received", "inserted", "updated", "unchanged", "superseded", "rejected", "retired")


def format_files(rows: Sequence[Any], reason_width: int = 60) -> str:
    """A table of `ingest_registry.FileRow`s."""
    return format_table(
        FILE_COLUMNS,
        [
            (
                r.s3_key,
                r.status,
                r.attempt,
                r.received,
                r.inserted,
                r.updated,
                r.unchanged,
                r.superseded,
                r.rejected,
                r.retired,
                _truncate(r.reason, reason_width),
            )
            for r in rows
        ],
        right=_NUMERIC,
    )


def format_attempts(rows: Sequence[Any], reason_width: int = 70) -> str:
    """A table of `ingest_registry.AttemptRow`s, oldest first."""
    return format_table(
        ("att", "cause", "started", "finished", "outcome", "failure", "run", "reason"),
        [
            (
                r.attempt,
                r.cause or "arrival",
                _when(r.started_at),
                _when(r.finished_at),
                r.outcome,
                r.failure_kind,
                (r.run_id or "")[:8] or None,
                _truncate(r.reason, reason_width),
            )
            for r in rows
        ],
        right=("att",),
    )


def _when(at: Any) -> str | None:
    return None if at is None else at.strftime("%Y-%m-%d %H:%M:%S")
