"""ISO dates and datetimes as aware UTC datetimes: metric dates and a record's own change time.

Problem code: ``invalid_change_time``.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from resources.canonical.fields import first
from resources.canonical.messages import show
from resources.canonical.model import Problem
from resources.sources.compiled import Paths


@functools.lru_cache(maxsize=8192)
def parse_time(text: str) -> datetime | None:
    """ISO date/datetime → aware UTC datetime. Cached: a file's metrics share a handful of dates, and
    attaching the time zone costs more than the parse."""
    try:
        # 3.11's fromisoformat reads every ISO 8601 form, "Z" included; a bare date gives midnight.
        at = datetime.fromisoformat(text)
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def read_change_time(record: dict[str, Any], paths: Paths, problems: list[Problem]) -> datetime | None:
    field, raw = first(record, paths)
    if raw is None:
        return None
    parsed = parse_time(raw.strip()) if isinstance(raw, str) else None
    if parsed is None:
        problems.append(
            Problem("invalid_change_time", f"{field} is not an ISO date or datetime: {show(raw)}", field)
        )
    return parsed
