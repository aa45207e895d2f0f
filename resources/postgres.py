"""PostgreSQL connections (psycopg 3). Dagster-free: the REST app and the CLI use it too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def connect(url: str, *, autocommit: bool = False, application_name: str = "canonical-pipeline") -> psycopg.Connection:
    return psycopg.connect(url, autocommit=autocommit, application_name=application_name)


@contextmanager
def connection(url: str, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    with connect(url, autocommit=autocommit) as conn:
        yield conn


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    return make_conninfo(url, dbname=dbname)


def database_name(url: str) -> str:
    return conninfo_to_dict(url).get("dbname") or "postgres"


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
