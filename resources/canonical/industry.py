"""A record's industry: text, or a numeric industry code as its text. Problem code: ``invalid_industry``."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from resources.canonical.fields import combined, first
from resources.canonical.messages import MAX_INT_BITS, show
from resources.canonical.model import Problem
from resources.sources.compiled import CompiledSource

# industry has a btree index: PostgreSQL refuses index entries above ~2.7 kB, so keep it short.
MAX_INDUSTRY_LENGTH = 200


def read_industry(record: dict[str, Any], source: CompiledSource, problems: list[Problem]) -> str | None:
    field, raw = first(record, source.industry)
    if raw is None and source.industry_combinations:
        field, raw = combined(record, source.industry_combinations, (field, raw))
    if raw is None:
        return None
    if isinstance(raw, str):
        text = raw.strip()
    elif isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() <= MAX_INT_BITS:
        text = str(raw)  # numeric industry codes (NAICS, SIC) arrive as numbers
    elif isinstance(raw, Decimal) and raw.is_finite():
        text = str(raw)
    elif isinstance(raw, float) and math.isfinite(raw):
        text = repr(raw)
    else:
        problems.append(
            Problem("invalid_industry", f"{field} is neither text nor a number: {show(raw)}", field)
        )
        return None
    if len(text) > MAX_INDUSTRY_LENGTH:
        problems.append(
            Problem(
                "invalid_industry",
                f"{field} is longer than {MAX_INDUSTRY_LENGTH} characters ({len(text)}): {show(raw)}",
                field,
            )
        )
        return None
    return text or None
