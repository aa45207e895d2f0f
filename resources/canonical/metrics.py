"""A record's ``metrics``: a list of ``{date, type, value}``, one value per type and time.

Problem code: ``invalid_metric``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from resources.canonical.messages import show
from resources.canonical.model import Metric, Problem
from resources.canonical.numbers import MAX_REVENUE, read_amount
from resources.canonical.times import parse_time

MAX_METRIC_TYPE_LENGTH = 100
# Metric values have no natural ceiling; the revenue bound keeps them sane and well inside numeric.
MAX_METRIC_ABS = MAX_REVENUE


def read_metrics(raw: object, problems: list[Problem]) -> list[Metric]:
    if not isinstance(raw, list):
        problems.append(Problem("invalid_metric", f"metrics is not a list: {show(raw)}", "metrics"))
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
            problems.append(
                Problem(
                    "invalid_metric",
                    f"metrics[{i}] repeats metrics[{earlier[0]}] ({show(metric.metric_type)} at "
                    f"{metric.observed_at.isoformat()}) with another value: {show(entry.get('value'))}",
                    f"metrics[{i}]",
                )
            )
    return metrics


def _metric_fast(entry: object) -> Metric | None:
    """The well-formed common case without building field names; None sends it to _metric_checked."""
    if type(entry) is not dict:
        return None
    date, kind = entry.get("date"), entry.get("type")
    value: Any = entry.get("value")  # its type is tested below with `type(...) is` (cheaper than isinstance)
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


def _metric_checked(entry: object, where: str, problems: list[Problem]) -> Metric | None:
    if not isinstance(entry, dict):
        problems.append(Problem("invalid_metric", f"{where} is not an object: {show(entry)}", where))
        return None
    count = len(problems)
    observed_at = _metric_time(entry.get("date"), f"{where}.date", problems)
    metric_type = _metric_type(entry.get("type"), f"{where}.type", problems)
    value_raw = entry.get("value")
    value = None
    if value_raw is None:
        problems.append(Problem("invalid_metric", f"{where}.value is missing", f"{where}.value"))
    else:
        value = read_amount(
            value_raw,
            f"{where}.value",
            problems,
            allow_negative=True,
            limit=MAX_METRIC_ABS,
            code="invalid_metric",
        )
    if len(problems) > count:
        return None
    assert observed_at is not None and metric_type is not None and value is not None
    return Metric(metric_type, observed_at, value)


def _metric_time(raw: object, field: str, problems: list[Problem]) -> datetime | None:
    if not isinstance(raw, str):
        what = "missing" if raw is None else f"not a string: {show(raw)}"
        problems.append(Problem("invalid_metric", f"{field} is {what}", field))
        return None
    parsed = parse_time(raw.strip())
    if parsed is None:
        problems.append(
            Problem("invalid_metric", f"{field} is not an ISO date or datetime: {show(raw)}", field)
        )
    return parsed


def _metric_type(raw: object, field: str, problems: list[Problem]) -> str | None:
    if not isinstance(raw, str):
        what = "missing" if raw is None else f"not a string: {show(raw)}"
        problems.append(Problem("invalid_metric", f"{field} is {what}", field))
        return None
    text = raw.strip()
    if not text or len(text) > MAX_METRIC_TYPE_LENGTH:
        problems.append(
            Problem(
                "invalid_metric",
                f"{field} must be 1..{MAX_METRIC_TYPE_LENGTH} characters: {show(raw)}",
                field,
            )
        )
        return None
    return text
