"""A migration's `-- after-commit:` statements (VACUUM, which cannot run in a transaction) run once the
migration has committed, and a failing one says the migration itself is applied."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from resources.migrate import MigrationError, apply_migrations

pytestmark = [pytest.mark.integration]


@pytest.fixture
def fresh_db(pg) -> str:
    name = f"migrate_{uuid.uuid4().hex[:8]}"
    pg.server.ensure_database(name)
    return pg.server.url(name)


def _write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(text, encoding="utf-8")


def test_after_commit_statements_run_outside_the_migrations_transaction(fresh_db, tmp_path):
    _write(tmp_path, "0001_table.sql", "CREATE TABLE t (x int);\nINSERT INTO t SELECT generate_series(1, 1000);\n"
                                       "-- after-commit: VACUUM (ANALYZE) t\n")
    assert apply_migrations(fresh_db, tmp_path) == ["0001_table"]
    with psycopg.connect(fresh_db) as conn:
        # ANALYZE's statistics are there: VACUUM ran (inside the migration's transaction it would have failed)
        assert conn.execute("SELECT count(*) FROM pg_stats WHERE tablename = 't'").fetchone() == (1,)
    assert apply_migrations(fresh_db, tmp_path) == []  # applied once: the statement does not run again


def test_a_failing_after_commit_statement_leaves_the_migration_recorded(fresh_db, tmp_path):
    _write(tmp_path, "0001_table.sql", "CREATE TABLE t (x int);\n-- after-commit: VACUUM no_such_table\n")
    with pytest.raises(MigrationError, match="0001_table is applied, but its after-commit statement failed"):
        apply_migrations(fresh_db, tmp_path)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT version FROM public.schema_migrations").fetchall() == [("0001_table",)]
