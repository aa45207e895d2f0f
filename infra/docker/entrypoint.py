"""Container entrypoint of the Dagster image: database secrets in, connection URLs out, then exec.

ECS injects each database secret whole (the JSON Secrets Manager holds: username, password, host,
port, dbname) into a `*_SECRET` variable. The code reads URLs (resources/settings.py), so this turns
each secret into the URL variable the settings expect, removes the JSON from the environment and
replaces itself with the container's command. A variable already set is left alone.
"""

from __future__ import annotations

import json
import os
import sys

from resources.clients.secrets import url_from_secret

# secret variable -> (URL variable, database when the secret names none)
SECRET_URLS = {
    "DATABASE_SECRET": ("DATABASE_URL", "canonical"),
    "READONLY_DATABASE_SECRET": ("READONLY_DATABASE_URL", "canonical"),
    "DAGSTER_DATABASE_SECRET": ("DAGSTER_DATABASE_URL", "dagster"),
    "ADMIN_DATABASE_SECRET": ("ADMIN_DATABASE_URL", "postgres"),
}


def compose(environ: dict[str, str]) -> dict[str, str]:
    """The environment to exec with: URLs added, secret JSON removed. The image carries the RDS CA bundle
    (DATABASE_CA_BUNDLE, fetched when it is built), so the URLs verify the server (`verify-full`)."""
    env = dict(environ)
    ca_bundle = env.get("DATABASE_CA_BUNDLE") or None
    for secret_var, (url_var, default_db) in SECRET_URLS.items():
        raw = env.pop(secret_var, None)
        if raw and not env.get(url_var):
            env[url_var] = url_from_secret(json.loads(raw), default_db, ca_bundle=ca_bundle)
    return env


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("entrypoint: no command given")
    os.execvpe(argv[0], argv, compose(dict(os.environ)))


if __name__ == "__main__":
    main(sys.argv[1:])
