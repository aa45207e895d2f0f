"""Normalisation: what the matcher compares, pinned value by value."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resources.resolution.normalise import (
    normalise_country,
    normalise_email_domain,
    normalise_name,
    normalise_phone,
    normalise_website,
)


@pytest.mark.parametrize(
    "raw", ["Tech Corp Global", "TECH CORP GLOBAL", "Tech Corp Global Inc.", "tech corp global, inc"]
)
def test_case_punctuation_and_legal_form_variants_of_one_name_normalise_alike(raw: str) -> None:
    assert normalise_name(raw).name == "tech corp global"


@pytest.mark.parametrize(
    ("raw", "name", "form"),
    [
        ("Acme Inc", "acme", "inc"),
        ("Acme Incorporated", "acme", "inc"),
        ("Acme Corporation", "acme", "corp"),
        ("Acme L.L.C.", "acme", "llc"),
        ("Acme Limited", "acme", "ltd"),
        ("Acme GmbH", "acme", "gmbh"),
        ("Acme S.A.", "acme", "sa"),
        ("Acme B.V.", "acme", "bv"),
        ("Asia Finance Group Pte. Ltd.", "asia finance group", "pte ltd"),
        ("Green Energy Solutions Pty Ltd", "green energy solutions", "pty ltd"),
        ("Manufacturing Solutions Polska Sp. z o.o.", "manufacturing solutions polska", "sp z oo"),
        ("Old Mill Bakery & Co.", "old mill bakery", "co"),
        ("Foo GmbH & Co. KG", "foo", "gmbh co kg"),
        ("Acme PLC", "acme", "plc"),
    ],
)
def test_a_trailing_legal_form_is_split_into_its_own_field_in_one_spelling(
    raw: str, name: str, form: str
) -> None:
    assert normalise_name(raw) == (normalise_name(raw).__class__(name, form))


def test_a_legal_form_word_inside_the_name_stays_in_the_name() -> None:
    assert normalise_name("Tech Corp Global").legal_form is None


def test_a_name_that_is_only_a_legal_form_keeps_it_as_its_name() -> None:
    assert normalise_name("Company") == normalise_name("company").__class__("company", None)


def test_diacritics_ampersand_and_abbreviations_are_folded() -> None:
    assert normalise_name("Müller & Söhne Intl Mfg").name == "muller and sohne international manufacturing"
    assert normalise_name("Łódź Ørsted Straße").name == "lodz orsted strasse"


def test_word_order_is_kept_in_the_name() -> None:
    assert normalise_name("Global Tech").name == "global tech"


def test_blank_and_none_names_normalise_to_none() -> None:
    assert normalise_name(None).name is None
    assert normalise_name("  ...  ").name is None


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=40))
def test_name_normalisation_never_raises_and_is_idempotent(raw: str) -> None:
    once = normalise_name(raw).name
    if once is not None:
        assert normalise_name(once).name == once


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=30))
def test_the_other_normalisers_never_raise(raw: str) -> None:
    normalise_email_domain(raw)
    normalise_website(raw)
    normalise_phone(raw)
    normalise_country(None, raw)


def test_email_domain_is_taken_from_the_address_and_free_mail_counts_as_none() -> None:
    assert normalise_email_domain("John <John.Smith@TechCorp.com>") == "techcorp.com"
    assert normalise_email_domain("someone@gmail.com") is None
    assert normalise_email_domain("not an address") is None


def test_website_host_loses_scheme_www_port_and_path() -> None:
    for raw in (
        "https://www.TechCorp.com/about?x=1",
        "techcorp.com:8080",
        "http://www2.techcorp.com",
        "techcorp.com.",
    ):
        assert normalise_website(raw) == "techcorp.com"


def test_phone_is_its_last_nine_digits_whatever_the_format() -> None:
    assert normalise_phone("+1 (555) 123-4567") == normalise_phone("001 555 123 4567") == "551234567"
    assert normalise_phone("12-34") is None


def test_country_code_is_preferred_and_names_map_to_iso_codes() -> None:
    assert normalise_country("de", "United States") == "DE"
    assert normalise_country(None, "United States") == normalise_country(None, "U.S.A.") == "US"
    assert normalise_country(None, "UK") == "GB"
    assert normalise_country(None, "Atlantis") == "ATLANTIS"
    assert normalise_country(None, None) is None
