"""A canonical field is found under one of several source paths: the first one present wins."""

from __future__ import annotations

from typing import Any

from resources.sources.compiled import Combination, Paths


def first(record: dict[str, Any], paths: Paths) -> tuple[str, Any]:
    """The first non-null of the alternative source fields (compiled paths: dotted = nested)."""
    for dotted, head, rest in paths:
        value = record.get(head)
        if rest:
            for inner in rest:
                # A non-object container (e.g. "financials": "n/a") simply has no nested field; it
                # stays in attributes as received.
                value = value.get(inner) if isinstance(value, dict) else None
        if value is not None:
            return dotted, value
    return (paths[0][0] if paths else ""), None


def combined(
    record: dict[str, Any], combinations: tuple[Combination, ...], fallback: tuple[str, Any]
) -> tuple[str, Any]:
    """For a field no path gave: the first combination whose parts are all present, their text joined
    (a part that is not text is returned as the value, for the reader to refuse under the combination's
    label); else `fallback`."""
    for label, parts, separator in combinations:
        values = [first(record, (part,))[1] for part in parts]
        if any(v is None for v in values):
            continue
        odd = next((v for v in values if not isinstance(v, str)), None)
        if odd is not None:
            return label, odd
        return label, separator.join(t for t in (v.strip() for v in values) if t)
    return fallback
