"""The stack's PostgreSQL: the embedded server when DATABASE_URL names this machine (started, and every
URL not given explicitly pointed at it), else DATABASE_URL's server; then the `canonical` and `dagster`
databases, the migrations, the local logins, and a connection check of every URL."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from pipeline_defs.devstack.endpoints import embedded_postgres
from pipeline_defs.devstack.errors import DevStackError
from pipeline_defs.devstack.postgres import (
    LocalPostgres,
    ensure_database,
    grant_local_logins,
    libpq_url,
    pg_host_port,
    url_on_port,
)
from pipeline_defs.devstack.processes import display_path
from resources.settings import Settings


def embedded_server(settings: Settings, local_dir: Path) -> LocalPostgres | None:
    """The embedded server DATABASE_URL points at (data in `<local_dir>/postgres`); None for another host."""
    if not embedded_postgres(settings):
        return None
    _, port = pg_host_port(settings.database_url)
    return LocalPostgres(local_dir / "postgres", port=port, host="127.0.0.1")


def start_postgres(settings: Settings, pg: LocalPostgres | None, echo: Callable[[str], None]) -> Settings:
    """Start `pg` (the embedded server, when there is one), prepare the databases; the settings with
    every URL not given explicitly pointed at the embedded server."""
    from resources.clients.postgres import database_name, redact, with_database
    from resources.schema.migrate import apply_migrations

    s = settings
    if pg is not None:
        fresh = not pg.initialised()
        was_running = pg.running()
        verb = (
            "reusing the server already running from"
            if was_running
            else ("creating a new cluster in" if fresh else "starting")
        )
        echo(f"• PostgreSQL: {verb} {display_path(pg.data_dir)} (port {pg.port})")
        t = time.monotonic()
        try:
            pg.start(timeout=120)
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            raise DevStackError(str(exc).strip()) from exc
        echo(f"  ready in {time.monotonic() - t:.1f}s")
        update: dict[str, str] = {}
        if "admin_database_url" not in s.model_fields_set:
            update["admin_database_url"] = pg.admin_url
        if "dagster_database_url" not in s.model_fields_set:
            update["dagster_database_url"] = pg.url("dagster")
        if "readonly_database_url" not in s.model_fields_set:
            update["readonly_database_url"] = url_on_port(s.readonly_database_url, pg.port)
        s = s.model_copy(update=update)
    else:
        echo(f"• PostgreSQL: using {redact(s.database_url)} (DATABASE_URL; no embedded server)")

    admin = s.admin_database_url
    canonical_db = database_name(s.database_url)
    dagster_db = database_name(libpq_url(s.dagster_database_url))
    try:
        for name in dict.fromkeys([canonical_db, dagster_db]):
            if ensure_database(admin, name):
                echo(f"  created database {name}")
        applied = apply_migrations(with_database(admin, canonical_db))
        echo(f"  migrations: {'applied ' + ', '.join(applied) if applied else 'up to date'}")
        if pg is not None:
            grant_local_logins(with_database(admin, canonical_db), [s.database_url, s.readonly_database_url])
    except psycopg.OperationalError as exc:
        raise DevStackError(
            f"cannot connect as admin to {redact(admin)}: {str(exc).strip().splitlines()[0]} "
            "(set ADMIN_DATABASE_URL)"
        ) from exc
    for label, url in (
        ("writer", s.database_url),
        ("read-only", s.readonly_database_url),
        ("dagster", libpq_url(s.dagster_database_url)),
    ):
        try:
            with psycopg.connect(url, connect_timeout=10):
                pass
        except psycopg.OperationalError as exc:
            raise DevStackError(
                f"the {label} URL {redact(url)} does not connect: {str(exc).strip().splitlines()[0]}"
            ) from exc
    return s
