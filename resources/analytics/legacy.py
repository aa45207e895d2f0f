"""The old system's parameter forms, read into the catalogue's own before validation.

The old API (Node.js; README "Moving from the old system") took camelCase names (`rootEntityId`,
`analysisPeriod`, `groupBy`), its own metric names (`annual_revenue`) and defaults that named what an
operation counts (`metric: "customer_count"` for count_analysis). Each form is mapped by a fixed
table onto a name or whitelisted value of the operation's parameter model, which then validates as
usual: nothing an old client sends reaches SQL except through the model's whitelists and bound
parameters. Interval text such as `"3 months"` is parsed by the models themselves (params.py).

Pure and dagster-free: the REST app, the analytics job and the Dagster config all pass through it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from resources.analytics.errors import FieldError, InvalidParameters

# The old API's metric names → ours (the old ingest stored a record's revenue as annual_revenue).
METRIC_ALIASES: dict[str, str] = {"annual_revenue": "revenue", "employee_count": "employees"}
# Old parameters that named what the operation does anyway: accepted and dropped when they hold one of
# these values (any other value is still refused by the model, as an unknown parameter).
IMPLIED: dict[str, dict[str, frozenset[str]]] = {
    "count_analysis": {"metric": frozenset({"customer_count", "count", "record_count"})},
}


@functools.cache
def camel_names(model: type[BaseModel]) -> dict[str, str]:
    """camelCase spelling → field name, for the fields whose two spellings differ."""
    return {to_camel(name): name for name in model.model_fields if to_camel(name) != name}


def read_old_forms(operation: str, model: type[BaseModel], raw: Mapping[str, Any]) -> dict[str, Any]:
    """`raw` with camelCase names renamed, old metric names mapped and implied old parameters dropped.

    A parameter given under both spellings with different values is refused (which one was meant?)."""
    renames = camel_names(model)
    out: dict[str, Any] = {}
    problems: list[FieldError] = []
    for key, value in raw.items():
        name = renames.get(key, key)
        if name in out and out[name] != value:
            problems.append(
                FieldError(name, f"given twice, as {name} and {to_camel(name)}, with different values")
            )
            continue
        out[name] = value
    if problems:
        raise InvalidParameters(operation, problems)
    for name, values in IMPLIED.get(operation, {}).items():
        if name not in model.model_fields and isinstance(out.get(name), str) and out[name] in values:
            del out[name]
    metric = out.get("metric")
    if isinstance(metric, str) and metric in METRIC_ALIASES and "metric" in model.model_fields:
        out["metric"] = METRIC_ALIASES[metric]
    return out
