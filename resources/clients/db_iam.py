"""Connecting to PostgreSQL through RDS Proxy with IAM authentication (the API Lambda on AWS).

No password is stored anywhere on this path: each new connection presents a fresh IAM auth token
(valid 15 minutes, signed locally with the function's role credentials, no network call), and the
proxy reaches the database with IAM as well (end-to-end IAM auth), so rotating the database secrets
can never lock a warm function out. TLS verifies the proxy's certificate against the system's trust
store (`sslrootcert=system`: RDS Proxy presents a publicly trusted certificate). Dagster-free.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict

# URL variable -> the variable naming the role it connects as.
IAM_ROLES = {"DATABASE_URL": "DATABASE_USER", "READONLY_DATABASE_URL": "READONLY_DATABASE_USER"}


def iam_database_urls(environ: Mapping[str, str]) -> dict[str, str]:
    """DATABASE_URL / READONLY_DATABASE_URL for IAM auth at DATABASE_PROXY_ENDPOINT: user, host, port and
    database, no password; TLS that verifies the server."""
    host = environ["DATABASE_PROXY_ENDPOINT"]
    port = environ.get("DATABASE_PORT") or "5432"
    dbname = quote(environ.get("DATABASE_NAME") or "canonical", safe="")
    return {
        url_var: f"postgresql://{quote(environ[user_var], safe='')}@{host}:{port}/{dbname}"
        "?sslmode=verify-full&sslrootcert=system"
        for url_var, user_var in IAM_ROLES.items()
        if environ.get(user_var)
    }


def iam_auth_kwargs(
    url: str, rds_client: Any, base: Mapping[str, Any] | None = None
) -> Callable[[], dict[str, Any]]:
    """Connection keyword arguments for a psycopg pool, evaluated for every new connection: `base` plus a
    fresh token for the URL's host, port and user."""
    params = conninfo_to_dict(url)
    host, user = params["host"], params["user"]
    port = int(params.get("port") or 5432)

    def kwargs() -> dict[str, Any]:
        token = rds_client.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user)
        return {**(base or {}), "password": token}

    return kwargs
