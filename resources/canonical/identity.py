"""Who a record is: its id, its name and its parent's id.

Problem codes: ``missing_id``, ``invalid_id``, ``missing_name``, ``invalid_name``, ``invalid_parent``,
``self_parent``.
"""

from __future__ import annotations

from typing import Any

from resources.canonical.fields import combined, first
from resources.canonical.messages import show
from resources.canonical.model import Problem
from resources.sources.compiled import CompiledSource, looked_for

MAX_ID_LENGTH = 200
MAX_NAME_LENGTH = 1000


def read_id(record: dict[str, Any], source: CompiledSource, problems: list[Problem]) -> str | None:
    field, raw = first(record, source.id)
    if raw is None:
        problems.append(Problem("missing_id", f"record has no id (looked for {looked_for(source.id)})", None))
        return None
    value = _identifier(raw)
    if value is None:
        problems.append(
            Problem(
                "invalid_id",
                f"{field} must be a string or an integer of at most {MAX_ID_LENGTH} characters: {show(raw)}",
                field,
            )
        )
        return None
    if not value:
        problems.append(Problem("missing_id", f"{field} is empty: {show(raw)}", field))
        return None
    return value


def _identifier(raw: object) -> str | None:
    """int or str, stringified and stripped ("" when blank); None when unusable as an identifier."""
    if isinstance(raw, str):
        value = raw.strip()
    elif isinstance(raw, int) and not isinstance(raw, bool):
        if raw.bit_length() > 700:  # > 200 digits; checked before str() can choke on a giant int
            return None
        value = str(raw)
    else:
        return None
    return value if len(value) <= MAX_ID_LENGTH else None


def read_name(record: dict[str, Any], source: CompiledSource, problems: list[Problem]) -> str | None:
    field, raw = first(record, source.name_paths)
    if raw is None and source.name_combinations:
        field, raw = combined(record, source.name_combinations, (field, raw))
    if raw is None:
        where = looked_for(source.name_paths, source.name_combinations)
        problems.append(Problem("missing_name", f"record has no name (looked for {where})", None))
        return None
    if not isinstance(raw, str):
        problems.append(Problem("invalid_name", f"{field} is not text: {show(raw)}", field))
        return None
    name = raw.strip()
    if not name:
        problems.append(Problem("missing_name", f"{field} is blank: {show(raw)}", field))
        return None
    if len(name) > MAX_NAME_LENGTH:
        problems.append(
            Problem(
                "invalid_name",
                f"{field} is longer than {MAX_NAME_LENGTH} characters ({len(name)}): {show(raw)}",
                field,
            )
        )
        return None
    return name


def read_parent(
    record: dict[str, Any], source: CompiledSource, source_id: str | None, problems: list[Problem]
) -> str | None:
    field, raw = first(record, source.parent)
    if raw is None:
        return None
    parent = _identifier(raw)
    if parent is None:
        problems.append(
            Problem(
                "invalid_parent",
                f"{field} must be a string or an integer of at most {MAX_ID_LENGTH} characters: {show(raw)}",
                field,
            )
        )
        return None
    if not parent:
        return None
    if parent == source_id:
        problems.append(Problem("self_parent", f"{field} names the record itself: {show(raw)}", field))
        return None
    return parent
