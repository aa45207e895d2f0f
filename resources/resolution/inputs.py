"""The matcher's input frame from canonical rows (canonical.entities as read, or mapped records).

Columns: canonical_id, source_system, name, industry, revenue, employees (the entity's own columns) and,
from its attributes, country_code, country, email, website, phone, address (the first present of each
field's usual source names), plus parent_canonical_id when the row has one. Every one may be null.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import pandas as pd

__all__ = ["ATTRIBUTE_NAMES", "INPUT_COLUMNS", "frame_from_rows"]

INPUT_COLUMNS: tuple[str, ...] = (
    "canonical_id",
    "source_system",
    "name",
    "industry",
    "revenue",
    "employees",
    "country_code",
    "country",
    "email",
    "website",
    "phone",
    "address",
    "parent_canonical_id",
)

# Where each compared attribute is found in a source record's attributes, first present wins.
ATTRIBUTE_NAMES: dict[str, tuple[str, ...]] = {
    "country_code": ("country_code",),
    "country": ("country", "country_name", "countryName"),
    "email": ("email", "email_address", "contact_email", "emailAddress"),
    "website": ("website", "web", "url", "homepage", "web_site"),
    "phone": ("phone", "phone_number", "telephone", "phoneNumber", "tel"),
    "address": ("address", "street_address", "address_line1", "street"),
}


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, Decimal | int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def frame_from_rows(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One input row per canonical row: a mapping with canonical_id, source_system, name, industry,
    revenue, employees, attributes (a dict or its JSON text) and optionally parent_canonical_id."""
    out: list[dict[str, Any]] = []
    for row in rows:
        attrs = row.get("attributes") or {}
        if isinstance(attrs, str):
            attrs = json.loads(attrs)
        rec: dict[str, Any] = {
            "canonical_id": str(row["canonical_id"]),
            "source_system": _text(row.get("source_system")),
            "name": _text(row.get("name")),
            "industry": _text(row.get("industry")),
            "revenue": _number(row.get("revenue")),
            "employees": _number(row.get("employees")),
            "parent_canonical_id": _text(row.get("parent_canonical_id")),
        }
        for field, names in ATTRIBUTE_NAMES.items():
            rec[field] = next((_text(attrs[n]) for n in names if attrs.get(n) is not None), None)
        out.append(rec)
    return pd.DataFrame(out, columns=list(INPUT_COLUMNS))
