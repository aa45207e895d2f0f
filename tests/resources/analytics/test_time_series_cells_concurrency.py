"""analytics.time_series_cells stays exact when two transactions write at the same time.

Each trigger computes a distinct-entity delta by reading the points (and the entity's industry); two
transactions that each read before the other commits would both count the same entity. The maintenance
takes a transaction-scoped advisory lock before it reads, so the second waits for the first to commit and
then reads a fresh snapshot (READ COMMITTED). Each test holds the first transaction open, starts the
second in a thread, waits until it is blocked on that lock (or done, which is the bug), then commits both
and compares the summary with a recount from the points.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from resources.ingest.merge_sql import SUMMARY_LOCK
from resources.schema.migrate import MIGRATIONS_DIR
from tests.resources.analytics.test_time_series_cells import _apply, _expected, _insert_entity, _summary

pytestmark = [pytest.mark.integration]

JAN_5 = datetime(2024, 1, 5, tzinfo=UTC)
JAN_20 = datetime(2024, 1, 20, tzinfo=UTC)
FEB_10 = datetime(2024, 2, 10, tzinfo=UTC)
MIGRATION = MIGRATIONS_DIR / "0005_time_series_cells.sql"


def _points(*points: tuple[str, datetime, int]) -> tuple:
    return ("upsert", [((cid, "monthly_revenue", at), Decimal(value)) for cid, at, value in points])


def _wait_blocked_or_done(owner: psycopg.Connection, pid: int, thread: threading.Thread) -> str:
    """'blocked' once `pid` waits on a lock, 'done' if the thread finished first (it did not wait)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not thread.is_alive():
            return "done"
        waiting = owner.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        if waiting and waiting[0] == "Lock":
            return "blocked"
        time.sleep(0.02)
    raise AssertionError("the second transaction neither finished nor waited on a lock")


def _race(
    db, first: Callable[[psycopg.Connection], None], second: Callable[[psycopg.Connection], None]
) -> str:
    """`first` runs and stays uncommitted while `second` runs (and commits) in another thread; then
    `first` commits. Returns whether `second` had to wait."""
    errors: list[BaseException] = []
    with (
        psycopg.connect(db.writer_url) as one,
        psycopg.connect(db.writer_url) as two,
        psycopg.connect(db.owner_url, autocommit=True) as owner,
    ):
        first(one)

        def run_second() -> None:
            try:
                second(two)
                two.commit()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
                errors.append(exc)

        thread = threading.Thread(target=run_second)
        thread.start()
        state = _wait_blocked_or_done(owner, two.info.backend_pid, thread)
        one.commit()
        thread.join(timeout=30)
    assert not errors, errors
    return state


def _setup(db, industry: str, *points: tuple[str, datetime, int]) -> None:
    with psycopg.connect(db.writer_url) as conn:
        _insert_entity(conn, "crm_A", industry)
        if points:
            _apply(conn, _points(*points))


def test_two_transactions_adding_the_same_entity_to_a_cell_count_it_once(db):
    _setup(db, "Retail")
    state = _race(
        db,
        lambda c: _apply(c, _points(("crm_A", JAN_5, 10))),
        lambda c: _apply(c, _points(("crm_A", JAN_20, 5))),
    )
    with psycopg.connect(db.owner_url) as owner:
        assert _summary(owner) == _expected(owner)
        january = owner.execute("""SELECT entities, total FROM analytics.time_series_cells
                                   WHERE unit = 'month' AND period = '2024-01-01'""").fetchone()
    assert january == (1, Decimal(15))
    assert state == "blocked"


def test_two_transactions_removing_the_same_entity_from_a_cell_count_it_once(db):
    _setup(db, "Retail", ("crm_A", JAN_5, 10), ("crm_A", JAN_20, 5))
    state = _race(
        db,
        lambda c: _apply(c, ("delete_points", [("crm_A", "monthly_revenue", JAN_5)])),
        lambda c: _apply(c, ("delete_points", [("crm_A", "monthly_revenue", JAN_20)])),
    )
    with psycopg.connect(db.owner_url) as owner:
        assert _summary(owner) == _expected(owner) == {}
    assert state == "blocked"


@pytest.mark.parametrize("industry_first", [True, False], ids=["industry-change-first", "points-first"])
def test_an_industry_change_concurrent_with_new_points_moves_them_all(db, industry_first):
    _setup(db, "Retail", ("crm_A", JAN_5, 10))

    def change(conn: psycopg.Connection) -> None:
        _apply(conn, ("industry", "crm_A", "Energy"))

    def add(conn: psycopg.Connection) -> None:
        _apply(conn, _points(("crm_A", FEB_10, 7)))

    state = _race(db, change, add) if industry_first else _race(db, add, change)
    with psycopg.connect(db.owner_url) as owner:
        assert _summary(owner) == _expected(owner)
        industries = {
            i for (i,) in owner.execute("SELECT DISTINCT industry FROM analytics.time_series_cells")
        }
    assert industries == {"Energy"}
    assert state == "blocked"


def test_a_write_to_the_points_outside_read_committed_is_refused(db):
    """Under REPEATABLE READ the statements after the lock would keep the transaction's first snapshot
    and miss what was committed meanwhile: refused rather than counted wrong."""
    _setup(db, "Retail")
    with psycopg.connect(db.writer_url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="READ COMMITTED"):
            _apply(conn, _points(("crm_A", JAN_5, 10)))


def test_the_loader_documents_the_lock_key_the_triggers_take():
    key = re.search(r"hashtext\('([^']+)'\)", SUMMARY_LOCK).group(1)
    assert f"hashtext('{key}')" in MIGRATION.read_text()
