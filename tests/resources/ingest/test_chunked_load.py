"""Chunked, overlapped loading: a file merged chunk by chunk while it is read ends exactly as
if it had been merged whole, lands whole or not at all, and keeps the order of truth.

Real PostgreSQL and moto S3 server, through `ingest_file`; `CHUNK_ROWS` is made tiny so that a few
records span several chunks.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from resources.canonical.mapping import map_record
from resources.ingest import loader, merge_sql
from resources.ingest.merge import Merger
from resources.ingest.registry import FileObject, FileRow, register_files
from resources.ingest.runner import FileOutcome
from tests.support.ingest import RawFiles, q, q1
from tests.support.postgres import reset_canonical

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
COUNTS = (
    "received",
    "inserted",
    "updated",
    "unchanged",
    "rejected",
    "duplicates",
    "superseded",
    "moved_back",
    "relationships",
    "time_series",
)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Loads(RawFiles):
    """Upload, register and load files; records which merges ran (chunked or whole)."""

    def __init__(self, stack: Any, monkeypatch: pytest.MonkeyPatch):
        super().__init__(stack)
        self.merges: list[bool] = []
        real = Merger.merge

        def spy(merger: Any, cur: Any, staged: int, *, chunked: bool, **staged_metrics: Any) -> None:
            self.merges.append(chunked)
            real(merger, cur, staged, chunked=chunked, **staged_metrics)

        monkeypatch.setattr(Merger, "merge", spy)

    def load(self, row: FileRow) -> FileOutcome:
        return self.ingest(row)


@pytest.fixture
def loads(stack, monkeypatch) -> Loads:
    return Loads(stack, monkeypatch)


def _state(url: str) -> dict[str, list[tuple]]:
    """Everything a load decides, without ids and clock times that differ between runs."""
    return {
        "entities": q(
            url,
            """SELECT canonical_id, version, entity_type, name, revenue, employees, attributes,
                                     attributes_hash, source_changed_at, source_file_at, source_file_id,
                                     metadata - 'run_id'
                              FROM canonical.entities ORDER BY canonical_id""",
        ),
        "history": q(
            url,
            """SELECT canonical_id, version, attributes, source_changed_at, source_file_id
                             FROM canonical.entity_history ORDER BY canonical_id, version""",
        ),
        "links": q(
            url,
            """SELECT parent_canonical_id, child_canonical_id, effective_to IS NULL
                           FROM canonical.entity_relationships ORDER BY 2, 1, 3""",
        ),
        "points": q(
            url,
            """SELECT entity_canonical_id, metric_type, observed_at, value, source_key
                            FROM canonical.time_series_data ORDER BY 1, 2, 3""",
        ),
        "order": q(
            url,
            "SELECT canonical_id, changed_at, file_at, file_id, attributes_hash "
            "FROM ingest.entity_order ORDER BY 1",
        ),
        "refused": q(
            url, "SELECT file_id, record_index, source_id, reasons FROM ingest.rejected_records ORDER BY 1, 2"
        ),
        "files": q(
            url, "SELECT file_id, status, source_file_at, superseded, moved_back FROM ingest.files ORDER BY 1"
        ),
    }


def _rec(i: int | str, revenue: int = 1000, **extra: Any) -> dict:
    return {"customer_id": f"C{i}", "company_name": f"Company {i}", "annual_revenue": revenue, **extra}


def _point(day: int, value: int) -> dict:
    return {"date": f"2026-01-{day:02d}", "type": "revenue", "value": value}


# Each case: files loaded one after the other, (key, records, LastModified minutes). Chunks of 2 records.
CASES: dict[str, list[tuple[str, list[Any], int]]] = {
    "distinct ids, parents, metric points, refusals and in-chunk duplicates": [
        (
            "a.json",
            [
                _rec(0),
                _rec(1, parent_id="C0"),
                _rec(2, metrics=[_point(3, 5)]),
                _rec(3, revenue=-1),
                _rec(4),
                _rec(4, 7),
                _rec(5, parent_id="C1"),
            ],
            1,
        ),
        (
            "b.json",
            [
                _rec(0, 2),
                _rec(1, parent_id="C2"),
                _rec(2, metrics=[_point(3, 6), _point(4, 1)]),
                _rec(5),
                _rec(6),
            ],
            2,
        ),
    ],
    "an id repeated in a later chunk: the last occurrence wins": [
        ("a.json", [_rec(0, 1), _rec(1), _rec(2), _rec(3), _rec(0, 2)], 1),
    ],
    "a later occurrence restores the content the store held": [
        ("a.json", [_rec(0, 1), _rec(1)], 1),
        ("b.json", [_rec(0, 2), _rec(1), _rec(2), _rec(0, 1)], 2),
    ],
    "a later occurrence older by its own change time loses": [
        (
            "a.json",
            [
                _rec(0, 1, updated_at="2026-01-05"),
                _rec(1),
                _rec(2),
                _rec(3),
                _rec(0, 2, updated_at="2026-01-01"),
            ],
            1,
        ),
    ],
    "an occurrence beaten by the store in an earlier chunk comes again, newer": [
        ("a.json", [_rec(0, 1, updated_at="2026-01-03"), _rec(1)], 1),
        (
            "b.json",
            [_rec(0, 2, updated_at="2026-01-01"), _rec(1), _rec(2), _rec(0, 3, updated_at="2026-01-05")],
            2,
        ),
    ],
    "a parent and metric points that change between two occurrences": [
        ("a.json", [_rec("P0"), _rec("P1"), _rec("P2"), _rec(0, parent_id="P0", metrics=[_point(1, 1)])], 1),
        (
            "b.json",
            [
                _rec(0, parent_id="P1", metrics=[_point(1, 2), _point(2, 2)]),
                _rec(1),
                _rec(2),
                _rec(0, parent_id="P2", metrics=[_point(1, 3)]),
            ],
            2,
        ),
    ],
    "an older file after a newer one, across chunks": [
        ("new.json", [_rec(i, 2) for i in range(5)], 10),
        ("old.json", [_rec(i, 1) for i in range(7)], 5),
    ],
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_file_merged_in_chunks_ends_exactly_as_if_merged_whole(case, loads, stack, monkeypatch):
    url = stack.pg.owner_url
    outcomes: dict[str, list[tuple]] = {}
    states = {}
    for mode, rows in (("whole", None), ("chunks", 2)):
        reset_canonical(url)
        monkeypatch.setattr(loader, "CHUNK_ROWS", rows or 1_000_000)
        outcomes[mode] = []
        for key, records, minutes in CASES[case]:
            out = loads.load(loads.add(f"crm-data/{key}", {"records": records}, _at(minutes)))
            assert out.ok, out
            outcomes[mode].append(tuple(getattr(out.result, k) for k in COUNTS))
        states[mode] = _state(url)
    assert outcomes["chunks"] == outcomes["whole"]
    assert states["chunks"] == states["whole"]
    assert True in loads.merges, "no chunk was merged while the file was read"


def test_the_common_file_is_merged_chunk_by_chunk_without_a_whole_merge(loads, monkeypatch):
    monkeypatch.setattr(loader, "CHUNK_ROWS", 2)
    for doc in (
        {"records": [_rec(i) for i in range(5)]},
        [_rec(i, 2) for i in range(5)],
        {"records": [_rec(i, 3) for i in range(5)], "metadata": {"exportDate": "2026-03-01T13:00:00Z"}},
    ):
        loads.merges.clear()
        out = loads.load(loads.add("crm-data/a.json", doc, _at(1)))
        assert out.ok and out.result.received == 5
        assert loads.merges == [True, True, True]


def test_a_repeated_id_across_chunks_reloads_the_file_whole(loads, monkeypatch):
    monkeypatch.setattr(loader, "CHUNK_ROWS", 2)
    out = loads.load(loads.add("crm-data/a.json", {"records": [_rec(0, 1), _rec(1), _rec(0, 2)]}, _at(1)))
    assert out.ok and (out.result.inserted, out.result.duplicates) == (2, 1)
    assert loads.merges == [True, True, False]  # the second chunk refused, the whole file merged once


def test_chunks_are_not_merged_with_a_file_time_other_than_the_final_one(stack):
    records = [map_record("crm", _rec(i)) for i in range(4)]
    url = stack.settings.database_url
    with psycopg.connect(url) as conn:
        [row] = register_files(conn, [FileObject("crm-data/a.json", "e", 1, _at(1))], via="test")
        conn.commit()
        with pytest.raises(loader.ChunkedMergeRefused, match="file's time"), conn.transaction():
            loader.load_records(
                conn,
                iter(records),
                file_id=row.file_id,
                attempt=1,
                source_key="k",
                run_id="r",
                transformation_version="v",
                file_at=lambda: _at(2),
                early_file_at=lambda: _at(1),
                chunk_rows=2,
            )
    assert q1(stack.pg.owner_url, "SELECT count(*) FROM canonical.entities") == 0


def test_a_parse_error_after_merged_chunks_leaves_the_database_as_it_was(loads, stack, monkeypatch):
    url = stack.pg.owner_url
    assert loads.load(loads.add("crm-data/a.json", {"records": [_rec(i, 1) for i in range(3)]}, _at(1))).ok
    before = _state(url)
    monkeypatch.setattr(loader, "CHUNK_ROWS", 2)
    loads.merges.clear()
    body = json.dumps({"records": [_rec(i, 2) for i in range(9)]})[:-3] + ', {"customer_id": ]}'
    bad = loads.add("crm-data/b.json", body, _at(2))
    out = loads.load(bad)
    assert not out.ok and "malformed JSON" in (out.error or "")
    assert loads.merges.count(True) >= 3  # chunks had been merged before the error
    after = _state(url)
    assert after.pop("files")[-1][:2] == (bad.file_id, "failed")
    before.pop("files")
    assert after == before


def test_a_database_error_in_a_chunk_leaves_the_database_as_it_was(loads, stack, monkeypatch):
    url = stack.pg.owner_url
    assert loads.load(loads.add("crm-data/a.json", {"records": [_rec(i, 1) for i in range(3)]}, _at(1))).ok
    before = _state(url)
    monkeypatch.setattr(loader, "CHUNK_ROWS", 2)
    spy = Merger.merge
    calls = []

    def failing(merger: Any, cur: Any, staged: int, *, chunked: bool, **staged_metrics: Any) -> None:
        calls.append(chunked)
        if len(calls) == 3:
            cur.execute("SELECT 1/0")  # a DataError from the server, in the worker thread
        spy(merger, cur, staged, chunked=chunked, **staged_metrics)

    monkeypatch.setattr(Merger, "merge", failing)
    bad = loads.add("crm-data/b.json", {"records": [_rec(i, 2) for i in range(9)]}, _at(2))
    out = loads.load(bad)
    assert not out.ok and "division by zero" in (out.error or "")
    after = _state(url)
    assert after.pop("files")[-1][:2] == (bad.file_id, "failed")
    before.pop("files")
    assert after == before


def _hand_written(owner_url: str, record: dict) -> None:
    """An entity put into canonical.entities around ingest: no ingest.entity_order claim."""
    m = map_record("crm", record)
    with psycopg.connect(owner_url) as conn:
        conn.execute(
            """INSERT INTO canonical.entities (entity_type, source_system, canonical_id, name, attributes,
                                                        attributes_hash)
                        VALUES (%s, 'crm', %s, %s, %s::jsonb, %s)""",
            (m.entity_type, m.canonical_id, m.name, m.attributes_json, m.attributes_hash),
        )


def test_fresh_records_are_inserted_without_reading_the_entities_table(stack):
    # The plan must not depend on canonical.entities' statistics: an anti-join there, planned as a
    # nested loop over a table vacuumed while empty, re-read every row the statement inserted.
    with psycopg.connect(stack.pg.owner_url, autocommit=True) as conn:
        conn.execute("""CREATE TEMP TABLE staging_entities (
            ord integer, canonical_id text, source_system text, source_id text, entity_type text, name text,
            industry text, revenue numeric, employees bigint, attributes text, attributes_hash bytea,
            data_quality real, parent_canonical_id text, changed_at timestamptz, status text)""")
        conn.execute("CREATE TEMP TABLE staging_keep (canonical_id text, fresh boolean)")
        params = {
            "source_key": "k",
            "run_id": "r",
            "file_id": 1,
            "transformation_version": "v",
            "file_at": T0,
        }
        for plan in (merge_sql.ALL_FRESH_PLAN, merge_sql.SOME_FRESH_PLAN):
            insert_fresh = plan.insert_fresh
            assert insert_fresh is not None
            explained = "\n".join(r[0] for r in conn.execute("EXPLAIN " + insert_fresh, params).fetchall())
            assert "Insert on entities" in explained
            assert "Scan on entities" not in explained and "entities_canonical_id_key" not in explained, (
                explained
            )


def test_an_entity_written_around_ingest_refuses_the_fresh_insert_and_nothing_lands(stack):
    _hand_written(stack.pg.owner_url, _rec(0, 1))
    records = [map_record("crm", _rec(i, 2)) for i in range(3)]
    with psycopg.connect(stack.settings.database_url) as conn:
        [row] = register_files(conn, [FileObject("crm-data/a.json", "e", 1, _at(1))], via="test")
        conn.commit()
        with pytest.raises(loader.FreshInsertRefused, match="canonical_id"), conn.transaction():
            loader.load_records(
                conn,
                iter(records),
                file_id=row.file_id,
                attempt=1,
                source_key="k",
                run_id="r",
                transformation_version="v",
                file_at=lambda: _at(1),
            )
        with conn.transaction():
            out = loader.load_records(
                conn,
                iter(records),
                file_id=row.file_id,
                attempt=1,
                source_key="k",
                run_id="r",
                transformation_version="v",
                file_at=lambda: _at(1),
                fresh_inserts=False,
            )
    assert (out.inserted, out.updated) == (2, 1)
    assert q1(stack.pg.owner_url, "SELECT count(*) FROM canonical.entity_history") == 1


def test_ingest_loads_again_with_upserts_when_an_entity_was_written_around_it(loads, stack, monkeypatch):
    # Chunked first (refused by the fresh insert), then chunked again with every record upserted.
    monkeypatch.setattr(loader, "CHUNK_ROWS", 2)
    _hand_written(stack.pg.owner_url, _rec(3, 1))
    out = loads.load(loads.add("crm-data/a.json", {"records": [_rec(i, 2) for i in range(5)]}, _at(1)))
    assert out.ok and (out.result.inserted, out.result.updated) == (4, 1)
    assert loads.merges.count(False) == 0  # never fell back to a whole-file merge
