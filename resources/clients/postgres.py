"""PostgreSQL connection strings (psycopg 3's conninfo) and one-value reads. Dagster-free: the CLI and the dev stack
use it."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import Params
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def scalar(
    executor: psycopg.Connection[Any] | psycopg.Cursor[Any],
    query: str | sql.SQL | sql.Composed,
    params: Params | None = None,
) -> Any:
    """The first column of the one row a statement returns (an aggregate, EXISTS, a lock function)."""
    row = executor.execute(query, params).fetchone()
    if row is None:
        raise LookupError(f"the statement returned no row: {query!r}"[:300])
    return row[0]


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    return make_conninfo(url, dbname=dbname)


def database_name(url: str) -> str:
    return str(conninfo_to_dict(url).get("dbname") or "postgres")


def redact(url: str) -> str:
    """A URL safe to print: the password replaced."""
    params = conninfo_to_dict(url)
    if params.get("password"):
        params["password"] = "***"
    host = params.get("host", "localhost")
    port = params.get("port", "5432")
    user = params.get("user", "")
    pw = ":***" if "password" in params else ""
    return f"postgresql://{user}{pw}@{host}:{port}/{params.get('dbname', '')}"
