"""COPY text format of the values the loader stages."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from resources.ingest.copy_text import TEXT_ESCAPES, text_field


@given(st.text(st.sampled_from("ab\\\t\n\r\x00é😀 ") | st.characters(codec=None), max_size=30))
def test_text_values_escape_backslash_tab_newline_and_return_for_copy(value: str) -> None:
    assert text_field(value) == value.translate(TEXT_ESCAPES)
    assert not any(c in text_field(value) for c in "\t\n\r")


def test_none_is_copys_null() -> None:
    assert text_field(None) == "\\N"
