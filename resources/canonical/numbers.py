"""Revenue and employee count, and the number rule metric values share.

Numbers: ``int``, ``Decimal`` (the parser's ``use_float=False``), ``float``, and strings holding a plain
decimal number (``"2500000"``, ``" 1250.50 "``; no exponent, no thousand separators). ``bool`` is not a
number. Canonical revenue is a ``Decimal``, employees an ``int``.

Problem codes: ``not_numeric``, ``negative``, ``out_of_range``, ``not_integer``.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from resources.canonical.messages import show
from resources.canonical.model import Problem

MAX_REVENUE = Decimal(10**18)
MAX_EMPLOYEES = 10_000_000

# ASCII digits only: \d would also accept e.g. Arabic-Indic digits, which Decimal() silently parses.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")

_NOT_NUMERIC = object()  # _number()'s "no number here", distinct from a None value


def _number(raw: object) -> int | Decimal | object:
    """int stays int; Decimal, float and plain-number strings become Decimal; else _NOT_NUMERIC."""
    kind = type(raw)
    if kind is int:
        return raw
    if kind is Decimal:
        # type(raw) is tested, not isinstance (per record, cheaper), and mypy does not narrow on it
        return raw if raw.is_finite() else _NOT_NUMERIC  # type: ignore[attr-defined]  # type(raw) is Decimal
    if kind is str:
        text = raw.strip()  # type: ignore[attr-defined]  # type(raw) is str, as above
        return Decimal(text) if _PLAIN_NUMBER.fullmatch(text) else _NOT_NUMERIC
    if kind is float:
        # repr is the shortest text that reads back as this float: 0.1 → Decimal("0.1"), as in the JSON.
        return Decimal(repr(raw)) if math.isfinite(raw) else _NOT_NUMERIC  # type: ignore[arg-type]  # type(raw) is float
    # Subclasses, from parsers other than ours; bool is an int subclass and is not a number here.
    if isinstance(raw, bool):
        return _NOT_NUMERIC
    for base in (int, Decimal, float, str):
        if isinstance(raw, base):
            return _number(base(raw))
    return _NOT_NUMERIC


def read_amount(
    raw: object,
    field: str,
    problems: list[Problem],
    *,
    allow_negative: bool = False,
    limit: Decimal = MAX_REVENUE,
    code: str | None = None,
) -> Decimal | None:
    """A non-negative (unless allowed) amount ≤ limit, as Decimal. `code` overrides every problem code."""
    value = _number(raw)
    if value is _NOT_NUMERIC:
        problems.append(Problem(code or "not_numeric", f"{field} is not a number: {show(raw)}", field))
        return None
    assert isinstance(value, int | Decimal)
    if not allow_negative and value < 0:
        problems.append(Problem(code or "negative", f"{field} is negative: {show(raw)}", field))
        return None
    # Comparisons, not abs(): abs() rounds to the context and overflows on exponents like 1E+1000000.
    if value > limit or value < -limit:
        problems.append(Problem(code or "out_of_range", f"{field} is beyond {limit:,}: {show(raw)}", field))
        return None
    return Decimal(value) if type(value) is int else value  # type: ignore[return-value]  # a number by now


def read_count(raw: object, field: str, problems: list[Problem]) -> int | None:
    value = _number(raw)
    if value is _NOT_NUMERIC:
        problems.append(Problem("not_numeric", f"{field} is not a number: {show(raw)}", field))
        return None
    assert isinstance(value, int | Decimal)
    if value < 0:
        problems.append(Problem("negative", f"{field} is negative: {show(raw)}", field))
        return None
    if value > MAX_EMPLOYEES:
        problems.append(Problem("out_of_range", f"{field} is beyond {MAX_EMPLOYEES:,}: {show(raw)}", field))
        return None
    if type(value) is int:
        return value
    whole = int(value)  # bounded by MAX_EMPLOYEES above, so cheap
    if whole != value:
        problems.append(Problem("not_integer", f"{field} is not a whole number: {show(raw)}", field))
        return None
    return whole


def converted(
    raw: object, field: str, problems: list[Problem], scale: Decimal | None, numeric_strings: bool
) -> object:
    """A source's number as its definition says to read it (text refused unless numeric_strings; times
    scale, e.g. 0.01 for cents); None, with a problem, when it cannot be. The range checks come after."""
    if not numeric_strings and isinstance(raw, str):
        problems.append(Problem("not_numeric", f"{field} is text, not a number: {show(raw)}", field))
        return None
    if scale is None:
        return raw
    value = _number(raw)
    if value is _NOT_NUMERIC:
        problems.append(Problem("not_numeric", f"{field} is not a number: {show(raw)}", field))
        return None
    assert isinstance(value, int | Decimal)
    return value * scale
