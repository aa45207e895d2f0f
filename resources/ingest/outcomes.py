"""What loading one file reports: its counts, or why it must be loaded again another way.

Both refusals ask the caller to roll the file's transaction back and load it again, narrowed: nothing
of the refused attempt lands.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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


class ChunkedMergeRefused(Exception):
    """Merging this file chunk by chunk could differ from merging it whole: roll the transaction back and
    load the file again with `early_file_at=None`."""


class FreshInsertRefused(Exception):
    """An entity this file's claim found never claimed is already in canonical.entities (written around
    ingest): roll the transaction back and load the file again with `fresh_inserts=False`."""
