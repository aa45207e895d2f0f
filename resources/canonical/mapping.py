"""Source record → canonical record (README, "What files may contain"). Pure: no I/O, no dagster, never raises on bad data.

`map_record` returns a `CanonicalRecord` or a `Refusal` that lists every problem found in the record.

Problem codes:

- ``not_an_object``   the record is not a JSON object
- ``missing_id``      no ``id`` / ``customer_id``, or it is empty
- ``invalid_id``      the id is not a string or integer, or longer than 200 characters
- ``missing_name``    no ``company_name`` / ``business_name`` / ``businessName`` / ``name``, or it is blank
- ``invalid_name``    the name is not a string, or longer than 1000 characters
- ``not_numeric``     revenue / employee count is not a number (bool, text, NaN, Infinity, ...)
- ``negative``        revenue / employee count below zero
- ``out_of_range``    revenue above 1e18, employee count above 10,000,000
- ``not_integer``     employee count with a fractional part
- ``invalid_industry`` industry that is neither text nor a number, or longer than 200 characters
- ``invalid_parent``  ``parent_id`` / ``parent_company_id`` that is not a string or integer, or too long
- ``self_parent``     a record naming itself as its parent
- ``invalid_metric``  a ``metrics`` entry that is not ``{date, type, value}`` as specified
- ``unstorable_text`` a NUL character or a lone surrogate anywhere (keys too): jsonb/text refuse them
- ``unstorable_number`` a number jsonb cannot hold (NaN, Infinity, beyond PostgreSQL numeric's range)
- ``unserialisable``  a value that has no JSON form (only possible for records not built by a JSON parser)
- ``invalid_change_time`` the record's change-time field (``updated_at``, …) is not an ISO date or datetime

The record's own change time (the first of ``change_time_keys`` present, by default ``CHANGE_TIME_KEYS``)
is its position in its source's history: it outranks the file's export date when ingest orders records
(README, "Order of truth").

Numbers: ``int``, ``Decimal`` (the parser's ``use_float=False``), ``float``, and strings holding a plain
decimal number (``"2500000"``, ``" 1250.50 "``; no exponent, no thousand separators). ``bool`` is not a
number. Canonical revenue is a ``Decimal``, employees an ``int``.

Decimals in ``attributes_json`` are value-exact JSON numbers: an integral Decimal is written as an
integer, one whose shortest float repr denotes the same value as that float (``123.45``; ``1250.50``
becomes ``1250.5``, equal as a number and as jsonb), anything else with its own digits (``str(d)``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import reprlib
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from resources.canonical.model import (
    SOURCE_SYSTEMS,
    CanonicalRecord,
    EntityType,
    Metric,
    Problem,
    Refusal,
    SourceSystem,
)

__all__ = ["classify_entity_type", "data_quality_score", "map_record"]

ID_KEYS = ("id", "customer_id")
NAME_KEYS = ("company_name", "business_name", "businessName", "name")
REVENUE_KEYS = ("annual_revenue", "revenue", "financials.annualRevenue")
EMPLOYEE_KEYS = ("employee_count", "employees", "hrData.employeeCount")
INDUSTRY_KEYS = ("industry_code", "industry", "sector")
PARENT_KEYS = ("parent_id", "parent_company_id")
# Fields that say when the source last changed the record; INGEST_CHANGE_TIME_FIELDS overrides per source.
CHANGE_TIME_KEYS = ("updated_at", "updatedAt", "last_modified", "lastModified", "modified_at", "last_updated")

MAX_ID_LENGTH = 200
MAX_NAME_LENGTH = 1000
# industry has a btree index: PostgreSQL refuses index entries above ~2.7 kB, so keep it short.
MAX_INDUSTRY_LENGTH = 200
MAX_METRIC_TYPE_LENGTH = 100
MAX_REVENUE = Decimal(10**18)
MAX_EMPLOYEES = 10_000_000
# Metric values have no natural ceiling; the revenue bound keeps them sane and well inside numeric.
MAX_METRIC_ABS = MAX_REVENUE

LARGE_REVENUE, LARGE_EMPLOYEES = Decimal(10_000_000), 1000
MEDIUM_REVENUE, MEDIUM_EMPLOYEES = Decimal(1_000_000), 100

# PostgreSQL numeric (hence jsonb numbers): at most 131072 digits before the point, 16383 after.
_PG_MAX_ADJUSTED = 131_071
_PG_MIN_EXPONENT = -16_383
# str(int) refuses more than 4300 digits (CPython's int_max_str_digits); stay well clear.
_MAX_INT_BITS = 14_000
# The C JSON encoder recurses once per level and stops near the interpreter's limit (1000).
_MAX_DEPTH = 800

# ASCII digits only: \d would also accept e.g. Arabic-Indic digits, which Decimal() silently parses.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

_NOT_NUMERIC = object()  # _number()'s "no number here", distinct from a None value


# --------------------------------------------------------------------------------------------------
# Public API


def classify_entity_type(revenue: Decimal | None, employees: int | None) -> EntityType:
    """large_enterprise: revenue > 10M or employees > 1000; medium_business: > 1M or > 100; else small.

    A missing value counts as 0, so either figure alone can lift a record into a larger class.
    """
    if (revenue is not None and revenue > LARGE_REVENUE) or (employees is not None and employees > LARGE_EMPLOYEES):
        return "large_enterprise"
    if (revenue is not None and revenue > MEDIUM_REVENUE) or (
        employees is not None and employees > MEDIUM_EMPLOYEES
    ):
        return "medium_business"
    return "small_business"


def data_quality_score(
    *,
    name: str | None,
    revenue: Decimal | None,
    employees: int | None,
    industry: str | None,
    email: object = None,
    country: object = None,
    region: object = None,
) -> float:
    """Share of six useful facts the record provides, rounded to 2 decimals (0.0 .. 1.0).

    score = round(n / 6, 2), n counting one each for:
      1. name       present (always, for a record that maps)
      2. revenue    present (canonical value, not None)
      3. employees  present
      4. industry   present (non-blank)
      5. email      a string that looks like an address (``local@domain.tld``, no spaces)
      6. location   ``country`` or ``region`` is a non-blank string

    So a full CRM record scores 1.0, and a legacy row with only the four canonical fields 0.67.
    """
    n = (
        (name is not None and name != "")
        + (revenue is not None)
        + (employees is not None)
        + (industry is not None and industry != "")
        + (isinstance(email, str) and _EMAIL.fullmatch(email.strip()) is not None)
        + ((isinstance(country, str) and country.strip() != "") or (isinstance(region, str) and region.strip() != ""))
    )
    return round(n / 6, 2)


def map_record(source_system: SourceSystem, record: object,
               change_time_keys: tuple[str, ...] = CHANGE_TIME_KEYS, *,
               json_types_only: bool = False) -> CanonicalRecord | Refusal:
    """Map one parsed source record; every problem found is reported, not only the first.

    `json_types_only`: the caller vouches that the record holds only what our parsers build (dict with
    str keys, list, str, int, Decimal for every other number, bool, None; no float). The result is the
    same; attributes are then encoded by orjson, about four times faster than the json module.
    Raises ValueError only for an unknown source_system (a caller bug, not bad data).
    """
    if source_system not in SOURCE_SYSTEMS:
        raise ValueError(f"unknown source system {source_system!r}; expected one of {SOURCE_SYSTEMS}")
    if not isinstance(record, dict):
        return Refusal(
            None,
            (Problem("not_an_object", f"record is {type(record).__name__}, not an object: {_show(record)}"),),
            _record_json(record),
        )

    problems: list[Problem] = []
    source_id = _read_id(record, problems)
    name = _read_name(record, problems)
    rev_field, rev_raw = _first(record, REVENUE_KEYS)
    revenue = _read_amount(rev_raw, rev_field, problems) if rev_raw is not None else None
    emp_field, emp_raw = _first(record, EMPLOYEE_KEYS)
    employees = _read_count(emp_raw, emp_field, problems) if emp_raw is not None else None
    industry = _read_industry(record, problems)
    parent = _read_parent(record, source_id, problems)
    raw_metrics = record.get("metrics")
    metrics = _read_metrics(raw_metrics, problems) if raw_metrics is not None else []
    # isdisjoint: one C call for the common record that has none of the fields
    changed_at = (None if record.keys().isdisjoint(change_time_keys)
                  else _read_change_time(record, change_time_keys, problems))

    if problems:
        # Report storage problems too, so one round of fixes makes the record loadable.
        storage = _serialise(record)
        if isinstance(storage, list):
            reported = {p.field for p in problems if p.field is not None}
            problems.extend(p for p in storage if p.field is None or p.field not in reported)
        return _refuse(record, source_id, problems)

    assert source_id is not None and name is not None
    attributes = dict(record)  # shallow: nested values are the parser's, shared, never mutated here
    attributes["name"] = name
    if revenue is not None:
        # The source int serialises without the Decimal hook; same number either way.
        attributes["revenue"] = rev_raw if type(rev_raw) is int else revenue
    if employees is not None:
        attributes["employees"] = employees
    if industry is not None or "industry" in attributes:
        attributes["industry"] = industry

    serialised = (_serialise_parsed(attributes) if json_types_only else None) or _serialise(attributes)
    if isinstance(serialised, list):
        # Name the source fields (company_name, not its canonical copy name) where the source has the fault.
        return _refuse(record, source_id, _storage_problems(record) or serialised)
    attributes_json, encoded = serialised

    return CanonicalRecord(
        source_system=source_system,
        source_id=source_id,
        canonical_id=f"{source_system}_{source_id}",
        entity_type=classify_entity_type(revenue, employees),
        name=name,
        industry=industry,
        revenue=revenue,
        employees=employees,
        attributes=attributes,
        attributes_json=attributes_json,
        attributes_hash=hashlib.md5(encoded).digest(),
        data_quality=data_quality_score(
            name=name,
            revenue=revenue,
            employees=employees,
            industry=industry,
            email=record.get("email"),
            country=record.get("country"),
            region=record.get("region"),
        ),
        parent_canonical_id=f"{source_system}_{parent}" if parent is not None else None,
        metrics=metrics,
        changed_at=changed_at,
    )


# --------------------------------------------------------------------------------------------------
# Fields


def _first(record: dict, keys: tuple[str, ...]) -> tuple[str, Any]:
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


def _read_id(record: dict, problems: list[Problem]) -> str | None:
    field, raw = _first(record, ID_KEYS)
    if raw is None:
        problems.append(Problem("missing_id", "record has no id (looked for id, customer_id)", None))
        return None
    value = _identifier(raw)
    if value is None:
        problems.append(Problem("invalid_id", f"{field} must be a string or an integer of at most "
                                              f"{MAX_ID_LENGTH} characters: {_show(raw)}", field))
        return None
    if not value:
        problems.append(Problem("missing_id", f"{field} is empty: {_show(raw)}", field))
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


def _read_name(record: dict, problems: list[Problem]) -> str | None:
    field, raw = _first(record, NAME_KEYS)
    if raw is None:
        problems.append(Problem("missing_name", "record has no name (looked for company_name, "
                                                "business_name, businessName, name)", None))
        return None
    if not isinstance(raw, str):
        problems.append(Problem("invalid_name", f"{field} is not text: {_show(raw)}", field))
        return None
    name = raw.strip()
    if not name:
        problems.append(Problem("missing_name", f"{field} is blank: {_show(raw)}", field))
        return None
    if len(name) > MAX_NAME_LENGTH:
        problems.append(Problem("invalid_name", f"{field} is longer than {MAX_NAME_LENGTH} characters "
                                                f"({len(name)}): {_show(raw)}", field))
        return None
    return name


def _number(raw: object) -> int | Decimal | object:
    """int stays int; Decimal, float and plain-number strings become Decimal; else _NOT_NUMERIC."""
    kind = type(raw)
    if kind is int:
        return raw
    if kind is Decimal:
        return raw if raw.is_finite() else _NOT_NUMERIC  # type: ignore[union-attr]
    if kind is str:
        text = raw.strip()  # type: ignore[union-attr]
        return Decimal(text) if _PLAIN_NUMBER.fullmatch(text) else _NOT_NUMERIC
    if kind is float:
        # repr is the shortest text that reads back as this float: 0.1 → Decimal("0.1"), as in the JSON.
        return Decimal(repr(raw)) if math.isfinite(raw) else _NOT_NUMERIC  # type: ignore[arg-type]
    # Subclasses, from parsers other than ours; bool is an int subclass and is not a number here.
    if isinstance(raw, bool):
        return _NOT_NUMERIC
    for base in (int, Decimal, float, str):
        if isinstance(raw, base):
            return _number(base(raw))
    return _NOT_NUMERIC
    if isinstance(raw, int):
        return int(raw)
    if isinstance(raw, Decimal | float | str):
        return _number(kind.__mro__[1](raw) if not isinstance(raw, str) else str(raw))
    return _NOT_NUMERIC


def _read_amount(raw: object, field: str, problems: list[Problem], *, allow_negative: bool = False,
                 limit: Decimal = MAX_REVENUE, code: str | None = None) -> Decimal | None:
    """A non-negative (unless allowed) amount ≤ limit, as Decimal. `code` overrides every problem code."""
    value = _number(raw)
    if value is _NOT_NUMERIC:
        problems.append(Problem(code or "not_numeric", f"{field} is not a number: {_show(raw)}", field))
        return None
    assert isinstance(value, int | Decimal)
    if not allow_negative and value < 0:
        problems.append(Problem(code or "negative", f"{field} is negative: {_show(raw)}", field))
        return None
    # Comparisons, not abs(): abs() rounds to the context and overflows on exponents like 1E+1000000.
    if value > limit or value < -limit:
        problems.append(Problem(code or "out_of_range", f"{field} is beyond {limit:,}: {_show(raw)}", field))
        return None
    return Decimal(value) if type(value) is int else value  # type: ignore[return-value]


def _read_count(raw: object, field: str, problems: list[Problem]) -> int | None:
    value = _number(raw)
    if value is _NOT_NUMERIC:
        problems.append(Problem("not_numeric", f"{field} is not a number: {_show(raw)}", field))
        return None
    assert isinstance(value, int | Decimal)
    if value < 0:
        problems.append(Problem("negative", f"{field} is negative: {_show(raw)}", field))
        return None
    if value > MAX_EMPLOYEES:
        problems.append(Problem("out_of_range", f"{field} is beyond {MAX_EMPLOYEES:,}: {_show(raw)}", field))
        return None
    if type(value) is int:
        return value
    whole = int(value)  # bounded by MAX_EMPLOYEES above, so cheap
    if whole != value:
        problems.append(Problem("not_integer", f"{field} is not a whole number: {_show(raw)}", field))
        return None
    return whole


def _read_industry(record: dict, problems: list[Problem]) -> str | None:
    field, raw = _first(record, INDUSTRY_KEYS)
    if raw is None:
        return None
    if isinstance(raw, str):
        text = raw.strip()
    elif isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() <= _MAX_INT_BITS:
        text = str(raw)  # numeric industry codes (NAICS, SIC) arrive as numbers
    elif isinstance(raw, Decimal) and raw.is_finite():
        text = str(raw)
    elif isinstance(raw, float) and math.isfinite(raw):
        text = repr(raw)
    else:
        problems.append(Problem("invalid_industry", f"{field} is neither text nor a number: {_show(raw)}",
                                field))
        return None
    if len(text) > MAX_INDUSTRY_LENGTH:
        problems.append(Problem("invalid_industry", f"{field} is longer than {MAX_INDUSTRY_LENGTH} characters "
                                                    f"({len(text)}): {_show(raw)}", field))
        return None
    return text or None


def _read_parent(record: dict, source_id: str | None, problems: list[Problem]) -> str | None:
    field, raw = _first(record, PARENT_KEYS)
    if raw is None:
        return None
    parent = _identifier(raw)
    if parent is None:
        problems.append(Problem("invalid_parent", f"{field} must be a string or an integer of at most "
                                                  f"{MAX_ID_LENGTH} characters: {_show(raw)}", field))
        return None
    if not parent:
        return None
    if parent == source_id:
        problems.append(Problem("self_parent", f"{field} names the record itself: {_show(raw)}", field))
        return None
    return parent


def _read_metrics(raw: object, problems: list[Problem]) -> list[Metric]:
    if not isinstance(raw, list):
        problems.append(Problem("invalid_metric", f"metrics is not a list: {_show(raw)}", "metrics"))
        return []
    metrics: list[Metric] = []
    seen: dict[tuple[str, datetime], tuple[int, Decimal]] = {}
    for i, entry in enumerate(raw):
        metric = _metric_fast(entry)
        if metric is None:
            metric = _metric_checked(entry, f"metrics[{i}]", problems)
            if metric is None:
                continue
        key = (metric.metric_type, metric.observed_at)
        earlier = seen.get(key)
        if earlier is None:
            seen[key] = (i, metric.value)
            metrics.append(metric)
        elif earlier[1] != metric.value:
            # (entity, type, time) is the time series' primary key: two values cannot both land.
            problems.append(Problem(
                "invalid_metric",
                f"metrics[{i}] repeats metrics[{earlier[0]}] ({_show(metric.metric_type)} at "
                f"{metric.observed_at.isoformat()}) with another value: {_show(entry.get('value'))}",
                f"metrics[{i}]",
            ))
    return metrics


def _metric_fast(entry: object) -> Metric | None:
    """The well-formed common case without building field names; None sends it to _metric_checked."""
    if type(entry) is not dict:
        return None
    date, kind, value = entry.get("date"), entry.get("type"), entry.get("value")
    if type(date) is not str or type(kind) is not str:
        return None
    vtype = type(value)
    if vtype is Decimal:
        if not value.is_finite() or value > MAX_METRIC_ABS or value < -MAX_METRIC_ABS:
            return None
    elif vtype is int:
        if value > MAX_METRIC_ABS or value < -MAX_METRIC_ABS:
            return None
        value = Decimal(value)
    else:
        return None
    kind = kind.strip()
    if not kind or len(kind) > MAX_METRIC_TYPE_LENGTH:
        return None
    at = parse_time(date)
    return None if at is None else Metric(kind, at, value)


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


def _read_change_time(record: dict, keys: tuple[str, ...], problems: list[Problem]) -> datetime | None:
    field, raw = _first(record, keys)
    if raw is None:
        return None
    parsed = parse_time(raw.strip()) if isinstance(raw, str) else None
    if parsed is None:
        problems.append(Problem("invalid_change_time",
                                f"{field} is not an ISO date or datetime: {_show(raw)}", field))
    return parsed


def _metric_checked(entry: object, where: str, problems: list[Problem]) -> Metric | None:
    if not isinstance(entry, dict):
        problems.append(Problem("invalid_metric", f"{where} is not an object: {_show(entry)}", where))
        return None
    count = len(problems)
    observed_at = _metric_time(entry.get("date"), f"{where}.date", problems)
    metric_type = _metric_type(entry.get("type"), f"{where}.type", problems)
    value_raw = entry.get("value")
    value = None
    if value_raw is None:
        problems.append(Problem("invalid_metric", f"{where}.value is missing", f"{where}.value"))
    else:
        value = _read_amount(value_raw, f"{where}.value", problems, allow_negative=True,
                             limit=MAX_METRIC_ABS, code="invalid_metric")
    if len(problems) > count:
        return None
    assert observed_at is not None and metric_type is not None and value is not None
    return Metric(metric_type, observed_at, value)


def _metric_time(raw: object, field: str, problems: list[Problem]) -> datetime | None:
    if not isinstance(raw, str):
        what = "missing" if raw is None else f"not a string: {_show(raw)}"
        problems.append(Problem("invalid_metric", f"{field} is {what}", field))
        return None
    parsed = parse_time(raw.strip())
    if parsed is None:
        problems.append(Problem("invalid_metric", f"{field} is not an ISO date or datetime: {_show(raw)}", field))
    return parsed


def _metric_type(raw: object, field: str, problems: list[Problem]) -> str | None:
    if not isinstance(raw, str):
        what = "missing" if raw is None else f"not a string: {_show(raw)}"
        problems.append(Problem("invalid_metric", f"{field} is {what}", field))
        return None
    text = raw.strip()
    if not text or len(text) > MAX_METRIC_TYPE_LENGTH:
        problems.append(Problem("invalid_metric", f"{field} must be 1..{MAX_METRIC_TYPE_LENGTH} characters: "
                                                  f"{_show(raw)}", field))
        return None
    return text


# --------------------------------------------------------------------------------------------------
# Serialisation: attributes_json as loaded into jsonb


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
    return d.is_finite() and d.adjusted() <= _PG_MAX_ADJUSTED and d.as_tuple().exponent >= _PG_MIN_EXPONENT  # type: ignore[operator]


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

        out = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False,
                         default=default)
        if out.count(marker) == len(texts):
            for i, text in enumerate(texts):
                out = out.replace(f'"{marker}{i}\ue002"', text, 1)
            return out
        attempt += 1


def _serialise(obj: dict) -> tuple[str, bytes] | list[Problem]:
    """(JSON text, its UTF-8 bytes) as jsonb will take it, or the problems that keep it out."""
    try:
        try:
            text = _ENCODE(obj)
        except _NeedsExactText:
            text = _encode_exact(obj)
    except Exception as exc:  # noqa: BLE001 - any failure becomes a reason, found by the walk below
        return _storage_problems(obj) or [Problem("unserialisable", f"record cannot be written as JSON: "
                                                                    f"{_show(str(exc))}")]
    # The encoder escapes NUL as \u0000; jsonb refuses that escape. The substring can also come from a
    # literal backslash in the source, so confirm with the walk (rare) before refusing.
    if "\\u0000" in text:
        problems = _storage_problems(obj)
        if problems:
            return problems
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: ensure_ascii=False passed it through
        return _storage_problems(obj) or [Problem("unstorable_text", "record holds a lone surrogate")]
    return text, encoded


_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS


def _decimal_fragment(o: object) -> orjson.Fragment:
    """A Decimal as the json module path writes it (_fast_default, else _encode_exact): orjson takes the
    text as it is."""
    if type(o) is not Decimal:
        raise TypeError(type(o).__name__)
    native = _decimal_native(o)
    return orjson.Fragment(_decimal_text(o) if native is None else repr(native))


def _serialise_parsed(obj: dict) -> tuple[str, bytes] | None:
    """_serialise's text for a record of JSON types only (see map_record), by orjson; None when anything
    needs the json module path (which writes or refuses it): a number orjson or jsonb cannot hold, a
    lone surrogate, an escaped NUL, nesting deeper than orjson's limit."""
    try:
        encoded = orjson.dumps(obj, default=_decimal_fragment, option=_ORJSON_OPTIONS)
    except Exception:  # noqa: BLE001 - the json module path decides
        return None
    if b"\\u0000" in encoded:
        return None
    return encoded.decode("utf-8"), encoded


def _storage_problems(obj: object) -> list[Problem]:
    """Walk a record for what jsonb cannot store. Only on the rare path: the common path never walks.

    Iterative, so a deeply nested record cannot overflow the interpreter stack here.
    """
    problems: list[Problem] = []

    def add(code: str, message: str, where: str) -> None:
        # Paths are built from source keys, which may hold the very characters being reported.
        problems.append(Problem(code, _safe_text(message), _safe_text(where) or None))

    def check_text(s: str, where: str, what: str) -> None:
        if "\x00" in s:
            add("unstorable_text", f"{what} holds a NUL character: {_show(s)}", where)
        else:
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                add("unstorable_text", f"{what} holds a lone surrogate: {_show(s)}", where)

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
            if value.bit_length() > _MAX_INT_BITS and not _int_writable(value):
                add("unstorable_number", f"{label} is an integer too large to store: {_show(value)}", where)
        elif isinstance(value, float):
            if not math.isfinite(value):
                add("unstorable_number", f"{label} is not a finite number: {value!r}", where)
        elif isinstance(value, Decimal):
            if not _decimal_storable(value):
                add("unstorable_number", f"{label} is not a number PostgreSQL can store: {_show(value)}", where)
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
                    add("unserialisable", f"{label} mixes key types: {_show(list(value))}", where)
                for key, item in reversed(value.items()):
                    if isinstance(key, str):
                        check_text(key, where, f"key {_show(key)} in {label}")
                        sub = f"{where}.{key}" if where else key
                    else:
                        if not (key is None or isinstance(key, int | float)):
                            add("unserialisable", f"{label} has a key that is not text: {_show(key)}", where)
                        sub = f"{where}.{_show(key)}" if where else _show(key)
                    stack.append((item, sub, depth + 1))
            else:
                for i in range(len(value) - 1, -1, -1):
                    stack.append((value[i], f"{where}[{i}]", depth + 1))
        else:
            add("unserialisable", f"{label} has no JSON form: {_show(value)}", where)
    return problems


# --------------------------------------------------------------------------------------------------
# Refusals and messages


def _int_writable(value: int) -> bool:
    try:
        str(value)  # refused beyond sys.get_int_max_str_digits(), and json.dumps with it
    except ValueError:
        return False
    return True


def _refuse(record: dict, source_id: str | None, problems: list[Problem]) -> Refusal:
    # The id travels to a text column; NUL or a lone surrogate would break the refusal's own insert.
    return Refusal(_safe_text(source_id) if source_id is not None else None, tuple(problems),
                   _record_json(record))


def _record_json(record: object) -> str:
    """The record as received, ASCII JSON text; never raises (odd objects fall back to their repr)."""
    try:
        return json.dumps(record, ensure_ascii=True, default=str)
    except Exception:  # noqa: BLE001 - circular, too deep, giant int, a __str__ that raises ...
        try:
            return json.dumps(repr(record), ensure_ascii=True)
        except Exception:  # noqa: BLE001
            return json.dumps(f"<unprintable {type(record).__name__}>")


def _safe_text(s: str) -> str:
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


def _show(value: object) -> str:
    """The offending value for a message: repr-style, escaped (no NUL, no surrogates), ≤ ~80 chars."""
    try:
        if isinstance(value, Decimal):
            text = str(value)
        elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _MAX_INT_BITS:
            text = f"<integer of about {int(value.bit_length() * 0.30103)} digits>"
        else:
            text = _repr.repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr raises is still reported, by its type
        text = f"<{type(value).__name__}>"
    if len(text) > _SHOW_LIMIT:
        text = text[: _SHOW_LIMIT - 1] + "…"
    return _safe_text(text)
