"""The analytics catalogue: operation name → description, parameter model, function (README, REST API).

Dagster-free (the REST app imports it): pydantic, psycopg and pglast only. Run an operation with
`resources.analytics.runner.run_operation`; list them with `describe_catalogue()`.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
import pydantic
from pydantic import BaseModel

# Submodules by their full names: importing them through the package would go through its __init__,
# which imports this module (a cycle that works only by Python's submodule fallback).
import resources.analytics.custom as custom
import resources.analytics.info as info
import resources.analytics.integrity as integrity
import resources.analytics.network as network
import resources.analytics.segments as segments
import resources.analytics.trends as trends
from resources.analytics.errors import FieldError, InvalidParameters, UnknownOperation
from resources.analytics.legacy import read_old_forms
from resources.analytics.params import (
    CountAnalysisParams,
    CustomerAnalysisParams,
    CustomQueryParams,
    DataIntegrityParams,
    MultiDimensionalParams,
    NoParams,
    RelationshipNetworkParams,
    RevenueAnalysisParams,
    SimpleDemoParams,
    TimeSeriesPatternsParams,
    valid_values,
)
from resources.analytics.result import Table

OperationFunction = Callable[..., Table]  # (conn, params, *, max_rows) -> Table


@dataclass(frozen=True)
class Operation:
    name: str
    description: str
    params_model: type[BaseModel]
    function: OperationFunction
    # Default statement timeout (the caller may ask for less, or more up to runner.MAX_TIMEOUT_S).
    timeout_s: float = 30.0
    # Session work_mem for the operation's sorts and hashes; None keeps the role's (custom queries).
    work_mem: str | None = "64MB"
    # Further checks of valid parameters that need no database (the custom query's guard).
    precheck: Callable[[Any], None] | None = None

    def validate(self, raw: Mapping[str, Any] | BaseModel | None) -> BaseModel:
        """The parameters as the model, defaults filled in, or InvalidParameters listing every problem
        (QueryRejected for a custom query the guard refuses)."""
        if raw is None:
            raw = {}
        if isinstance(raw, BaseModel):
            raw = raw.model_dump()
        if not isinstance(raw, Mapping):
            raise InvalidParameters(
                self.name, [FieldError("parameters", "must be an object of named values")]
            )
        raw = read_old_forms(self.name, self.params_model, raw)
        try:
            params = self.params_model.model_validate(raw)
        except pydantic.ValidationError as exc:
            raise InvalidParameters(self.name, _field_errors(self.params_model, exc)) from None
        if self.precheck is not None:
            self.precheck(params)
        return params

    def run(self, conn: psycopg.Connection, params: BaseModel, *, max_rows: int) -> Table:
        return self.function(conn, params, max_rows=max_rows)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.params_model.model_json_schema(),
        }


def _field_errors(model: type[BaseModel], exc: pydantic.ValidationError) -> list[FieldError]:
    out = []
    for err in exc.errors(include_url=False):
        loc = [str(x) for x in err.get("loc", ())]
        name = ".".join(loc) or "parameters"
        message = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            message = f"unknown parameter; expected: {', '.join(model.model_fields) or 'none'}"
        out.append(FieldError(name, message, valid_values(model, loc[0]) if loc else None, err.get("input")))
    return out


def _doc(fn: Callable[..., Any]) -> str:
    return " ".join((fn.__doc__ or "").split())


_OPERATIONS = [
    Operation("database_info", _doc(info.database_info), NoParams, info.database_info, timeout_s=10),
    Operation("simple_demo", _doc(info.simple_demo), SimpleDemoParams, info.simple_demo, timeout_s=10),
    Operation(
        "customer_analysis",
        _doc(segments.customer_analysis),
        CustomerAnalysisParams,
        segments.customer_analysis,
    ),
    Operation(
        "revenue_analysis", _doc(segments.revenue_analysis), RevenueAnalysisParams, segments.revenue_analysis
    ),
    Operation("count_analysis", _doc(segments.count_analysis), CountAnalysisParams, segments.count_analysis),
    Operation(
        "multi_dimensional_analytics",
        _doc(trends.multi_dimensional_analytics),
        MultiDimensionalParams,
        trends.multi_dimensional_analytics,
    ),
    Operation(
        "relationship_network",
        _doc(network.relationship_network),
        RelationshipNetworkParams,
        network.relationship_network,
    ),
    Operation(
        "time_series_patterns",
        _doc(trends.time_series_patterns),
        TimeSeriesPatternsParams,
        trends.time_series_patterns,
    ),
    Operation(
        "data_integrity_analysis",
        _doc(integrity.data_integrity_analysis),
        DataIntegrityParams,
        integrity.data_integrity_analysis,
        timeout_s=60,
    ),
    Operation(
        "custom_complex_query",
        _doc(custom.custom_complex_query),
        CustomQueryParams,
        custom.custom_complex_query,
        timeout_s=10,
        work_mem=None,
        precheck=custom.precheck,
    ),
]
CATALOGUE: dict[str, Operation] = {op.name: op for op in _OPERATIONS}
OPERATION_NAMES: list[str] = list(CATALOGUE)


def get_operation(name: object) -> Operation:
    op = CATALOGUE.get(name) if isinstance(name, str) else None
    if op is None:
        raise UnknownOperation(name, OPERATION_NAMES)
    return op


def validate_parameters(name: object, params: Mapping[str, Any] | BaseModel | None) -> BaseModel:
    """Check an operation's parameters without touching the database (Dagster config, REST input)."""
    return get_operation(name).validate(params)


def describe_catalogue() -> list[dict[str, Any]]:
    """Each operation with its parameters' JSON Schema (a fresh copy: callers may change it)."""
    return copy.deepcopy(_described())


@functools.cache
def _described() -> list[dict[str, Any]]:
    # Building the JSON Schemas costs milliseconds per call and the catalogue is fixed at import.
    return [op.describe() for op in _OPERATIONS]
