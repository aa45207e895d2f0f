"""How a source value appears in a problem message, and text made storable in a text column."""

from __future__ import annotations

import reprlib
from decimal import Decimal

# str(int) refuses more than 4300 digits (CPython's int_max_str_digits); stay well clear.
MAX_INT_BITS = 14_000


def safe_text(s: str) -> str:
    """s with NUL and lone surrogates written as escapes: storable in a text column."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    return s.replace("\x00", "\\x00") if "\x00" in s else s


_SHOW_LIMIT = 80
_repr = reprlib.Repr()
_repr.maxstring = _SHOW_LIMIT
_repr.maxother = _SHOW_LIMIT
_repr.maxlong = _SHOW_LIMIT
_repr.maxlist = _repr.maxtuple = _repr.maxdict = 6
_repr.maxlevel = 3


def show(value: object) -> str:
    """The offending value for a message: repr-style, escaped (no NUL, no surrogates), ≤ ~80 chars."""
    try:
        if isinstance(value, Decimal):
            text = str(value)
        elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
            text = f"<integer of about {int(value.bit_length() * 0.30103)} digits>"
        else:
            text = _repr.repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr raises is still reported, by its type
        text = f"<{type(value).__name__}>"
    if len(text) > _SHOW_LIMIT:
        text = text[: _SHOW_LIMIT - 1] + "…"
    return safe_text(text)
