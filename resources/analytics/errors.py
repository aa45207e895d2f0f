"""What can go wrong with an analytics request, each with its reason.

Every error is an `AnalyticsError` with a machine-readable `code`, a message for people and
`as_dict()` for a JSON body. HTTP statuses are the REST app's concern (`api/problems.py` maps each
error class to one); the Dagster job treats only `TransientDatabaseError` as worth a retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class AnalyticsError(Exception):
    code = "analytics_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class UnknownOperation(AnalyticsError):
    code = "unknown_operation"

    def __init__(self, name: object, known: list[str]) -> None:
        super().__init__(f"unknown operation {name!r}; known operations: {', '.join(known)}")
        self.name = name
        self.known = known

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "known": self.known}


@dataclass(frozen=True)
class FieldError:
    """One invalid parameter: where, why, and (for whitelisted identifiers) what would be accepted."""

    field: str
    message: str
    valid_values: list[Any] | None = None
    input: Any = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.valid_values is not None:
            d["valid_values"] = self.valid_values
        return d


class InvalidParameters(AnalyticsError):
    code = "invalid_parameters"

    def __init__(self, operation: str, errors: list[FieldError]) -> None:
        parts = []
        for e in errors:
            text = f"{e.field}: {e.message}"
            if e.valid_values is not None:
                text += f" (valid: {', '.join(map(str, e.valid_values))})"
            parts.append(text)
        super().__init__(f"invalid parameters for {operation}: " + "; ".join(parts))
        self.operation = operation
        self.errors = errors

    def as_dict(self) -> dict[str, Any]:
        return {
            **super().as_dict(),
            "operation": self.operation,
            "errors": [e.as_dict() for e in self.errors],
        }


class QueryRejected(AnalyticsError):
    """custom_complex_query refused before it reached the database."""

    code = "query_rejected"

    def __init__(self, reason: str, rule: str) -> None:
        super().__init__(f"query rejected: {reason}")
        self.reason = reason
        self.rule = rule  # machine-readable: parse_error, not_one_statement, not_select, denied_function, ...

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "reason": self.reason, "rule": self.rule}


class QueryTimeout(AnalyticsError):
    code = "query_timeout"

    def __init__(self, operation: str, timeout_s: float) -> None:
        super().__init__(f"{operation} was stopped after its statement timeout of {timeout_s:g} s")
        self.operation = operation
        self.timeout_s = timeout_s


class QueryFailed(AnalyticsError):
    """The database refused the query (permission, read-only transaction, bad SQL in a custom query, ...)."""

    code = "query_failed"

    def __init__(self, operation: str, message: str, sqlstate: str | None) -> None:
        super().__init__(f"{operation} failed: {message}")
        self.operation = operation
        self.sqlstate = sqlstate

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "sqlstate": self.sqlstate}


class TransientDatabaseError(AnalyticsError):
    """Connection lost, server shutting down, serialization failure, lock timeout: worth a retry."""

    code = "transient_database_error"

    def __init__(self, operation: str, message: str, sqlstate: str | None) -> None:
        super().__init__(f"{operation}: transient database error: {message}")
        self.operation = operation
        self.sqlstate = sqlstate


class NotReadOnlyRole(AnalyticsError):
    """The connection is not the read-only role and cannot become it."""

    code = "not_read_only_role"
