"""COPY text format of the values the loader stages."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from resources.canonical.model import CanonicalRecord
from resources.ingest.copy_text import TEXT_ESCAPES, Spool, entity_row, text_field
from resources.sources.compiled import SourceSystem


@given(st.text(st.sampled_from("ab\\\t\n\r\x00é😀 ") | st.characters(codec=None), max_size=30))
def test_text_values_escape_backslash_tab_newline_and_return_for_copy(value: str) -> None:
    assert text_field(value) == value.translate(TEXT_ESCAPES)
    assert not any(c in text_field(value) for c in "\t\n\r")


def test_none_is_copys_null() -> None:
    assert text_field(None) == "\\N"


_TEXT = st.text(st.sampled_from("ab\\\t\n\ré "), max_size=8)


@given(_TEXT.filter(bool), _TEXT.filter(bool), st.none() | _TEXT, st.none() | _TEXT)
def test_an_entity_rows_text_columns_are_each_escaped_whichever_of_them_needs_it(
    source_id: str, name: str, industry: str | None, parent: str | None
) -> None:
    record = CanonicalRecord(
        source_system=SourceSystem("crm"),
        source_id=source_id,
        canonical_id=f"crm_{source_id}",
        entity_type="small_business",
        name=name,
        industry=industry,
        revenue=Decimal("1.50"),
        employees=None,
        attributes={},
        attributes_json='{"a":"x\\\\ty"}',
        attributes_hash=b"\x01\xff",
        data_quality=0.5,
        parent_canonical_id=parent,
    )
    row = entity_row(7, record)
    assert row.endswith("\n") and row.count("\n") == 1
    columns = row[:-1].split("\t")
    assert columns == [
        "7",
        text_field(f"crm_{source_id}"),
        "crm",
        text_field(source_id),
        "small_business",
        text_field(name),
        text_field(industry),
        "1.50",
        "\\N",
        '{"a":"x\\\\\\\\ty"}',
        "\\\\x01ff",
        "0.5",
        text_field(parent),
        "\\N",
        "active",
    ]


def test_a_spool_holds_its_rows_encoded_as_the_connection_sends_them() -> None:
    spool = Spool("utf-8")
    spool.write("1\tJürgen\n")
    spool.rows += 2
    spool.write_counted("2\t😀\n3\tx\n")
    spool.file.seek(0)
    assert spool.file.read() == "1\tJürgen\n2\t😀\n3\tx\n".encode() and spool.rows == 3
    spool.close()
