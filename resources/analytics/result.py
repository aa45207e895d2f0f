"""The value every operation returns, and the helpers the operations share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from resources.analytics.values import jsonable


@dataclass(frozen=True)
class Table:
    """What an operation function hands back to the runner."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False
    # What a reader must know to read the rows right (e.g. why there are none); empty for most answers.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Result:
    operation: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    row_count: int  # len(rows): rows returned (after the cap)
    truncated: bool  # True when the operation had more rows than the cap
    elapsed_s: float  # database work, transaction included
    parameters: dict[str, Any] = field(default_factory=dict)  # the validated parameters, defaults filled in
    notes: tuple[str, ...] = ()  # the operation's notes (Table.notes)

    def to_jsonable(self) -> dict[str, Any]:
        """JSON-ready: Decimal → int when integral, else float; dates → ISO text; uuid → text."""
        out: dict[str, Any] = {
            "operation": self.operation,
            "parameters": self.parameters,
            "columns": self.columns,
            "rows": [[jsonable(v) for v in row] for row in self.rows],
            "row_count": self.row_count,
            "truncated": self.truncated,
            "elapsed_ms": round(self.elapsed_s * 1000, 1),
        }
        # Only when there are any: an answer without notes keeps the shape it always had.
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def fetch(cur: psycopg.Cursor, max_rows: int, *, notes: tuple[str, ...] = ()) -> Table:
    """The cursor's result, at most max_rows rows; truncated tells whether there were more."""
    assert cur.description is not None
    columns = [d.name for d in cur.description]
    rows = cur.fetchmany(max_rows + 1)
    truncated = len(rows) > max_rows
    return Table(columns, [tuple(r) for r in rows[:max_rows]], truncated, notes)
