"""Versioned schema migrations: `resources/schema/migrations/NNNN_name.sql`, each applied once, in order,
in its own transaction, recorded with its checksum in `public.schema_migrations`.

Run as the database owner (`pipeline db migrate`). An advisory lock makes concurrent callers
(two `make dev`s, a test fixture and the CLI) wait rather than apply a file twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = 727_001  # arbitrary, fixed: identifies "schema migration" among advisory locks


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


class MigrationError(RuntimeError):
    """A migration already applied differs from the file on disk, or a file failed to apply."""


def available_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    return [Migration(p.stem, p) for p in sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql"))]


def apply_migrations(owner_url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every pending migration; return the versions applied now."""
    applied_now: list[str] = []
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS public.schema_migrations (
                       version text PRIMARY KEY,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = dict(conn.execute("SELECT version, checksum FROM public.schema_migrations").fetchall())
            for m in available_migrations(directory):
                if m.version in done:
                    if done[m.version] != m.checksum:
                        raise MigrationError(
                            f"migration {m.version} was applied with checksum {done[m.version][:12]} but the "
                            f"file now has {m.checksum[:12]}: add a new migration instead of editing one"
                        )
                    continue
                try:
                    with conn.transaction():
                        conn.execute(m.sql)
                        conn.execute(
                            "INSERT INTO public.schema_migrations (version, checksum) VALUES (%s, %s)",
                            (m.version, m.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {m.version} failed: {exc}") from exc
                applied_now.append(m.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
