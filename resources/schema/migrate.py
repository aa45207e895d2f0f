"""Versioned schema migrations: `resources/schema/migrations/NNNN_name.sql`, each applied once, in order,
in its own transaction, recorded with its checksum in `public.schema_migrations`.

The checksum covers what a migration does, not how it is explained: it is taken over the file with its
blank lines, whole-line `--` comments and trailing whitespace left out (`normalised_sql`), so a comment
can be corrected in a file that databases have already applied. Any other change to an applied file is
refused: add a new migration instead. (A comment after code on the same line still counts.)

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

# Databases migrated before the checksum was normalised recorded sha256 of the file's raw bytes. Such a
# row is accepted when it is the raw checksum of the file as it is now, or of an earlier text of the file
# listed here, and is then rewritten to the normalised checksum. An earlier text's raw checksum cannot be
# computed once the file is edited, so it is listed when the file's comments change. Every text listed
# differs from today's file in comments only (same normalised SQL); texts that differed in SQL are not
# listed, and a database that applied one is refused as before.
_EARLIER_RAW_CHECKSUMS: dict[str, frozenset[str]] = {
    "0001_canonical_schema": frozenset(
        {
            "78d7e9c1a103942523570a0041ee43a8fed8bfab77d9ee8b2ab69cf190952a22",  # 2026-12-06, before its comments said why only
        }
    ),
    "0002_analytics": frozenset(
        {
            "bee4213a583c3cc508b38a8302903473f4f18e9cc04b15297a878a3f48fcae91",  # 2026-11-26
            "e014e3b1d832ce1ffbc10d123ebde11c0f24e4dd1ee333fa3749a04cd379ac84",  # 2026-12-06, before its comments said why only
        }
    ),
    "0005_time_series_cells": frozenset(
        {
            "4c636cb4f75d2d2669df0b420e7efe44d5d3f2af5b715a570fcc43166bf7ca69",  # 2026-12-02
            "e687c9df2be8ca8806eaa19b015946173315b241f5c81a8089707d046e61411b",  # 2026-12-02, under resources/migrations/
            "98df417c3024311a9e103894ffd6bc48b94d79bf058593fc4123e5718a6f605d",  # 2026-12-06, before its comments said why only
        }
    ),
    "0006_integrity_lookup_indexes": frozenset(
        {
            "aa65116f9ea445d29dcd2032d0027833c8026e28b81b546c07486901ab4fabcb",  # 2026-12-02
            "224e081c6bafd6c4dcdbe4ad971d45bd95b2f6a37e9a5a97a47a855d4a21b03e",  # 2026-12-06, before its comments said why only
        }
    ),
    "0007_analytics_projection": frozenset(
        {
            "c62e44766c2753d6843acd72ab67fdcdfca2e666d30052e781336ca7314ce6c1",  # 2026-12-02, with an after-commit VACUUM note
            "e8fc4a55cc83eed3d9734e26f5d25e2351f09d6090983f3f8b9a5781ec023ecf",  # 2026-12-02
            "f911d99f5fb95e400ace83b761233edbc29c8f647cd05caa58a45be4e9ddcf21",  # 2026-12-06, before its comments said why only
        }
    ),
    "0008_drop_low_cardinality_indexes": frozenset(
        {
            "8c90fc804d750c70761aa9e360e14848d4522dfe7fc80fdf8e1e13d94d1ab570",  # 2026-12-06, before its comments said why only
        }
    ),
}


def normalised_sql(text: str) -> str:
    """The statements of a migration without its explanation: blank lines and lines that are only a
    `--` comment left out, trailing whitespace stripped."""
    kept = (line.rstrip() for line in text.splitlines())
    return "".join(f"{line}\n" for line in kept if line and not line.lstrip().startswith("--"))


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        """What `schema_migrations` records: sha256 of the normalised SQL."""
        return hashlib.sha256(normalised_sql(self.sql).encode("utf-8")).hexdigest()

    @property
    def raw_checksum(self) -> str:
        """sha256 of the file's bytes: what databases migrated before normalisation recorded."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def accepts(self, recorded: str) -> bool:
        """Whether a database that recorded `recorded` applied this migration's statements."""
        return (
            recorded == self.checksum
            or recorded == self.raw_checksum
            or recorded in _EARLIER_RAW_CHECKSUMS.get(self.version, frozenset())
        )


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
            done: dict[str, str] = dict(
                conn.execute("SELECT version, checksum FROM public.schema_migrations").fetchall()
            )
            for m in available_migrations(directory):
                if m.version in done:
                    if not m.accepts(done[m.version]):
                        raise MigrationError(
                            f"migration {m.version} was applied with checksum {done[m.version][:12]} but the "
                            f"file now has {m.checksum[:12]}: add a new migration instead of editing one"
                        )
                    if done[m.version] != m.checksum:
                        conn.execute(
                            "UPDATE public.schema_migrations SET checksum = %s WHERE version = %s",
                            (m.checksum, m.version),
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
