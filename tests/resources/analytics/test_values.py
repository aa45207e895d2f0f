"""resources/analytics/values.py gives, for any database value, what the four conversions it replaced gave.

The old implementations are kept here, verbatim, as the oracle: `jsonable` (resources/analytics/result.py),
`_csv_cell` with `_json_default` (resources/clients/results_store.py), `parquet_value` (the analytics job)
and `pg_type` (the scheduled analytics tables).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resources.analytics.values import (
    column_pg_type,
    csv_cell,
    json_default,
    jsonable,
    parquet_value,
    pg_type,
)
from resources.clients.results_store import to_csv, to_json

# --------------------------------------------------------------------------------------------------
# The oracle: the conversions as they were


def old_jsonable(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return str(value)
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [old_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): old_jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


def old_json_default(value: Any) -> Any:
    converted = old_jsonable(value)
    return str(value) if converted is value else converted


def old_csv_cell(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return "" if value is None else value
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=old_json_default, ensure_ascii=False)
    return old_json_default(value)


def old_parquet_value(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(old_jsonable(value))
    return value


def old_pg_type(values: Sequence[Any]) -> str:
    value = next((v for v in values if v is not None), None)
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double precision"
    if isinstance(value, decimal.Decimal):
        return "numeric"
    if isinstance(value, dt.datetime):
        return "timestamptz" if value.tzinfo else "timestamp"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, uuid.UUID):
        return "uuid"
    if isinstance(value, dict | list):
        return "jsonb"
    return "text"


def old_to_json(columns: list[str], rows: list[tuple[Any, ...]]) -> bytes:
    objects = [dict(zip(columns, row, strict=True)) for row in rows]
    return json.dumps(
        {"columns": columns, "rows": objects},
        default=old_json_default,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")


def old_to_csv(columns: list[str], rows: list[tuple[Any, ...]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    writer.writerows([old_csv_cell(v) for v in row] for row in rows)
    return buf.getvalue().encode("utf-8")


# --------------------------------------------------------------------------------------------------
# Values as psycopg hands them back, and a few it never converts


class Interval:
    """Stands for a type the conversions have no case for (a range, an interval): written as its text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Interval({self.text!r})"


decimals = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False, places=0, min_value=-(2**60), max_value=2**60),
    st.sampled_from(
        [
            decimal.Decimal(s)
            for s in (
                "1E+400",
                "-1E+400",
                "1E-400",
                "9007199254740992",
                "9007199254740991",
                "-9007199254740992",
                "1.0",
                "1250.50",
                "0E-10",
                "-0",
                "NaN",
                "-NaN",
                "sNaN",
                "Infinity",
                "-Infinity",
                "1E+6144",
            )
        ]
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    decimals,
    st.datetimes(),
    st.datetimes(timezones=st.timezones()),
    st.dates(),
    st.times(),
    st.uuids(),
    st.binary(max_size=8),
    st.binary(max_size=8).map(memoryview),
    st.text(max_size=8).map(Interval),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)


def outcome(convert: Callable[[Any], Any], value: Any) -> tuple[str, str]:
    """What a conversion gives, comparable even for NaN: its repr, or the exception it raises."""
    try:
        return "value", repr(convert(value))
    except Exception as exc:  # noqa: BLE001 - raising the same error is part of giving the same answer
        return "raises", type(exc).__name__


PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(values)
def test_jsonable_gives_what_it_gave(value: Any) -> None:
    assert outcome(jsonable, value) == outcome(old_jsonable, value)


@PROPERTY
@given(values)
def test_json_default_gives_what_it_gave(value: Any) -> None:
    assert outcome(json_default, value) == outcome(old_json_default, value)


@PROPERTY
@given(values)
def test_csv_cell_gives_what_it_gave(value: Any) -> None:
    assert outcome(csv_cell, value) == outcome(old_csv_cell, value)


@PROPERTY
@given(values)
def test_parquet_value_gives_what_it_gave(value: Any) -> None:
    assert outcome(parquet_value, value) == outcome(old_parquet_value, value)


@PROPERTY
@given(st.lists(values, max_size=5))
def test_a_columns_postgresql_type_is_what_it_was(column: list[Any]) -> None:
    assert column_pg_type(column) == old_pg_type(column)
    assert pg_type(column[0] if column else None) == old_pg_type(column[:1])


@PROPERTY
@given(st.lists(st.tuples(values, values), max_size=4))
def test_stored_json_and_csv_are_byte_for_byte_what_they_were(rows: list[tuple[Any, Any]]) -> None:
    columns = ["a", "b"]
    assert outcome(lambda r: to_json(columns, r), rows) == outcome(lambda r: old_to_json(columns, r), rows)
    assert outcome(lambda r: to_csv(columns, r), rows) == outcome(lambda r: old_to_csv(columns, r), rows)
