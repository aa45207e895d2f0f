"""Values passed between mapping, loading and reporting. Errors are values with reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from resources.sources.compiled import SourceSystem

__all__ = [
    "CanonicalRecord",
    "EntityStatus",
    "EntityType",
    "MappingResult",
    "Metric",
    "Problem",
    "Refusal",
    "SourceSystem",
]

EntityType = Literal["large_enterprise", "medium_business", "small_business"]
EntityStatus = Literal["active", "inactive", "deleted"]

# Which rules produced a row is its source's `CompiledSource.transformation_version`: bump
# resources/sources/version.py's MAPPING_VERSION whenever the mapping rules here change the canonical
# output for the same input.


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a record is refused."""

    code: str  # machine-readable: missing_id, missing_name, not_numeric, negative, out_of_range, ...
    message: str  # for people: says what was wrong and with which value
    field: str | None = None  # the source field it concerns, dotted for nested fields

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "field": self.field, "message": self.message}


@dataclass(frozen=True, slots=True)
class Metric:
    metric_type: str
    observed_at: datetime  # timezone-aware (UTC when the source gives a bare date)
    value: Decimal


@dataclass(slots=True)
class CanonicalRecord:
    """A valid source record, mapped."""

    source_system: SourceSystem
    source_id: str
    canonical_id: str  # f"{source_system}_{source_id}"
    entity_type: EntityType
    name: str
    industry: str | None
    revenue: Decimal | None
    employees: int | None
    attributes: dict[str, Any]  # every source field kept, plus canonical keys name/revenue/employees/industry
    attributes_json: str  # attributes serialised once, as loaded into jsonb
    attributes_hash: bytes  # md5 of attributes_json: change detection without comparing jsonb
    data_quality: float  # 0..1
    parent_canonical_id: str | None = None
    metrics: list[Metric] = field(default_factory=list)
    changed_at: datetime | None = None  # the record's own change time, where its source has one
    status: EntityStatus = "active"  # the source's status code through the status vocabulary
    # (vocabulary, value as it came) of each coded value no vocabulary entry matched: kept, counted
    unmapped: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Refusal:
    """A record that cannot be loaded, with every reason found."""

    source_id: str | None
    problems: tuple[Problem, ...]
    record_json: str  # the record as received, JSON text with non-ASCII escaped (always storable)


MappingResult = CanonicalRecord | Refusal
