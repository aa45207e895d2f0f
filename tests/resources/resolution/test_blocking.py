"""Blocking keys: which pairs are compared at all, and that no key grows with the store."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from resources.resolution.blocking import count_comparisons
from resources.resolution.config import BlockingSettings, ResolutionConfig
from resources.resolution.resolve import PREPARED_TABLE, prepare


def _shares_a_key(rows: list[dict[str, str | None]], config: ResolutionConfig | None = None) -> bool:
    """Whether the first two rows share a blocking key, among `rows` and fillers of other names."""
    frame = pd.DataFrame(
        [{"canonical_id": f"r{i}", "source_system": "crm", **row} for i, row in enumerate(rows)]
    )
    con = duckdb.connect(":memory:")
    try:
        prepare(con, frame, None, config)
        found = con.execute(
            f"""SELECT list_has_any(a.block_keys, b.block_keys) FROM {PREPARED_TABLE} a, {PREPARED_TABLE} b
WHERE a.unique_id = 'r0' AND b.unique_id = 'r1'"""
        ).fetchall()
    finally:
        con.close()
    return bool(found[0][0])


@pytest.mark.parametrize(
    "twin",
    [
        "Dizoiu Cloud",  # a letter dropped
        "Dizoixum Cloud",  # a letter added
        "Dizoiun Cloud",  # a letter replaced
        "Dizoimu Cloud",  # two letters swapped
        "Dizo ium Cloud",  # a space added
        "DizoiumCloud",  # a space dropped
        "Dizoiumx Cloud",  # a space typed as a letter, after the word
    ],
)
def test_a_name_one_edit_from_another_anywhere_in_it_shares_a_key(twin: str) -> None:
    assert _shares_a_key([{"name": "Dizoium Cloud Inc"}, {"name": twin}])


def test_a_longer_name_with_its_words_swapped_and_a_typo_in_one_shares_a_key() -> None:
    assert _shares_a_key([{"name": "Keystone Vequa Metals"}, {"name": "Vequa Metlas Keystone"}])


def test_the_domain_of_one_records_email_and_of_anothers_website_is_one_key() -> None:
    assert _shares_a_key(
        [
            {"name": "Laacly Capital", "email": "info@laaclycapital.com"},
            {"name": "Brand New Name", "website": "https://www.laaclycapital.com/about"},
        ]
    )


def test_names_two_edits_apart_in_their_one_rare_word_are_not_compared() -> None:
    # In a store this small every word is rare; here only the pseudo-words are.
    config = ResolutionConfig(blocking=BlockingSettings(rare_word_max_records=1))
    assert not _shares_a_key([{"name": "Dizoium Cloud"}, {"name": "Dizaxum Cloud"}], config)


def test_a_key_shared_by_more_records_than_the_block_size_is_dropped() -> None:
    config = ResolutionConfig(blocking=BlockingSettings(max_block_size=3))
    rows: list[dict[str, str | None]] = [
        {"name": f"Company {i}", "phone": "+1 555 0100 000"} for i in range(4)
    ]
    assert not _shares_a_key(rows, config)
    assert _shares_a_key(rows[:3], config)


def test_the_words_but_one_of_a_name_of_common_words_are_no_key() -> None:
    # "smith foods" is left when either name loses a word; common words alone would make a block that
    # grows with the store.
    common = ResolutionConfig(blocking=BlockingSettings(rare_word_max_records=1))
    rows: list[dict[str, str | None]] = [{"name": "Smith Jones Foods"}, {"name": "Smith Lee Foods"}]
    assert not _shares_a_key(rows, common)


def test_comparisons_count_each_pair_once_however_many_keys_it_shares() -> None:
    frame = pd.DataFrame(
        {
            "canonical_id": ["a", "b", "c"],
            "name": ["Dizoium Cloud", "Dizoium Cloud", "Other Thing"],
            "phone": ["555 0100 123", "555 0100 123", None],
        }
    )
    con = duckdb.connect(":memory:")
    try:
        prepare(con, frame)
        assert count_comparisons(con, PREPARED_TABLE) == 1
    finally:
        con.close()


def test_a_blocking_rule_naming_an_unknown_column_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown columns"):
        BlockingSettings(rules=(("nmae",),))
