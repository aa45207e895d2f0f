"""Streaming parse: the shapes a raw file may take, and the export date a document states about itself."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resources.ingest.parsing import TAIL_BYTES, DocumentInfo, MalformedLine, ParseError, iter_records
from tests.support.stack import SAMPLES


def parse(key: str, body: bytes | dict | list) -> tuple[list, DocumentInfo]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    info = DocumentInfo()
    return list(iter_records(key, lambda: io.BytesIO(data), info)), info


def test_object_array_and_ndjson_shapes_yield_their_records():
    assert parse("crm-data/a.json", {"records": [{"id": 1}, {"id": 2}]})[0] == [{"id": 1}, {"id": 2}]
    assert parse("crm-data/a.json", [{"id": 1}])[0] == [{"id": 1}]
    records, _ = parse("crm-data/a.ndjson", b'{"id": 1}\nnot json\n\n{"id": 2}\n')
    assert records[0] == {"id": 1} and records[2] == {"id": 2}
    assert isinstance(records[1], MalformedLine) and records[1].line_number == 2


def test_a_document_of_the_wrong_shape_is_a_parse_error():
    with pytest.raises(ParseError, match="'records' array"):
        parse("crm-data/a.json", {"rows": []})
    with pytest.raises(ParseError, match="malformed JSON"):
        parse("crm-data/a.json", b'{"records": [{"id": 1},')


def test_the_real_crm_export_states_its_date_after_its_records():
    records, info = parse(
        "crm-data/customer-data.json", (SAMPLES / "crm-data" / "customer-data.json").read_bytes()
    )
    assert len(records) == 10
    assert info.export_date == datetime(2024, 11, 17, 10, 40, tzinfo=UTC)


def test_the_export_date_is_found_before_or_after_the_records_and_through_gzip():
    big = [{"id": i, "name": "x" * 64} for i in range(20_000)]  # several read chunks
    before = {"metadata": {"exportDate": "2026-01-02"}, "records": big}
    after = {"records": big, "metadata": {"exportDate": "2026-01-03T04:05:06+01:00"}, "summary": {"n": 1}}
    assert parse("crm-data/a.json", before)[1].export_date == datetime(2026, 1, 2, tzinfo=UTC)
    assert parse("crm-data/a.json", after)[1].export_date == datetime(2026, 1, 3, 3, 5, 6, tzinfo=UTC)
    zipped = gzip.compress(json.dumps(after).encode())
    assert parse("crm-data/a.json.gz", zipped)[1].export_date == datetime(2026, 1, 3, 3, 5, 6, tzinfo=UTC)


def test_a_metadata_key_inside_a_record_or_another_object_is_not_the_exports_date():
    decoy = {"metadata": {"exportDate": "1999-01-01"}}
    records = [{"id": i, **decoy} for i in range(5_000)]
    assert parse("crm-data/a.json", {"records": records})[1].export_date is None
    assert parse("crm-data/a.json", {"records": records, "summary": decoy})[1].export_date is None
    assert (
        parse("crm-data/a.json", {"records": records, "metadata": {"exportDate": "soon"}})[1].export_date
        is None
    )
    assert parse("crm-data/a.json", [{"id": 1}])[1].export_date is None


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["id", "name", "metadata", "note"]),
            st.one_of(
                st.text(max_size=20),
                st.integers(),
                st.fixed_dictionaries({"exportDate": st.text(max_size=10)}),
            ),
        ),
        max_size=30,
    ),
    st.booleans(),
)
def test_only_a_top_level_export_date_is_ever_read(records, with_date):
    doc: dict = {"records": records}
    if with_date:
        doc["metadata"] = {"exportDate": "2026-05-06T07:08:09Z"}
    parsed, info = parse("crm-data/a.json", doc)
    assert parsed == records
    assert info.export_date == (datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC) if with_date else None)


def _early(key: str, data: bytes, tail: bytes | None) -> tuple[bool, datetime | None, int]:
    """info.early() as the loader asks it, after the first record; and how often the tail was read."""
    info = DocumentInfo()
    reads = []

    def read_tail() -> bytes:
        reads.append(1)
        return tail  # type: ignore[return-value]

    records = iter_records(
        key, lambda: io.BytesIO(data), info, read_tail=read_tail if tail is not None else None
    )
    next(records)
    known, date = info.early()
    list(records)
    assert not known or date == info.export_date  # what was told early is what the end says
    return known, date, len(reads)


def test_the_export_date_is_told_before_the_records_from_the_head_or_a_tail_read_apart():
    big = [{"id": i, "name": "x" * 64} for i in range(20_000)]  # several read chunks
    before = json.dumps({"metadata": {"exportDate": "2026-01-02"}, "records": big}).encode()
    after = json.dumps({"records": big, "metadata": {"exportDate": "2026-01-03"}}).encode()
    none = json.dumps({"records": big}).encode()
    day = datetime(2026, 1, 2, tzinfo=UTC)
    assert _early("crm-data/a.json", before, b"") == (True, day, 0)
    assert _early("crm-data/a.json", after, after[-TAIL_BYTES:]) == (True, day + timedelta(days=1), 1)
    assert _early("crm-data/a.json", none, none[-TAIL_BYTES:]) == (True, None, 1)
    # without a tail, or through gzip (its compressed tail says nothing), only the end tells
    assert _early("crm-data/a.json", after, None) == (False, None, 0)
    zipped = gzip.compress(after)
    assert _early("crm-data/a.json.gz", zipped, zipped[-TAIL_BYTES:]) == (False, None, 0)
    # arrays and NDJSON state no date
    assert _early("crm-data/a.json", json.dumps(big).encode(), b"") == (True, None, 0)
    assert _early("crm-data/a.ndjson", b'{"id": 1}\n{"id": 2}\n', b"") == (True, None, 0)
