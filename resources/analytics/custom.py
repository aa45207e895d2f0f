"""custom_complex_query: one caller-written SELECT, checked, capped, bound.

The text is checked by guard.check_query (one SELECT/WITH statement, no writes, no denied functions),
wrapped as `SELECT * FROM (<query>) q LIMIT $n` with the cap + 1 bound as the last parameter (one row
more than the cap tells the caller the result was truncated, without fetching the rest), and run with
PostgreSQL's native $1, $2 … placeholders (psycopg's RawCursor: the text is sent as written, nothing is
interpolated on the client; the extended protocol also refuses a second statement on its own).
"""

from __future__ import annotations

import psycopg

from resources.analytics.params import CustomQueryParams
from resources.analytics.result import Table


def _checked_and_capped(query: str, n_params: int) -> str:
    """The query guard, imported on first use: its parser (pglast) would otherwise cost every process
    start-up (each run worker, each API cold start) a tenth of a second, and only this operation needs it."""
    from resources.analytics.guard import check_query, wrap_with_cap

    return wrap_with_cap(check_query(query, n_params))


def custom_complex_query(conn: psycopg.Connection, p: CustomQueryParams, *, max_rows: int) -> Table:
    """One SELECT (or WITH … SELECT) over canonical.*, with $1, $2 … bound to params; at most max_rows
    rows, truncated = true when there were more."""
    wrapped = _checked_and_capped(p.query, len(p.params))
    with psycopg.RawCursor(conn) as cur:
        cur.execute(wrapped, [*p.params, max_rows + 1])
        assert cur.description is not None
        columns = [d.name for d in cur.description]
        rows = cur.fetchall()
    return Table(columns, [tuple(r) for r in rows[:max_rows]], len(rows) > max_rows)


def precheck(p: CustomQueryParams) -> None:
    """Refuse a query before any connection is made (QueryRejected)."""
    _checked_and_capped(p.query, len(p.params))
