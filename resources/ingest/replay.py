"""Replay: apply the current source definitions again to a source's already loaded files. Dagster-free:
`pipeline replay` runs it in its own process, the replay_source job in a run.

After a mapping fix (a definition changed, or the mapping rules in code), the canonical rows of files
loaded before it still say what the old rules made of them. A replay loads each of those files again,
one at a time, through the ingest path itself (`runner.ingest_file`: streamed, one transaction per
file), as a new attempt of the file with cause 'replay'. Only content that comes out different is
written: an unchanged record leaves the merge at its claim, so a replay that changes nothing writes no
entity version, history row or metric point and leaves `ingest.data_version` as it was.

Files go oldest first in their source's history (the file's time, then registration order), so each
entity ends as the newest file says, the state an ordered first load would leave; and the merge's
claim still compares positions, so an older file never puts older content back whatever the order.
A file that another loader holds when its turn comes (the landing sensor's run, a reprocess) is
skipped, with the reason: that load applies the current definitions itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import psycopg

from resources.ingest.outcomes import FileLoadResult
from resources.ingest.registry import LOADED_COUNTS, FileRow, loaded_in_source_order, start_replay
from resources.ingest.runner import FileOutcome, ingest_file
from resources.sources.catalogue import get_sources

CAUSE = "replay"


@dataclass(frozen=True, slots=True)
class ReplayRefused:
    """Why a replay cannot start (nothing was touched)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """The files a replay loads again, in the order it loads them."""

    source: str
    since: datetime | None
    transformation_version: str  # what the source's current definition writes
    files: tuple[FileRow, ...]  # the source's loaded files, oldest first in its history


@dataclass(frozen=True, slots=True)
class FileReplayed:
    """One file's turn: its place in the replay (1-based) and what became of it."""

    position: int
    total: int
    outcome: FileOutcome

    def describe(self) -> str:
        """One line of progress: the file, its counts or why it was not replayed."""
        head = f"[{self.position}/{self.total}] {self.outcome.file.s3_key}"
        r = self.outcome.result
        if r is not None:
            return (
                f"{head}: {r.received} received, {r.inserted} inserted, {r.updated} updated, "
                f"{r.unchanged} unchanged, {r.superseded} superseded, {r.rejected} refused "
                f"({r.seconds:.2f}s)"
            )
        if self.outcome.error is not None:
            return f"{head}: FAILED ({self.outcome.failure_kind}): {self.outcome.error}"
        return f"{head}: skipped: {self.outcome.skipped}"


@dataclass(slots=True)
class ReplayTotals:
    """A replay's files by outcome, and the counts of those it loaded, added up."""

    files: int = 0
    replayed: int = 0
    skipped: int = 0
    failed: int = 0
    counts: FileLoadResult = field(default_factory=FileLoadResult)
    failures: list[str] = field(default_factory=list)  # "key: reason" of each failed file

    def add(self, step: FileReplayed) -> None:
        self.files += 1
        outcome = step.outcome
        if outcome.result is not None:
            self.replayed += 1
            for name in LOADED_COUNTS:
                setattr(self.counts, name, getattr(self.counts, name) + getattr(outcome.result, name))
        elif outcome.error is not None:
            self.failed += 1
            self.failures.append(f"{outcome.file.s3_key}: {outcome.error}")
        else:
            self.skipped += 1

    @property
    def changed(self) -> bool:
        """Whether the replay wrote anything to the canonical tables."""
        return self.counts.changed_rows > 0

    def as_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "files": self.files,
            "replayed": self.replayed,
            "skipped": self.skipped,
            "failed": self.failed,
            "received": c.received,
            "inserted": c.inserted,
            "updated": c.updated,
            "unchanged": c.unchanged,
            "superseded": c.superseded,
            "rejected": c.rejected,
            "relationships": c.relationships,
            "time_series": c.time_series,
            "seconds": round(c.seconds, 3),
        }

    def describe(self, plan: ReplayPlan) -> str:
        c = self.counts
        line = (
            f"replayed {self.replayed} of {len(plan.files)} file(s) of {plan.source} "
            f"(transformation version {plan.transformation_version}): {c.inserted} inserted, "
            f"{c.updated} updated, {c.unchanged} unchanged, {c.superseded} superseded, "
            f"{c.rejected} refused; {self.skipped} skipped, {self.failed} failed"
        )
        if self.skipped:
            line += " (a skipped file was being loaded by another run, with the current definitions)"
        return line


def parse_since(text: str | None) -> datetime | ReplayRefused | None:
    """`--since` / the job's `since`: an ISO date (midnight UTC) or date and time (UTC unless it says)."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return ReplayRefused(
            f"since {text!r} is not a date (2026-03-01) or a date and time (2026-03-01T12:00:00+00:00)"
        )
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def plan_replay(
    conn: psycopg.Connection, source: str, since: datetime | None = None
) -> ReplayPlan | ReplayRefused:
    """The files a replay of `source` loads again (`since`: those whose time in the source's history is at
    or after it), or why it cannot: a source no definition names."""
    sources = get_sources()
    if source not in sources.compiled:
        return ReplayRefused(f"unknown source {source!r}: the defined sources are {', '.join(sources.names)}")
    files = loaded_in_source_order(conn, source, since=since)
    conn.commit()
    return ReplayPlan(source, since, sources.source(source).transformation_version, tuple(files))


def replay_files(
    conn: psycopg.Connection,
    s3: Any,
    bucket: str,
    plan: ReplayPlan,
    run_id: str,
    change_time_fields: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[FileReplayed]:
    """Load the plan's files again, in its order, one transaction each; yields each file's outcome as it
    ends. Each is the file's next attempt (cause 'replay', this run), taken only if the file is still
    loaded at the attempt the plan saw."""
    total = len(plan.files)
    for position, file in enumerate(plan.files, start=1):
        attempt = replace(file, attempt=file.attempt + 1, attempt_cause=CAUSE, run_id=run_id)
        outcome = ingest_file(
            conn,
            s3,
            bucket,
            attempt,
            run_id,
            change_time_fields,
            start=partial(start_replay, attempt=attempt.attempt),
        )
        yield FileReplayed(position, total, outcome)
