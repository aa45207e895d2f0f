"""A record's attributes as JSON text that jsonb takes, and what keeps a record out of jsonb.

Decimals in ``attributes_json`` are value-exact JSON numbers: an integral Decimal is written as an
integer, one whose shortest float repr denotes the same value as that float (``123.45``; ``1250.50``
becomes ``1250.5``, equal as a number and as jsonb), anything else with its own digits (``str(d)``).

Problem codes found here: ``unstorable_text``, ``unstorable_number``, ``unserialisable``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from resources.canonical.messages import MAX_INT_BITS, safe_text, show
from resources.canonical.model import Problem

# PostgreSQL numeric (hence jsonb numbers): at most 131072 digits before the point, 16383 after.
_PG_MAX_ADJUSTED = 131_071
_PG_MIN_EXPONENT = -16_383
# The C JSON encoder recurses once per level and stops near the interpreter's limit (1000).
_MAX_DEPTH = 800


class _NeedsExactText(Exception):
    """A Decimal neither int nor float can carry exactly: take the (rare) token path."""


class _Unstorable(ValueError):
    pass


def _decimal_native(d: Decimal) -> int | float | None:
    """int or float with exactly d's value, or None. The C JSON encoder writes both natively."""
    if not d.is_finite():
        raise _Unstorable(d)
    adjusted = d.adjusted()
    if adjusted > 300 or adjusted < -300:  # beyond double range anyway; int(1E+100000) would be costly
        return None
    i = int(d)
    if i == d:
        return i
    text = str(d)
    if len(text) <= 15:
        # ≤ 15 significant digits within double range: the nearest double's shortest repr is this
        # same value (DBL_DIG = 15), so no round-trip check is needed.
        return float(text)
    f = float(text)
    return f if Decimal(repr(f)) == d else None


def _fast_default(o: object) -> int | float:
    if isinstance(o, Decimal):
        native = _decimal_native(o)
        if native is None:
            raise _NeedsExactText
        return native
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


_ENCODE: Callable[..., str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False, default=_fast_default
).encode


def _decimal_storable(d: Decimal) -> bool:
    return d.is_finite() and d.adjusted() <= _PG_MAX_ADJUSTED and d.as_tuple().exponent >= _PG_MIN_EXPONENT  # type: ignore[operator]  # finite, so the exponent is an int


def _decimal_text(d: Decimal) -> str:
    """str(d) is always a valid JSON number for a finite Decimal; refuse what numeric cannot hold."""
    if not _decimal_storable(d):
        raise _Unstorable(d)
    return str(d)


def _encode_exact(obj: object) -> str:
    """Encode with Decimals as their own digits: placeholder strings, swapped for the digits after.

    A placeholder is accepted only if each appears exactly once in the output, so a source string that
    happens to contain one cannot be mistaken for it; the next attempt uses another marker.
    """
    attempt = 0
    while True:
        marker = f"\ue000{attempt}\ue001"
        texts: list[str] = []

        def default(o: object, texts: list[str] = texts, marker: str = marker) -> object:
            if isinstance(o, Decimal):
                native = _decimal_native(o)
                if native is not None:
                    return native
                texts.append(_decimal_text(o))
                return f"{marker}{len(texts) - 1}\ue002"
            raise TypeError(f"{type(o).__name__} is not JSON serialisable")

        out = json.dumps(
            obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False, default=default
        )
        if out.count(marker) == len(texts):
            for i, text in enumerate(texts):
                out = out.replace(f'"{marker}{i}\ue002"', text, 1)
            return out
        attempt += 1


def serialise(obj: dict[str, Any]) -> tuple[str, bytes] | list[Problem]:
    """(JSON text, its UTF-8 bytes) as jsonb will take it, or the problems that keep it out."""
    try:
        try:
            text = _ENCODE(obj)
        except _NeedsExactText:
            text = _encode_exact(obj)
    except Exception as exc:  # noqa: BLE001 - any failure becomes a reason, found by the walk below
        return storage_problems(obj) or [
            Problem("unserialisable", f"record cannot be written as JSON: {show(str(exc))}")
        ]
    # The encoder escapes NUL as \u0000; jsonb refuses that escape. The substring can also come from a
    # literal backslash in the source, so confirm with the walk (rare) before refusing.
    if "\\u0000" in text:
        problems = storage_problems(obj)
        if problems:
            return problems
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: ensure_ascii=False passed it through
        return storage_problems(obj) or [Problem("unstorable_text", "record holds a lone surrogate")]
    return text, encoded


_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS


def _decimal_fragment(o: object) -> orjson.Fragment:
    """A Decimal as the json module path writes it (_fast_default, else _encode_exact): orjson takes the
    text as it is."""
    if type(o) is not Decimal:
        raise TypeError(type(o).__name__)
    native = _decimal_native(o)
    return orjson.Fragment(_decimal_text(o) if native is None else repr(native))


def serialise_parsed(obj: dict[str, Any]) -> tuple[str, bytes] | None:
    """serialise's text for a record of JSON types only (see map_record), by orjson; None when anything
    needs the json module path (which writes or refuses it): a number orjson or jsonb cannot hold, a
    lone surrogate, an escaped NUL, nesting deeper than orjson's limit."""
    try:
        encoded = orjson.dumps(obj, default=_decimal_fragment, option=_ORJSON_OPTIONS)
    except Exception:  # noqa: BLE001 - the json module path decides
        return None
    if b"\\u0000" in encoded:
        return None
    return encoded.decode("utf-8"), encoded


def storage_problems(obj: object) -> list[Problem]:
    """Walk a record for what jsonb cannot store. Only on the rare path: the common path never walks.

    Iterative, so a deeply nested record cannot overflow the interpreter stack here.
    """
    problems: list[Problem] = []

    def add(code: str, message: str, where: str) -> None:
        # Paths are built from source keys, which may hold the very characters being reported.
        problems.append(Problem(code, safe_text(message), safe_text(where) or None))

    def check_text(s: str, where: str, what: str) -> None:
        if "\x00" in s:
            add("unstorable_text", f"{what} holds a NUL character: {show(s)}", where)
        else:
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                add("unstorable_text", f"{what} holds a lone surrogate: {show(s)}", where)

    on_path: set[int] = set()  # ids of the containers above the current value: a repeat is a cycle
    leave = object()  # stack marker: (leave, "", id) pops a container off on_path
    stack: list[tuple[object, str, int]] = [(obj, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if value is leave:
            on_path.discard(depth)
            continue
        label = where or "record"
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, str):
            check_text(value, where, label)
        elif isinstance(value, int):
            if value.bit_length() > MAX_INT_BITS and not _int_writable(value):
                add("unstorable_number", f"{label} is an integer too large to store: {show(value)}", where)
        elif isinstance(value, float):
            if not math.isfinite(value):
                add("unstorable_number", f"{label} is not a finite number: {value!r}", where)
        elif isinstance(value, Decimal):
            if not _decimal_storable(value):
                add(
                    "unstorable_number", f"{label} is not a number PostgreSQL can store: {show(value)}", where
                )
        elif isinstance(value, dict | list | tuple):
            if depth >= _MAX_DEPTH:
                add("unserialisable", f"{label} is nested more than {_MAX_DEPTH} levels deep", where)
                continue
            if id(value) in on_path:
                add("unserialisable", f"{label} contains itself", where)
                continue
            on_path.add(id(value))
            stack.append((leave, "", id(value)))
            if isinstance(value, dict):
                if len({type(k) for k in value}) > 1:
                    add("unserialisable", f"{label} mixes key types: {show(list(value))}", where)
                for key, item in reversed(value.items()):
                    if isinstance(key, str):
                        check_text(key, where, f"key {show(key)} in {label}")
                        sub = f"{where}.{key}" if where else key
                    else:
                        if not (key is None or isinstance(key, int | float)):
                            add("unserialisable", f"{label} has a key that is not text: {show(key)}", where)
                        sub = f"{where}.{show(key)}" if where else show(key)
                    stack.append((item, sub, depth + 1))
            else:
                for i in range(len(value) - 1, -1, -1):
                    stack.append((value[i], f"{where}[{i}]", depth + 1))
        else:
            add("unserialisable", f"{label} has no JSON form: {show(value)}", where)
    return problems


def _int_writable(value: int) -> bool:
    try:
        str(value)  # refused beyond sys.get_int_max_str_digits(), and json.dumps with it
    except ValueError:
        return False
    return True


def record_json(record: object) -> str:
    """The record as received, ASCII JSON text; never raises (odd objects fall back to their repr)."""
    try:
        return json.dumps(record, ensure_ascii=True, default=str)
    except Exception:  # noqa: BLE001 - circular, too deep, giant int, a __str__ that raises ...
        try:
            return json.dumps(repr(record), ensure_ascii=True)
        except Exception:  # noqa: BLE001
            return json.dumps(f"<unprintable {type(record).__name__}>")
