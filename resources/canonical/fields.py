"""A canonical field is found under one of several source names: the first one present wins."""

from __future__ import annotations

from typing import Any


def first(record: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    """The first non-null of the alternative source fields (dotted = one level of nesting)."""
    for key in keys:
        if "." in key:
            outer, inner = key.split(".", 1)
            container = record.get(outer)
            # A non-object container (e.g. "financials": "n/a") simply has no nested field; it stays
            # in attributes as received.
            value = container.get(inner) if isinstance(container, dict) else None
        else:
            value = record.get(key)
        if value is not None:
            return key, value
    return keys[0], None
