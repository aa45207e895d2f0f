"""Run a catalogue operation: `run_operation(conn_or_url, name, params) -> Result`.

Order of events:
1. the operation is looked up (UnknownOperation) and its parameters validated (InvalidParameters; a
   custom query is checked by the guard here: QueryRejected) — all before any connection is made;
2. one transaction, REPEATABLE READ (every statement of an operation sees the same snapshot) and
   READ ONLY; as the read-only role (a connection of another role that may become it does so with
   SET LOCAL ROLE, otherwise NotReadOnlyRole); with SET LOCAL statement_timeout, lock_timeout,
   search_path and the operation's work_mem;
3. the operation's rows, at most max_rows, with truncated telling whether there were more;
4. the transaction is rolled back (it wrote nothing; rollback also discards every SET LOCAL), and the
   connection is left as it was found.

Database errors come back as values with reasons: QueryTimeout (statement timeout), TransientDatabaseError
(connection lost, lock timeout, serialization failure: worth a retry), QueryFailed (anything else, e.g.
a custom query that references a table the role cannot read).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from pydantic import BaseModel

from resources.analytics.catalogue import Operation, get_operation
from resources.analytics.errors import (
    AnalyticsError,
    NotReadOnlyRole,
    QueryFailed,
    QueryTimeout,
    TransientDatabaseError,
)
from resources.analytics.result import Result, Table

__all__ = ["READER_ROLE", "Result", "run_operation"]

READER_ROLE = "pipeline_reader"
DEFAULT_MAX_ROWS = 10_000
MAX_ROWS_LIMIT = 1_000_000
MAX_TIMEOUT_S = 300.0
LOCK_TIMEOUT = "2s"
APPLICATION_NAME = "canonical-analytics"

_TRANSIENT = (
    pg_errors.LockNotAvailable,
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.AdminShutdown,
    pg_errors.CrashShutdown,
    pg_errors.CannotConnectNow,
    pg_errors.TooManyConnections,
    pg_errors.ConnectionException,
)


# search_path: canonical, then the schema pg_trgm was installed in (public locally, wherever the operator
# put it on RDS), so similarity() and % resolve without naming a schema.
_SETTINGS = """
SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true),
       set_config('search_path',
                  concat_ws(', ', 'canonical',
                            (SELECT quote_ident(n.nspname) FROM pg_catalog.pg_extension x
                             JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace WHERE x.extname = 'pg_trgm')),
                  true)
"""


def run_operation(
    conn_or_url: psycopg.Connection | str,
    name: str,
    params: Mapping[str, Any] | BaseModel | None = None,
    *,
    timeout_s: float | None = None,
    max_rows: int | None = None,
) -> Result:
    """Run one catalogue operation as the read-only role in a READ ONLY transaction.

    conn_or_url: an idle connection (left idle afterwards) or a URL (a connection is opened and closed).
    timeout_s: statement timeout for each statement (default: the operation's; at most MAX_TIMEOUT_S).
    max_rows: row cap (default DEFAULT_MAX_ROWS); Result.truncated says whether more rows existed.
    """
    op = get_operation(name)
    validated = op.validate(params)
    timeout = min(float(timeout_s if timeout_s is not None else op.timeout_s), MAX_TIMEOUT_S)
    if timeout <= 0:
        raise ValueError("timeout_s must be positive")
    cap = DEFAULT_MAX_ROWS if max_rows is None else int(max_rows)
    if not 1 <= cap <= MAX_ROWS_LIMIT:
        raise ValueError(f"max_rows must be between 1 and {MAX_ROWS_LIMIT}")
    if isinstance(conn_or_url, str):
        try:
            conn = psycopg.connect(conn_or_url, application_name=APPLICATION_NAME, connect_timeout=10)
        except psycopg.Error as exc:
            raise _translate(exc, op, timeout) from exc
        with conn:
            return _run(conn, op, validated, timeout, cap)
    return _run(conn_or_url, op, validated, timeout, cap)


def _run(conn: psycopg.Connection, op: Operation, params: BaseModel, timeout: float, cap: int) -> Result:
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise ValueError("run_operation needs an idle connection (not inside a transaction)")
    started = time.perf_counter()
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            _become_reader(conn)
            conn.execute(_SETTINGS, (f"{int(timeout * 1000)}ms", LOCK_TIMEOUT))
            if op.work_mem is not None:
                conn.execute("SELECT set_config('work_mem', %s, true)", (op.work_mem,))
            table: Table = op.run(conn, params, max_rows=cap)
    except AnalyticsError:
        raise
    except psycopg.Error as exc:
        raise _translate(exc, op, timeout) from exc
    elapsed = time.perf_counter() - started
    return Result(
        operation=op.name,
        columns=table.columns,
        rows=table.rows,
        row_count=len(table.rows),
        truncated=table.truncated,
        elapsed_s=elapsed,
        parameters=params.model_dump(mode="json"),
        notes=table.notes,
    )


def _become_reader(conn: psycopg.Connection) -> None:
    row = conn.execute("SELECT current_user").fetchone()
    if row and row[0] == READER_ROLE:
        return
    try:
        conn.execute(f"SET LOCAL ROLE {READER_ROLE}")
    except pg_errors.InsufficientPrivilege as exc:
        raise NotReadOnlyRole(
            f"analytics run as {READER_ROLE}; this connection is {row[0] if row else '?'} and cannot become it"
        ) from exc


def _translate(exc: psycopg.Error, op: Operation, timeout: float) -> AnalyticsError:
    message = (exc.diag.message_primary if getattr(exc, "diag", None) else None) or str(exc).strip()
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, pg_errors.QueryCanceled):
        return QueryTimeout(op.name, timeout)
    if isinstance(exc, _TRANSIENT) or (isinstance(exc, psycopg.OperationalError) and sqlstate is None):
        return TransientDatabaseError(op.name, message, sqlstate)
    return QueryFailed(op.name, message, sqlstate)
