"""The migration checksum covers the SQL, not its comments: a comment corrected in an applied migration
still verifies on databases that applied the earlier text (their rows are rewritten to the normalised
checksum), while any change to the statements is refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
import pytest

from resources.schema import migrate
from resources.schema.migrate import Migration, MigrationError, apply_migrations, available_migrations
from tests.support.postgres import PgCluster

OLD_TEXT = "-- The widget table: 2.3 s -> 0.1 s.\n\nCREATE TABLE widgets (id int);  -- kept\n"
COMMENT_EDIT = (
    "-- The widget table: what the report reads.\n--\nCREATE TABLE widgets (id int);  -- kept   \n\n"
)
SQL_EDIT = "-- The widget table: what the report reads.\nCREATE TABLE widgets (id bigint);  -- kept\n"


def _raw(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_normalised_sql_drops_blank_lines_and_whole_line_comments_only() -> None:
    assert (
        migrate.normalised_sql(OLD_TEXT)
        == migrate.normalised_sql(COMMENT_EDIT)
        == "CREATE TABLE widgets (id int);  -- kept\n"
    )
    assert migrate.normalised_sql(SQL_EDIT) != migrate.normalised_sql(OLD_TEXT)
    # A comment after code is part of the line it ends: changing it changes the checksum.
    assert migrate.normalised_sql("SELECT 1; -- a\n") != migrate.normalised_sql("SELECT 1; -- b\n")


@pytest.fixture
def fresh_db(pg: PgCluster, request: pytest.FixtureRequest) -> str:
    name = f"migrate_{request.node.name.lower()[:40]}"
    with psycopg.connect(pg.server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    pg.server.ensure_database(name)
    return pg.server.url(name)


def _recorded(url: str, version: str) -> str:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT checksum FROM public.schema_migrations WHERE version = %s", (version,)
        ).fetchone()[0]


def _migrated_by_the_old_runner(url: str, directory: Path) -> None:
    """Apply, then record the raw checksum, as databases migrated before normalisation hold it."""
    apply_migrations(url, directory)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE public.schema_migrations SET checksum = %s WHERE version = '0001_widgets'",
            (_raw(OLD_TEXT),),
        )


@pytest.mark.integration
def test_comment_edit_verifies_for_a_database_that_applied_the_old_text(
    fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "0001_widgets.sql"
    path.write_text(OLD_TEXT, encoding="utf-8")
    _migrated_by_the_old_runner(fresh_db, tmp_path)

    path.write_text(COMMENT_EDIT, encoding="utf-8")
    # Without the old text's raw checksum listed, nothing proves the database applied these statements.
    monkeypatch.setattr(migrate, "_EARLIER_RAW_CHECKSUMS", {})
    with pytest.raises(MigrationError, match="0001_widgets"):
        apply_migrations(fresh_db, tmp_path)

    monkeypatch.setattr(migrate, "_EARLIER_RAW_CHECKSUMS", {"0001_widgets": frozenset({_raw(OLD_TEXT)})})
    assert apply_migrations(fresh_db, tmp_path) == []
    assert _recorded(fresh_db, "0001_widgets") == Migration("0001_widgets", path).checksum  # rewritten once
    assert apply_migrations(fresh_db, tmp_path) == []

    path.write_text(SQL_EDIT, encoding="utf-8")
    with pytest.raises(MigrationError, match="add a new migration instead"):
        apply_migrations(fresh_db, tmp_path)


@pytest.mark.integration
def test_a_real_sql_change_fails_whatever_was_recorded(fresh_db: str, tmp_path: Path) -> None:
    path = tmp_path / "0001_widgets.sql"
    path.write_text(OLD_TEXT, encoding="utf-8")
    apply_migrations(fresh_db, tmp_path)  # recorded normalised
    path.write_text(SQL_EDIT, encoding="utf-8")
    with pytest.raises(MigrationError):
        apply_migrations(fresh_db, tmp_path)


@pytest.mark.integration
def test_the_project_migrations_verify_with_the_checksums_older_runners_recorded(pg: PgCluster) -> None:
    migrations = available_migrations()
    listed = max(len(migrate._EARLIER_RAW_CHECKSUMS.get(m.version, ())) for m in migrations)
    for i in range(listed + 1):
        with psycopg.connect(pg.owner_url, autocommit=True) as conn:
            for m in migrations:
                # The file's raw bytes as they are now, then each earlier text listed.
                recorded = [m.raw_checksum, *sorted(migrate._EARLIER_RAW_CHECKSUMS.get(m.version, ()))]
                conn.execute(
                    "UPDATE public.schema_migrations SET checksum = %s WHERE version = %s",
                    (recorded[min(i, len(recorded) - 1)], m.version),
                )
        assert apply_migrations(pg.owner_url) == []
        for m in migrations:
            assert _recorded(pg.owner_url, m.version) == m.checksum
