"""What loading one file reports: its counts, or why it must be loaded again another way.

Both refusals ask the caller to roll the file's transaction back and load it again, narrowed: nothing
of the refused attempt lands.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

# Unmapped values a file's row shows per vocabulary: enough to see what to add to it.
UNMAPPED_EXAMPLES = 5


@dataclass(slots=True)
class UnmappedValues:
    """Per vocabulary, the coded values of a file's records that no vocabulary entry matched: how many,
    and the first few distinct ones (README, "Vocabularies")."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, unmapped: Iterable[tuple[str, str]]) -> None:
        for vocabulary, value in unmapped:
            self.counts[vocabulary] = self.counts.get(vocabulary, 0) + 1
            shown = self.examples.setdefault(vocabulary, [])
            if len(shown) < UNMAPPED_EXAMPLES and value not in shown:
                shown.append(value)

    def merge(self, other: UnmappedValues) -> None:
        """Add another file's (a run's totals)."""
        for vocabulary, count in other.counts.items():
            self.counts[vocabulary] = self.counts.get(vocabulary, 0) + count
            shown = self.examples.setdefault(vocabulary, [])
            shown.extend(v for v in other.examples.get(vocabulary, ()) if v not in shown)
            del shown[UNMAPPED_EXAMPLES:]

    def __bool__(self) -> bool:
        return bool(self.counts)

    def as_json(self) -> dict[str, dict[str, Any]]:
        """{"country": {"count": 3, "examples": ["Narnia"]}, ...}: the ingest.files.unmapped column."""
        return {v: {"count": n, "examples": self.examples[v]} for v, n in sorted(self.counts.items())}


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
    retired: int = 0  # entities a snapshot no longer holds, deleted (snapshot sources only)
    relationships: int = 0  # current parent links created or changed
    time_series: int = 0  # metric points inserted or changed
    seconds: float = 0.0
    unmapped: UnmappedValues = field(default_factory=UnmappedValues)  # coded values kept as they came

    @property
    def records_per_second(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0

    @property
    def changed_rows(self) -> int:
        return self.inserted + self.updated + self.relationships + self.time_series

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["records_per_second"] = round(self.records_per_second, 1)
        d["unmapped"] = self.unmapped.as_json()
        return d


class ChunkedMergeRefused(Exception):
    """Merging this file chunk by chunk could differ from merging it whole: roll the transaction back and
    load the file again with `early_file_at=None`."""


class FreshInsertRefused(Exception):
    """An entity this file's claim found never claimed is already in canonical.entities (written around
    ingest): roll the transaction back and load the file again with `fresh_inserts=False`."""
