"""A golden record from its members (pure): each field from one member, chosen by configured rules.

For each field, the members holding a value for it (not null, not blank) are the candidates; they are
ranked by the field's criteria in order, and the first one's value is the golden value:

- `source_priority`: the member's source definition's `priority` (higher wins; README "Source
  definitions");
- `newest`: the member's position in its source's order of truth (source_changed_at, then
  source_file_at, then source_file_id), newer wins;
- `completeness`: the member with more of the golden fields filled wins.

The canonical id breaks what is still tied, so the same members always give the same record. Deleted
members (status 'deleted') are not candidates unless every member is deleted. The default order is
priority, newest, completeness; `overrides` gives a field its own order (revenue and employees take the
newest figure first by default: a company's size changes, and the latest report is the best guess).
The record says, per field, which member it came from (`lineage`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Criterion = Literal["source_priority", "newest", "completeness"]

# The golden fields kept in columns of golden.entities; the first four are canonical columns, the
# others are read from the members' attributes.
COLUMN_FIELDS = ("name", "industry", "revenue", "employees")
ATTRIBUTE_FIELDS = ("country", "email", "website", "phone", "address")
GOLDEN_FIELDS = COLUMN_FIELDS + ATTRIBUTE_FIELDS


def _default_paths() -> dict[str, tuple[str, ...]]:
    return {
        "country": ("country", "country_code", "address.country"),
        "email": ("email", "contact_email", "contact.email"),
        "website": ("website", "web", "url", "homepage"),
        "phone": ("phone", "phone_number", "telephone", "contact.phone"),
        "address": ("address", "street_address", "billing_address"),
    }


def _default_overrides() -> dict[str, tuple[Criterion, ...]]:
    return {
        "revenue": ("newest", "source_priority", "completeness"),
        "employees": ("newest", "source_priority", "completeness"),
    }


class SurvivorshipRules(BaseModel):
    """How each golden field is chosen. `paths`: where the attribute fields are found in a member's
    attributes (dotted, first present wins; a field not given keeps its default paths); `attributes`:
    further attributes to keep in the golden record (name -> paths), chosen by the same rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order: tuple[Criterion, ...] = Field(default=("source_priority", "newest", "completeness"), min_length=1)
    overrides: dict[str, tuple[Criterion, ...]] = Field(default_factory=_default_overrides)
    paths: dict[str, tuple[str, ...]] = Field(default_factory=_default_paths)
    attributes: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _overrides_name_fields(self) -> SurvivorshipRules:
        for name, order in self.overrides.items():
            if name not in self.fields():
                raise ValueError(
                    f"overrides.{name}: not a field of the golden record ({', '.join(self.fields())})"
                )
            if not order:
                raise ValueError(f"overrides.{name}: give at least one criterion")
        clash = set(self.attributes) & set(GOLDEN_FIELDS)
        if clash:
            raise ValueError(f"attributes: {sorted(clash)} are golden fields already")
        return self

    @field_validator("paths")
    @classmethod
    def _attribute_fields(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        unknown = set(value) - set(ATTRIBUTE_FIELDS)
        if unknown:
            raise ValueError(
                f"paths: {sorted(unknown)} are not attribute fields ({', '.join(ATTRIBUTE_FIELDS)})"
            )
        # A field given replaces its default paths; the other fields keep theirs.
        return {**_default_paths(), **value}

    def order_of(self, field: str) -> tuple[Criterion, ...]:
        return self.overrides.get(field, self.order)

    def fields(self) -> tuple[str, ...]:
        """Every field of the golden record: the golden fields, then the configured attributes."""
        return GOLDEN_FIELDS + tuple(sorted(self.attributes))

    def version(self, priorities: Mapping[str, int]) -> str:
        """What the records are built with (rules and source priorities): a record built under another
        version is rebuilt."""
        text = json.dumps(
            {"rules": self.model_dump(mode="json"), "priorities": dict(priorities)}, sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Member:
    """A canonical record as survivorship reads it. Positions are None where the store holds
    -infinity (rows loaded before positions existed): older than any real one."""

    canonical_id: str
    source_system: str
    name: str | None
    industry: str | None
    revenue: Decimal | None
    employees: int | None
    attributes: Mapping[str, Any]
    source_changed_at: datetime | None = None
    source_file_at: datetime | None = None
    source_file_id: int = 0
    status: str = "active"


@dataclass(frozen=True, slots=True)
class GoldenRecord:
    values: dict[str, Any]  # every field of the rules, None where no member has one
    lineage: dict[str, str]  # field -> canonical id of the member it came from (fields with a value only)


@dataclass(frozen=True, slots=True)
class CompiledRules:
    """The rules as a rebuild applies them to many records: each field's order and its paths split
    once (`compile_rules`)."""

    fields: tuple[str, ...]
    orders: dict[str, tuple[Criterion, ...]]
    attribute_paths: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]  # golden attribute fields
    extra_paths: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]  # configured further attributes


def compile_rules(rules: SurvivorshipRules | None = None) -> CompiledRules:
    rules = rules or SurvivorshipRules()

    def split(paths: Iterable[str]) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(p.split(".")) for p in paths)

    return CompiledRules(
        fields=rules.fields(),
        orders={f: rules.order_of(f) for f in rules.fields()},
        attribute_paths=tuple((f, split(rules.paths.get(f, ()))) for f in ATTRIBUTE_FIELDS),
        extra_paths=tuple((name, split(paths)) for name, paths in sorted(rules.attributes.items())),
    )


def build_record(
    members: Sequence[Member],
    priorities: Mapping[str, int],
    rules: SurvivorshipRules | CompiledRules | None = None,
) -> GoldenRecord:
    """The golden record of `members` (at least one). `priorities`: source name -> priority (a source
    missing here counts 0). A rebuild of many records passes the rules compiled once."""
    if not members:
        raise ValueError("a golden record needs at least one member")
    plan = rules if isinstance(rules, CompiledRules) else compile_rules(rules)
    if len(members) == 1:
        # One member is every field's only candidate: no ranking to do.
        (m,) = members
        values = _values(m, plan)
        return GoldenRecord(values, {f: m.canonical_id for f, v in values.items() if v is not None})
    alive = [m for m in members if m.status != "deleted"] or list(members)
    values_of = {m.canonical_id: _values(m, plan) for m in alive}
    filled = {cid: sum(v is not None for v in vals.values()) for cid, vals in values_of.items()}

    values = {}
    lineage: dict[str, str] = {}
    for field in plan.fields:
        candidates = [m for m in alive if values_of[m.canonical_id][field] is not None]
        if not candidates:
            values[field] = None
            continue
        order = plan.orders[field]
        best = min(candidates, key=lambda m: _rank(m, order, priorities, filled))
        values[field] = values_of[best.canonical_id][field]
        lineage[field] = best.canonical_id
    return GoldenRecord(values, lineage)


def _rank(
    m: Member, order: Iterable[Criterion], priorities: Mapping[str, int], filled: Mapping[str, int]
) -> tuple[Any, ...]:
    """Smaller ranks first: every criterion is turned so that the winner has the smaller key."""
    key: list[Any] = []
    for criterion in order:
        if criterion == "source_priority":
            key.append(-priorities.get(m.source_system, 0))
        elif criterion == "newest":
            (k1, t1), (k2, t2) = _time(m.source_changed_at), _time(m.source_file_at)
            key.append((-k1, -t1, -k2, -t2, -m.source_file_id))
        else:
            key.append(-filled[m.canonical_id])
    key.append(m.canonical_id)
    return tuple(key)


def _time(t: datetime | None) -> tuple[int, float]:
    # Aware datetimes compare by instant; None (never known) sorts before every real time.
    return (0, 0.0) if t is None else (1, t.timestamp())


def _values(m: Member, plan: CompiledRules) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": _text(m.name),
        "industry": _text(m.industry),
        "revenue": m.revenue,
        "employees": m.employees,
    }
    attributes = m.attributes
    for field, paths in plan.attribute_paths:
        kept = _first(attributes, paths)
        out[field] = None if kept is None else kept if isinstance(kept, str) else str(kept)
    for name, paths in plan.extra_paths:
        out[name] = _first(attributes, paths)
    return out


def _first(attributes: Mapping[str, Any], paths: Iterable[tuple[str, ...]]) -> Any:
    """The first path's value worth keeping (`_scalar`'s form of it), or None."""
    for path in paths:
        if len(path) == 1:
            # Most paths are one key deep: a plain look-up (a key holding null counts as absent either way).
            value: Any = attributes.get(path[0])
        else:
            value = attributes
            for part in path:
                if not isinstance(value, Mapping) or part not in value:
                    value = None
                    break
                value = value[part]
        if value is not None:
            kept = _scalar(value)
            if kept is not None:
                return kept
    return None


def _scalar(value: Any) -> Any:
    """A value worth keeping: not null, not blank text, not a nested object or list."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, (dict, list)):
        return None
    return value


def _text(value: Any) -> str | None:
    kept = _scalar(value)
    return None if kept is None else str(kept)
