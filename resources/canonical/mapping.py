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

Where each field is looked for is the source's definition (resources/sources/, compiled once into tuples).
The record's own change time (the first of its definition's ``change_time`` fields present)
is its position in its source's history: it outranks the file's export date when ingest orders records
(README, "Order of truth").

Each field has its reader, reading the paths the source's compiled definition gives: ``identity`` (id, name,
parent), ``numbers`` (revenue, employee count, what counts as a number), ``industry``, ``metrics``,
``times`` (ISO dates, the change time); ``coded`` reads the coded fields through the vocabularies
(canonical industry with its NAICS code beside it, status, country code, currency of revenue: a value
they lack is kept and listed in the record's ``unmapped``, never refused); ``encoding`` writes the
attributes as jsonb takes them.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from typing import Any

from resources.canonical.coded import Coding, coding_of
from resources.canonical.encoding import record_json, serialise, serialise_parsed, storage_problems
from resources.canonical.fields import first
from resources.canonical.identity import read_id, read_name, read_parent
from resources.canonical.industry import read_industry
from resources.canonical.messages import safe_text, show
from resources.canonical.metrics import read_metrics
from resources.canonical.model import CanonicalRecord, EntityType, Problem, Refusal
from resources.canonical.numbers import converted, read_amount, read_count
from resources.canonical.times import read_change_time
from resources.sources.catalogue import get_sources
from resources.sources.compiled import CompiledSource

__all__ = ["CHANGE_TIME_KEYS", "classify_entity_type", "data_quality_score", "map_record"]

# The change-time fields of the three shipped definitions (resources/sources/shipped/), for callers that
# name them; INGEST_CHANGE_TIME_FIELDS overrides a source's.
CHANGE_TIME_KEYS = ("updated_at", "updatedAt", "last_modified", "lastModified", "modified_at", "last_updated")

LARGE_REVENUE, LARGE_EMPLOYEES = Decimal(10_000_000), 1000
MEDIUM_REVENUE, MEDIUM_EMPLOYEES = Decimal(1_000_000), 100

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def classify_entity_type(revenue: Decimal | None, employees: int | None) -> EntityType:
    """large_enterprise: revenue > 10M or employees > 1000; medium_business: > 1M or > 100; else small.

    A missing value counts as 0, so either figure alone can lift a record into a larger class.
    """
    if (revenue is not None and revenue > LARGE_REVENUE) or (
        employees is not None and employees > LARGE_EMPLOYEES
    ):
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
    return _quality(name, revenue, employees, industry, email, country, region)


# round(n / 6, 2) for each count, computed once.
_SCORES = tuple(round(n / 6, 2) for n in range(7))


def _quality(
    name: str | None,
    revenue: Decimal | None,
    employees: int | None,
    industry: str | None,
    email: object,
    country: object,
    region: object,
) -> float:
    """data_quality_score with positional arguments: the mapping's per-record call (keywords cost more)."""
    return _SCORES[
        (name is not None and name != "")
        + (revenue is not None)
        + (employees is not None)
        + (industry is not None and industry != "")
        + (isinstance(email, str) and _EMAIL.fullmatch(email.strip()) is not None)
        + (
            (isinstance(country, str) and country.strip() != "")
            or (isinstance(region, str) and region.strip() != "")
        )
    ]


def map_record(
    source_system: str | CompiledSource,
    record: object,
    change_time_keys: tuple[str, ...] | None = None,
    *,
    json_types_only: bool = False,
    coded: Coding | None = None,
) -> CanonicalRecord | Refusal:
    """Map one parsed source record; every problem found is reported, not only the first.

    `source_system`: a source's name or its compiled definition (a loader passes the compiled one, looked
    up once per file). `change_time_keys` replaces the definition's change-time fields (() turns them off).
    `json_types_only`: the caller vouches that the record holds only what our parsers build (dict with
    str keys, list, str, int, Decimal for every other number, bool, None; no float). The result is the
    same; attributes are then encoded by orjson, about four times faster than the json module.
    `coded`: the source's coded-field reader and vocabulary lookups (`coded.coding`; a loader compiles it
    once per file; default: compiled here, for the vocabularies in effect).
    Raises ValueError only for an unknown source_system (a caller bug, not bad data).
    """
    src = source_system if isinstance(source_system, CompiledSource) else get_sources().source(source_system)
    if change_time_keys is not None:
        src = src.with_change_time(change_time_keys)
    if not isinstance(record, dict):
        return Refusal(
            None,
            (Problem("not_an_object", f"record is {type(record).__name__}, not an object: {show(record)}"),),
            record_json(record),
        )

    problems: list[Problem] = []
    source_id = read_id(record, src, problems)
    name = read_name(record, src, problems)
    rev_field, rev_raw = first(record, src.revenue)
    if rev_raw is not None and (src.revenue_scale is not None or not src.revenue_numeric_strings):
        rev_raw = converted(rev_raw, rev_field, problems, src.revenue_scale, src.revenue_numeric_strings)
    revenue = read_amount(rev_raw, rev_field, problems) if rev_raw is not None else None
    emp_field, emp_raw = first(record, src.employees)
    if emp_raw is not None and (src.employees_scale is not None or not src.employees_numeric_strings):
        emp_raw = converted(emp_raw, emp_field, problems, src.employees_scale, src.employees_numeric_strings)
    employees = read_count(emp_raw, emp_field, problems) if emp_raw is not None else None
    industry = read_industry(record, src, problems)
    # isdisjoint: one C call for the common record with no parent and no metrics (the same answer as
    # their readers give it, without their calls)
    keys = record.keys()
    parent = None if keys.isdisjoint(src.parent_heads) else read_parent(record, src, source_id, problems)
    raw_metrics = None if keys.isdisjoint(src.metrics_heads) else first(record, src.metrics)[1]
    metrics = read_metrics(raw_metrics, problems) if raw_metrics is not None else []
    # isdisjoint: one C call for the common record that has none of the fields
    changed_at = (
        None
        if keys.isdisjoint(src.change_time_heads)
        else read_change_time(record, src.change_time, problems)
    )

    if problems:
        # Report storage problems too, so one round of fixes makes the record loadable.
        storage = serialise(record)
        if isinstance(storage, list):
            reported = {p.field for p in problems if p.field is not None}
            problems.extend(p for p in storage if p.field is None or p.field not in reported)
        return _refuse(record, source_id, problems)

    assert source_id is not None and name is not None
    if coded is None:
        coded = coding_of(src)
    attributes = dict(record)  # shallow: nested values are the parser's, shared, never mutated here
    attributes["name"] = name
    if revenue is not None:
        # The source int serialises without the Decimal hook; same number either way.
        attributes["revenue"] = rev_raw if type(rev_raw) is int else revenue  # a scaled one is Decimal
    if employees is not None:
        attributes["employees"] = employees
    if industry is not None or "industry" in attributes:
        attributes["industry"] = industry
    # The vocabularies: the canonical industry (its code kept beside it), status, country, currency.
    industry, status, unmapped = coded.read(record, attributes, industry, revenue is not None)

    serialised = (serialise_parsed(attributes) if json_types_only else None) or serialise(attributes)
    if isinstance(serialised, list):
        # Name the source fields (company_name, not its canonical copy name) where the source has the fault.
        return _refuse(record, source_id, storage_problems(record) or serialised)
    attributes_json, encoded = serialised

    source_system = src.name
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
        data_quality=_quality(
            name,
            revenue,
            employees,
            industry,
            record.get("email"),
            record.get("country"),
            record.get("region"),
        ),
        parent_canonical_id=f"{source_system}_{parent}" if parent is not None else None,
        metrics=metrics,
        changed_at=changed_at,
        status=status,
        unmapped=tuple(unmapped) if unmapped else (),
    )


def _refuse(record: dict[str, Any], source_id: str | None, problems: list[Problem]) -> Refusal:
    # The id travels to a text column; NUL or a lone surrogate would break the refusal's own insert.
    return Refusal(
        safe_text(source_id) if source_id is not None else None, tuple(problems), record_json(record)
    )
