"""Analytics catalogue (README, REST API), dagster-free: the REST app and the Dagster job share it.

from resources.analytics import run_operation
result = run_operation(readonly_url, "customer_analysis", {"metric": "revenue", "group_by": "industry"})
"""

from resources.analytics.catalogue import (
    CATALOGUE,
    OPERATION_NAMES,
    describe_catalogue,
    get_operation,
    validate_parameters,
)
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
from resources.analytics.result import Result
from resources.analytics.runner import run_operation

__all__ = [
    "CATALOGUE",
    "OPERATION_NAMES",
    "AnalyticsError",
    "FieldError",
    "InvalidParameters",
    "NotReadOnlyRole",
    "QueryFailed",
    "QueryRejected",
    "QueryTimeout",
    "Result",
    "TransientDatabaseError",
    "UnknownOperation",
    "describe_catalogue",
    "get_operation",
    "run_operation",
    "validate_parameters",
]
