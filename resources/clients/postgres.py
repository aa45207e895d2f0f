"""PostgreSQL connection strings (psycopg 3's conninfo). Dagster-free: the CLI and the dev stack use it."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict, make_conninfo


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
