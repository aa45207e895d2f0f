"""Database URLs from Secrets Manager secrets (the RDS secret JSON: username, password, host, port,
dbname). Dagster-free: the Dagster image's entrypoint and the API Lambda's cold start share it."""

from __future__ import annotations

import json
from collections.abc import Callable, MutableMapping
from typing import Any
from urllib.parse import quote

# URL variable -> (variable naming the secret's ARN, database when the secret names none)
LAMBDA_SECRET_ARNS = {
    "DATABASE_URL": ("DATABASE_SECRET_ARN", "canonical"),
    "READONLY_DATABASE_URL": ("READONLY_DATABASE_SECRET_ARN", "canonical"),
}


def url_from_secret(
    secret: dict[str, Any], default_db: str, host: str | None = None, ca_bundle: str | None = None
) -> str:
    """A libpq URL; `host` (e.g. an RDS Proxy endpoint) replaces the secret's own host. With `ca_bundle`
    (the RDS CA bundle the Dagster image carries) TLS verifies the server's certificate and name."""
    user = quote(str(secret["username"]), safe="")
    password = quote(str(secret["password"]), safe="")
    port = secret.get("port", 5432)
    dbname = quote(str(secret.get("dbname") or default_db), safe="")
    # RDS enforces TLS (rds.force_ssl=1); without a CA bundle `require` still encrypts.
    tls = f"sslmode=verify-full&sslrootcert={quote(ca_bundle, safe='/')}" if ca_bundle else "sslmode=require"
    return f"postgresql://{user}:{password}@{host or secret['host']}:{port}/{dbname}?{tls}"


def database_urls_from_secret_arns(
    environ: MutableMapping[str, str], get_secret: Callable[[str], str]
) -> list[str]:
    """Fill DATABASE_URL / READONLY_DATABASE_URL from the secrets their *_SECRET_ARN variables name,
    through DATABASE_PROXY_ENDPOINT when set; a URL already set is left alone. Returns what it set."""
    done = []
    for url_var, (arn_var, default_db) in LAMBDA_SECRET_ARNS.items():
        arn = environ.get(arn_var)
        if arn and not environ.get(url_var):
            secret = json.loads(get_secret(arn))
            environ[url_var] = url_from_secret(
                secret,
                environ.get("DATABASE_NAME") or default_db,
                environ.get("DATABASE_PROXY_ENDPOINT") or None,
            )
            done.append(url_var)
    return done
