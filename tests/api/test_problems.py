"""The REST app's mapping of analytics errors to HTTP statuses: every error class has one."""

from __future__ import annotations

import importlib
import pkgutil

import resources.analytics
from api.problems import ANALYTICS_ERROR_STATUS, from_analytics_error
from resources.analytics.errors import (
    AnalyticsError,
    FieldError,
    InvalidParameters,
    NotReadOnlyRole,
    QueryFailed,
    QueryRejected,
    QueryTimeout,
    TransientDatabaseError,
    UnknownOperation,
)


def _error_classes() -> set[type[AnalyticsError]]:
    # Every submodule of the analytics package, so an error class defined outside errors.py counts too.
    for info in pkgutil.walk_packages(resources.analytics.__path__, "resources.analytics."):
        importlib.import_module(info.name)
    found: set[type[AnalyticsError]] = set()
    todo = [AnalyticsError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_analytics_error_class_has_an_http_status():
    missing = sorted(c.__qualname__ for c in _error_classes() - set(ANALYTICS_ERROR_STATUS))
    assert not missing, f"add these to api.problems.ANALYTICS_ERROR_STATUS: {', '.join(missing)}"


def test_each_error_answers_with_the_status_of_its_class():
    examples: list[AnalyticsError] = [
        AnalyticsError("boom"),
        UnknownOperation("nope", ["simple_demo"]),
        InvalidParameters("simple_demo", [FieldError("limit", "must be positive")]),
        QueryRejected("only SELECT", "not_select"),
        QueryTimeout("customer_analysis", 5),
        QueryFailed("custom_complex_query", "relation does not exist", "42P01"),
        TransientDatabaseError("customer_analysis", "connection lost", "08006"),
        NotReadOnlyRole("the connection cannot become the read-only role"),
    ]
    assert {type(e) for e in examples} == set(ANALYTICS_ERROR_STATUS)
    assert {type(e).__name__: from_analytics_error(e).status for e in examples} == {
        "AnalyticsError": 500,
        "UnknownOperation": 404,
        "InvalidParameters": 422,
        "QueryRejected": 422,
        "QueryTimeout": 504,
        "QueryFailed": 400,
        "TransientDatabaseError": 503,
        "NotReadOnlyRole": 500,
    }
