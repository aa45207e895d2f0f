"""Calendar periods as the time-series operations define them (UTC), computed in Python: the reference
the golden tests and the summary's property test compare the database with."""

from __future__ import annotations

from datetime import date, datetime


def period_of(at: datetime, unit: str) -> date:
    """The first day of `at`'s month, quarter or year."""
    if unit == "month":
        return date(at.year, at.month, 1)
    if unit == "quarter":
        return date(at.year, 3 * ((at.month - 1) // 3) + 1, 1)
    return date(at.year, 1, 1)
