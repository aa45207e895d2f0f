"""The checker for `custom_complex_query`, with PostgreSQL's own parser (pglast = libpg_query).

A query passes when it is exactly one statement, that statement is a SELECT (plain, WITH …,
VALUES, TABLE, set operations), and nothing inside it:

- writes: no INSERT/UPDATE/DELETE/MERGE anywhere (a data-modifying WITH is a write), no SELECT … INTO
  (creates a table), no FOR UPDATE/SHARE (row locks);
- calls a denied function (`DENIED_FUNCTIONS`, `DENIED_PREFIXES`): anything that sleeps, signals or
  terminates other backends, takes advisory locks, touches server files or large objects, changes
  settings, advances sequences, reaches other servers, or runs SQL text of its own (which would slip
  past this check);
- uses parameters the caller did not send ($n beyond `params`) or sends parameters it does not use.

This is the first of three layers: the query then runs as the read-only role (SELECT on canonical.*
only, no TEMP, no server roles) inside a READ ONLY transaction with a statement timeout and a row cap
(runner.py), so a gap in the deny-list still cannot write, and cannot run for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pglast import ast, parse_sql
from pglast.parser import ParseError
from pglast.visitors import Visitor

from resources.analytics.errors import QueryRejected

# name → why it is refused. Names are matched on the last part of the (possibly schema-qualified)
# function name, case-insensitively: pg_catalog.PG_SLEEP(1) is pg_sleep.
_SLEEPS = "sleeps, holding a connection and a snapshot"
_SIGNALS = "signals or controls other server processes"
_ADVISORY = "takes advisory locks, which outlive the query and can block other sessions"
_FILES = "reads or lists files on the database server"
_LARGE_OBJECTS = "reads or writes large objects (server-side files and blobs)"
_SETTINGS = "changes server or session settings (e.g. the role, the statement timeout)"
_SEQUENCES = "advances or resets a sequence (a write that survives a read-only transaction's rollback)"
_REMOTE = "connects to another database server"
_RUNS_SQL = "runs SQL text of its own, which would bypass this check"
_ADMIN = "is a server administration function (WAL, replication, backups, statistics resets)"
_NOTIFY = "sends notifications to other sessions"

DENIED_FUNCTIONS: dict[str, str] = {
    "pg_sleep": _SLEEPS,
    "pg_sleep_for": _SLEEPS,
    "pg_sleep_until": _SLEEPS,
    "pg_terminate_backend": _SIGNALS,
    "pg_cancel_backend": _SIGNALS,
    "pg_signal_backend": _SIGNALS,
    "pg_reload_conf": _SIGNALS,
    "pg_rotate_logfile": _SIGNALS,
    "pg_promote": _SIGNALS,
    "pg_log_backend_memory_contexts": _SIGNALS,
    "pg_notify": _NOTIFY,
    "pg_read_file": _FILES,
    "pg_read_binary_file": _FILES,
    "pg_stat_file": _FILES,
    "pg_current_logfile": _FILES,
    "pg_logdir_ls": _FILES,  # adminpack
    "loread": _LARGE_OBJECTS,
    "lowrite": _LARGE_OBJECTS,
    "set_config": _SETTINGS,
    "set_limit": _SETTINGS,  # pg_trgm: sets pg_trgm.similarity_threshold for the session
    "nextval": _SEQUENCES,
    "setval": _SEQUENCES,
    "pg_switch_wal": _ADMIN,
    "pg_create_restore_point": _ADMIN,
    "pg_export_snapshot": _ADMIN,
    "txid_current": _ADMIN,
    "pg_current_xact_id": _ADMIN,
}
DENIED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("pg_sleep", _SLEEPS),
    ("pg_advisory_", _ADVISORY),
    ("pg_try_advisory_", _ADVISORY),
    ("pg_ls_", _FILES),
    ("pg_file_", _FILES),  # adminpack
    ("lo_", _LARGE_OBJECTS),
    ("dblink", _REMOTE),
    ("pg_stat_reset", _ADMIN),
    ("pg_replication_", _ADMIN),
    ("pg_create_", _ADMIN),  # replication slots
    ("pg_drop_replication", _ADMIN),
    ("pg_logical_", _ADMIN),
    ("pg_backup_", _ADMIN),
    ("pg_wal_replay_", _ADMIN),
)
# query_to_xml('select pg_sleep(60)', ...) and friends execute a query given as text.
DENIED_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_to_xml", _RUNS_SQL),
    ("_to_xmlschema", _RUNS_SQL),
    ("_to_xml_and_xmlschema", _RUNS_SQL),
)

# Statement node → what a person calls it.
_STATEMENT_WORDS: dict[str, str] = {
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "MergeStmt": "MERGE",
    "CreateStmt": "CREATE TABLE",
    "CreateTableAsStmt": "CREATE TABLE AS",
    "DropStmt": "DROP",
    "AlterTableStmt": "ALTER TABLE",
    "TruncateStmt": "TRUNCATE",
    "IndexStmt": "CREATE INDEX",
    "ViewStmt": "CREATE VIEW",
    "CreateFunctionStmt": "CREATE FUNCTION",
    "CreateSchemaStmt": "CREATE SCHEMA",
    "RenameStmt": "ALTER … RENAME",
    "GrantStmt": "GRANT/REVOKE",
    "GrantRoleStmt": "GRANT/REVOKE role",
    "CreateRoleStmt": "CREATE ROLE",
    "AlterRoleStmt": "ALTER ROLE",
    "AlterRoleSetStmt": "ALTER ROLE … SET",
    "VariableSetStmt": "SET",
    "VariableShowStmt": "SHOW",
    "CopyStmt": "COPY",
    "ExplainStmt": "EXPLAIN",
    "TransactionStmt": "a transaction command (BEGIN/COMMIT/ROLLBACK/SAVEPOINT)",
    "DoStmt": "DO",
    "CallStmt": "CALL",
    "PrepareStmt": "PREPARE",
    "ExecuteStmt": "EXECUTE",
    "DeallocateStmt": "DEALLOCATE",
    "LockStmt": "LOCK",
    "VacuumStmt": "VACUUM/ANALYZE",
    "ListenStmt": "LISTEN",
    "NotifyStmt": "NOTIFY",
    "UnlistenStmt": "UNLISTEN",
    "DeclareCursorStmt": "DECLARE CURSOR",
    "FetchStmt": "FETCH",
    "ClosePortalStmt": "CLOSE",
    "LoadStmt": "LOAD",
    "DiscardStmt": "DISCARD",
    "CheckPointStmt": "CHECKPOINT",
    "RefreshMatViewStmt": "REFRESH MATERIALIZED VIEW",
    "ReindexStmt": "REINDEX",
    "ClusterStmt": "CLUSTER",
    "CreateExtensionStmt": "CREATE EXTENSION",
    "AlterSystemStmt": "ALTER SYSTEM",
    "CommentStmt": "COMMENT",
    "SecLabelStmt": "SECURITY LABEL",
    "CreateSeqStmt": "CREATE SEQUENCE",
    "AlterSeqStmt": "ALTER SEQUENCE",
    "ReturnStmt": "RETURN",
    "PLAssignStmt": "an assignment",
    "CreatedbStmt": "CREATE DATABASE",
    "DropdbStmt": "DROP DATABASE",
    "ConstraintsSetStmt": "SET CONSTRAINTS",
    "CreateTrigStmt": "CREATE TRIGGER",
}
_WRITES = {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"}


@dataclass(frozen=True)
class CheckedQuery:
    """A query that passed: the statement's own text (no trailing semicolon) and its parameter count."""

    text: str
    param_count: int


def denial_reason(function_name: str) -> str | None:
    """Why calling `function_name` (unqualified, any case) is refused; None when it is allowed."""
    name = function_name.lower()
    if name in DENIED_FUNCTIONS:
        return DENIED_FUNCTIONS[name]
    for prefix, reason in DENIED_PREFIXES:
        if name.startswith(prefix):
            return reason
    for suffix, reason in DENIED_SUFFIXES:
        if name.endswith(suffix):
            return reason
    return None


class _Inspector(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.problem: QueryRejected | None = None
        self.max_param = 0

    def _refuse(self, reason: str, rule: str) -> None:
        if self.problem is None:
            self.problem = QueryRejected(reason, rule)

    def visit(self, ancestors: Any, node: Any) -> None:
        kind = type(node).__name__
        if kind in _WRITES:
            self._refuse(
                f"{_STATEMENT_WORDS[kind]} inside a SELECT (a data-modifying WITH) writes data; "
                "only reads are allowed",
                "data_modifying",
            )
        elif isinstance(node, ast.FuncCall):
            parts = [getattr(p, "sval", "") for p in node.funcname or ()]
            name = parts[-1] if parts else ""
            reason = denial_reason(name)
            if reason:
                shown = ".".join(parts)
                self._refuse(f"function {shown}() is not allowed: it {reason}", "denied_function")
        elif isinstance(node, ast.ParamRef):
            self.max_param = max(self.max_param, node.number or 0)
        elif isinstance(node, ast.SelectStmt):
            if node.intoClause is not None:
                self._refuse("SELECT … INTO creates a table; only reads are allowed", "select_into")
            if node.lockingClause:
                self._refuse("FOR UPDATE/SHARE takes row locks; only plain reads are allowed", "row_locks")
        elif isinstance(node, ast.RangeVar) and node.relpersistence == "t":
            self._refuse("temporary tables are not available", "select_into")


def check_query(query: str, param_count: int = 0) -> CheckedQuery:
    """Return the checked query, or raise QueryRejected with a precise reason and rule."""
    if not isinstance(query, str) or not query.strip():
        raise QueryRejected("the query is empty", "empty")
    if "\x00" in query:
        raise QueryRejected("the query contains a NUL character", "parse_error")
    try:
        statements = parse_sql(query)
    except ParseError as exc:
        raise QueryRejected(f"not valid SQL: {exc}", "parse_error") from exc
    if len(statements) == 0:
        raise QueryRejected("the query holds no statement (only comments or semicolons)", "empty")
    if len(statements) > 1:
        kinds = ", ".join(_word(s.stmt) for s in statements)
        raise QueryRejected(
            f"exactly one statement is allowed, found {len(statements)} ({kinds})", "not_one_statement"
        )
    stmt = statements[0].stmt
    if not isinstance(stmt, ast.SelectStmt):
        raise QueryRejected(f"only SELECT (or WITH … SELECT) is allowed, this is {_word(stmt)}", "not_select")
    inspector = _Inspector()
    inspector(statements)
    if inspector.problem is not None:
        raise inspector.problem
    if inspector.max_param > param_count:
        raise QueryRejected(
            f"the query uses ${inspector.max_param} but {param_count} parameter value(s) were given",
            "parameters",
        )
    if param_count > inspector.max_param:
        used = f"only $1..${inspector.max_param}" if inspector.max_param else "no parameters"
        raise QueryRejected(
            f"{param_count} parameter value(s) were given but the query uses {used}", "parameters"
        )
    raw = statements[0]
    start = raw.stmt_location or 0
    text = query[start : start + raw.stmt_len] if raw.stmt_len else query[start:]
    return CheckedQuery(text=text.strip(), param_count=param_count)


def wrap_with_cap(checked: CheckedQuery) -> str:
    """`SELECT * FROM (<query>) q LIMIT $<n+1>`: the caller binds the row cap + 1 as the last parameter.

    Newlines around the query end any trailing `--` comment inside the parentheses; the wrapped text is
    parsed again and must be one SELECT over exactly that subquery.
    """
    cap_param = checked.param_count + 1
    wrapped = f"SELECT * FROM (\n{checked.text}\n) AS q LIMIT ${cap_param}"
    try:
        statements = parse_sql(wrapped)
    except ParseError as exc:
        raise QueryRejected(
            f"the query cannot be used as a subquery: {exc.args[0] if exc.args else exc}", "not_a_subquery"
        ) from exc
    stmt = statements[0].stmt if len(statements) == 1 else None
    sources = (stmt.fromClause or ()) if isinstance(stmt, ast.SelectStmt) else ()
    ok = (
        isinstance(stmt, ast.SelectStmt)
        and len(sources) == 1
        and isinstance(sources[0], ast.RangeSubselect)
        and isinstance(stmt.limitCount, ast.ParamRef)
        and stmt.limitCount.number == cap_param
    )
    if not ok:
        raise QueryRejected("the query cannot be used as a subquery", "not_a_subquery")
    return wrapped


def _word(stmt: object) -> str:
    kind = type(stmt).__name__
    if kind == "SelectStmt":
        return "SELECT"
    if kind == "VariableSetStmt" and getattr(stmt, "name", None) in ("role", "session_authorization"):
        return f"SET {stmt.name.upper()}"  # type: ignore[attr-defined]  # a VariableSetStmt, known by its class name
    return _STATEMENT_WORDS.get(kind, kind.removesuffix("Stmt").upper() or kind)
