"""A database value as each place we write it: JSON, a CSV cell, a Parquet cell, a PostgreSQL column.

What psycopg hands back (Decimal, datetimes, dates, times, UUIDs, bytes, lists, dicts, and types we
never convert such as intervals and ranges) is converted here and nowhere else, so the inline answer,
the stored JSON and CSV, the Parquet file and the scheduled analytics tables agree on every value.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Iterable
from typing import Any


def jsonable(value: Any) -> Any:
    """JSON-ready: Decimal → int when integral and exact as a double, else float (text when not finite);
    dates and times → ISO text; UUID → text; bytes → hex; containers converted item by item."""
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return str(value)
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


def json_default(value: Any) -> Any:
    """The `default` of json.dumps for result rows: `jsonable`, and a value it has no form for (an
    interval, a range) as its text, so a stored result never fails on an unusual column type."""
    converted = jsonable(value)
    return str(value) if converted is value else converted


def csv_cell(value: Any) -> Any:
    """A value as csv.writer should write it: NULL as an empty cell, lists and objects as JSON text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return "" if value is None else value
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=json_default, ensure_ascii=False)
    return json_default(value)


def parquet_value(value: Any) -> Any:
    """A cell as Parquet holds it: numbers as float (a numeric column's scales vary per row), ids and JSON as
    text; dates, times, text, booleans and integers as they are."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(jsonable(value))
    return value


def pg_type(value: Any) -> str:
    """The PostgreSQL column type that holds a value like this one; text for None and anything unlisted."""
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


def column_pg_type(values: Iterable[Any]) -> str:
    """The column type for a result column, from its first non-null value (text when all are null)."""
    return pg_type(next((v for v in values if v is not None), None))
