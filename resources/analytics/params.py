"""Parameter models of the analytics operations (names and parameters are a contract: README, REST API).

Rules:
- Identifiers a caller chooses (`metric`, `group_by`, `timeframe`, ...) come from explicit whitelists
  (`Literal`s). Each whitelisted value maps to a fixed SQL fragment in `GROUP_BY_SQL` / `METRIC_SQL`:
  nothing a caller sends is ever pasted into SQL; every other value is a bound parameter.
- Numbers and intervals are validated and bounded. Values sent as strings (a GET query string) are
  coerced: "5" → 5, "0.7" → 0.7.
- Unknown fields are refused (`extra="forbid"`), so a typo never silently falls back to a default.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)

from resources.sources.catalogue import get_sources

GroupBy = Literal["industry", "entity_type", "source_system", "region", "country"]
Metric = Literal["revenue", "employees", "lifetime_value", "total_spent", "revenue_per_employee"]
Timeframe = Literal["month", "quarter", "year"]
# What an entity is to an operation: a source record (one per system that knows the company) or a golden
# entity (the resolution's company: README "Golden entities").
EntityScope = Literal["source", "golden"]

GROUP_BYS: tuple[str, ...] = get_args(GroupBy)
METRICS: tuple[str, ...] = get_args(Metric)
TIMEFRAMES: tuple[str, ...] = get_args(Timeframe)
ENTITY_SCOPES: tuple[str, ...] = get_args(EntityScope)

# Whitelisted identifier → fixed SQL over `canonical.entities e`: plain columns only. region, country,
# lifetime_value, total_spent and revenue_per_employee are stored generated columns (migration 0007) kept
# from the attributes as ingest writes them (CRM and ERP exports carry region and country, legacy rows do
# not: NULL; only JSON numbers count as a value, "n/a" gives NULL). A column, not a jsonb expression, so
# an operation reads it from the canonical_id index without touching the heap, and evaluates it once
# however many aggregates mention it.
GROUP_BY_SQL: dict[str, str] = {
    "industry": "e.industry",
    "entity_type": "e.entity_type",
    "source_system": "e.source_system",
    "region": "e.region",
    "country": "e.country",
}

METRIC_SQL: dict[str, str] = {
    "revenue": "e.revenue",
    "employees": "e.employees::numeric",
    "lifetime_value": "e.lifetime_value",
    "total_spent": "e.total_spent",
    "revenue_per_employee": "e.revenue_per_employee",
}
TIMEFRAME_STEP: dict[str, str] = {"month": "1 month", "quarter": "3 months", "year": "1 year"}

assert set(GROUP_BY_SQL) == set(GROUP_BYS) and set(METRIC_SQL) == set(METRICS)
assert set(TIMEFRAME_STEP) == set(TIMEFRAMES)

MAX_TOP_N = 100
MAX_DEPTH = 10
MAX_ROOTS = 100
MAX_LIMIT = 1000
MAX_GROUP_SIZE = 1_000_000
# data_integrity_analysis's smallest min_similarity (now a match probability): the bound its old trigram
# lookups needed, kept so a request valid before is valid now and one refused before is refused now.
MIN_SIMILARITY = 0.3
MAX_ANALYSIS_MONTHS = 120
MAX_QUERY_CHARS = 20_000
MAX_QUERY_PARAMS = 100
MAX_PARAM_TEXT = 10_000


def _not_bool(value: Any) -> Any:
    # JSON true is not a count: pydantic's lax mode would take it as 1.
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
Float = Annotated[float, BeforeValidator(_not_bool)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class NoParams(_Params):
    """database_info: no parameters."""


class _EntityParams(_Params):
    """Operations over the entities: those their source deleted are left out unless asked for."""

    include_deleted: bool = Field(
        False,
        description="also count entities their source deleted (a delete marker, a deleted status, or absent "
        "from a newer snapshot of a snapshot source)",
    )


class SimpleDemoParams(_EntityParams):
    """simple_demo: only whether deleted entities count."""


class _ScopedParams(_EntityParams):
    """Operations that count, rank or segment entities: over source records or golden entities."""

    entity_scope: EntityScope = Field(
        "source",
        description="what an entity is: 'source' (default; one per source record, so a company three systems "
        "know counts three times) or 'golden' (one per golden entity of the latest resolution, with its "
        "golden record's values; a record no resolution has seen yet counts as its own)",
    )


class CustomerAnalysisParams(_ScopedParams):
    metric: Metric = Field("revenue", description="value aggregated per segment")
    group_by: GroupBy = Field("industry", description="segment dimension")
    min_group_size: Int = Field(
        1, ge=1, le=MAX_GROUP_SIZE, description="segments with fewer entities are left out (HAVING)"
    )


class RevenueAnalysisParams(_ScopedParams):
    metric: Metric = Field("revenue", description="value ranked within each segment")
    group_by: GroupBy = Field("industry", description="segment dimension")
    top_n: Int = Field(10, ge=1, le=MAX_TOP_N, description="ranks kept per segment (ties share a rank)")


class CountAnalysisParams(_ScopedParams):
    group_by: GroupBy = Field("industry", description="segment dimension")


_PERIOD = re.compile(r"(\d{1,4})\s*(months?|quarters?|years?)", re.IGNORECASE)
_UNIT_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def _months(text: str) -> int:
    """Months in an interval written 'N months' | 'N quarters' | 'N years' (ValueError otherwise)."""
    m = _PERIOD.fullmatch(text.strip())
    if not m:
        raise ValueError("must look like '6 months', '2 quarters' or '1 year'")
    months = int(m.group(1)) * _UNIT_MONTHS[m.group(2).lower().rstrip("s")]
    if not 1 <= months <= MAX_ANALYSIS_MONTHS:
        raise ValueError(f"must be between 1 month and {MAX_ANALYSIS_MONTHS} months")
    return months


def _months_text(months: int) -> str:
    return "1 month" if months == 1 else f"{months} months"


class MultiDimensionalParams(_Params):
    timeframe: str = Field(
        "quarter",
        description="'month' | 'quarter' | 'year': the period length metrics are summed over, all periods; or a "
        "window 'N months' | 'N quarters' | 'N years' (the old API's form): monthly periods over the "
        "last N months up to the latest observation",
    )

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, v: str) -> str:
        text = v.strip().lower()
        if text in TIMEFRAMES:
            return text
        try:
            return _months_text(_months(text))
        except ValueError:
            raise ValueError(
                f"must be one of {', '.join(TIMEFRAMES)}, or a window such as '3 months' or '1 year'"
            ) from None

    @property
    def unit(self) -> str:
        """The period: the timeframe itself, or month for a window."""
        return self.timeframe if self.timeframe in TIMEFRAMES else "month"

    @property
    def window_months(self) -> int | None:
        """None when every period counts."""
        return None if self.timeframe in TIMEFRAMES else int(self.timeframe.split()[0])


@functools.lru_cache(maxsize=4)
def _canonical_id(systems: tuple[str, ...]) -> re.Pattern[str]:
    """<system>_<source id> for the defined systems (resources/sources/)."""
    return re.compile(rf"(?:{'|'.join(map(re.escape, systems))})_\S.{{0,199}}", re.DOTALL)


def _systems_text(systems: tuple[str, ...]) -> str:
    named = [f"{s}_…" for s in systems]
    return ", ".join(named[:-1]) + " or " + named[-1]


class RelationshipNetworkParams(_Params):
    root_entity_id: str | None = Field(
        None,
        min_length=1,
        max_length=210,
        description="the root: a canonical id (crm_CUST-1001, erp_ERP-2001, legacy_30001) or an entity_id uuid; "
        "omitted: every top of a hierarchy (a parent with no parent of its own), up to max_roots",
    )
    max_depth: Int = Field(3, ge=1, le=MAX_DEPTH, description="levels below the root to follow")
    max_roots: Int = Field(
        MAX_ROOTS,
        ge=1,
        le=MAX_ROOTS,
        description="without root_entity_id: hierarchies walked at most (by canonical id)",
    )

    @field_validator("root_entity_id")
    @classmethod
    def _root(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return str(uuid.UUID(v))
        except ValueError:
            pass
        systems = get_sources().names
        if not _canonical_id(systems).fullmatch(v):
            raise ValueError(f"must be a canonical id ({_systems_text(systems)}) or an entity_id uuid")
        return v

    @property
    def root_uuid(self) -> str | None:
        if self.root_entity_id is None:
            return None
        try:
            return str(uuid.UUID(self.root_entity_id))
        except ValueError:
            return None


class TimeSeriesPatternsParams(_Params):
    analysis_period: str = Field(
        "12 months",
        description="how far back from the latest observation: 'N months' | 'N quarters' | 'N years' "
        f"(1 month .. {MAX_ANALYSIS_MONTHS // 12} years) or 'all'",
    )
    metric_type: str = Field(
        "monthly_revenue",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:\- ]+$",
        description="time_series_data.metric_type",
    )

    @field_validator("analysis_period")
    @classmethod
    def _period(cls, v: str) -> str:
        text = v.strip().lower()
        if text == "all":
            return "all"
        if not _PERIOD.fullmatch(text):
            raise ValueError("must look like '6 months', '2 quarters', '1 year' or be 'all'")
        return _months_text(_months(text))

    @property
    def months(self) -> int | None:
        """None for 'all'."""
        return None if self.analysis_period == "all" else int(self.analysis_period.split()[0])


class DataIntegrityParams(_Params):
    min_similarity: Float = Field(
        0.6,
        ge=MIN_SIMILARITY,
        le=1.0,
        description="smallest match probability of a reported pair (the entity resolution's; the name is the "
        "old one, when it was a trigram name similarity)",
    )
    limit: Int = Field(100, ge=1, le=MAX_LIMIT, description="pairs reported at most")


Scalar = Annotated[StrictStr, Field(max_length=MAX_PARAM_TEXT)] | StrictBool | StrictInt | StrictFloat | None


class CustomQueryParams(_Params):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    query: str = Field(
        ...,
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description="one SELECT (or WITH … SELECT) statement; $1, $2, … refer to params",
    )
    params: list[Scalar] = Field(
        default_factory=list, max_length=MAX_QUERY_PARAMS, description="values bound to $1, $2, …"
    )

    @field_validator("params", mode="before")
    @classmethod
    def _params_from_text(cls, v: Any) -> Any:
        # A GET query string carries the list as JSON text.
        if isinstance(v, str):
            try:
                return json.loads(v)
            except ValueError as exc:
                raise ValueError("must be a list of values (or its JSON text)") from exc
        return v


def valid_values(model: type[BaseModel], field: str) -> list[Any] | None:
    """The whitelist of a Literal field, for error messages; None for free-form fields."""
    info = model.model_fields.get(field)
    if info is None:
        return None
    args = get_args(info.annotation)
    if args and all(isinstance(a, str) for a in args):
        return list(args)
    return None
