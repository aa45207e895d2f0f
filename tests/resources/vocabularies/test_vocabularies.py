"""Vocabularies (resources/vocabularies/): the shipped lists, matching, the per-source status codes,
currency flagged never converted, unmapped values kept and named, a deployment's own files, and the
errors (file, key, problem). Unit tests: files in tmp_path, no services."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.datagen import _INDUSTRIES, _STATUS
from resources.canonical.mapping import map_record
from resources.canonical.model import CanonicalRecord
from resources.settings import get_settings
from resources.vocabularies.catalogue import SHIPPED, get_vocabularies, load_vocabularies
from resources.vocabularies.document import VocabularyError
from resources.vocabularies.normalise import normalise
from tests.resources.analytics.test_golden import CRM, ERP, LEGACY
from tests.support.stack import SAMPLES

SHIPPED_VOCABULARIES = load_vocabularies()


def mapped(source: str, record: dict) -> CanonicalRecord:
    result = map_record(source, record)
    assert isinstance(result, CanonicalRecord), result
    return result


def crm(**fields: object) -> dict:
    return {"customer_id": "C-1", "company_name": "Tech Corp", **fields}


def problems(folder: Path, document: object, name: str = "bad.json") -> list[tuple[str, str, str]]:
    (folder / name).write_text(document if isinstance(document, str) else json.dumps(document))
    with pytest.raises(VocabularyError) as caught:
        load_vocabularies(str(folder))
    return [(p.file, p.key, p.problem) for p in caught.value.problems]


def _sample_records() -> Iterator[tuple[str, dict]]:
    crm_doc = json.loads((SAMPLES / "crm-data" / "customer-data.json").read_text())
    yield from (("crm", r) for r in crm_doc["records"])
    yield from (("erp", r) for r in json.loads((SAMPLES / "erp-data" / "erp-accounts.json").read_text()))
    lines = (SAMPLES / "legacy-data" / "legacy-companies.ndjson").read_text().splitlines()
    yield from (("legacy", json.loads(line)) for line in lines if line.strip())


# --------------------------------------------------------------------------------------------------
# Matching


@given(st.text())
def test_normalising_any_text_never_raises_and_is_idempotent(text: str) -> None:
    key = normalise(text)
    assert normalise(key) == key
    assert key == key.casefold() and all(ch.isalnum() for ch in key)


@pytest.mark.parametrize(
    "variant", ["Information Technology", "information-technology", "INFORMATION  TECHNOLOGY.", "Tech", "IT"]
)
def test_industry_names_match_whatever_their_case_and_punctuation(variant: str) -> None:
    assert mapped("crm", crm(industry=variant)).industry == "Technology"


def test_a_naics_code_lands_in_the_industry_of_its_longest_listed_prefix() -> None:
    terms = SHIPPED_VOCABULARIES.for_source("legacy")
    assert terms.industry("541512") == "Technology"  # 5415, not 54
    assert terms.industry("541810") == "Marketing"  # 5418
    assert terms.industry("541110") == "Legal"  # 5411
    assert terms.industry("541990") == "Professional Services"  # 54 alone
    assert terms.industry("221114") == "Energy" and terms.industry("221310") == "Utilities"
    assert terms.industry("99") == ""  # no such sector: unmapped


def test_a_naics_code_as_a_number_or_text_lands_in_one_industry_and_is_kept_beside_it() -> None:
    for code in (221114, "221114", " 221114 "):
        record = mapped("legacy", {"id": 1, "name": "Green Energy", "industry_code": code})
        assert record.industry == "Energy"
        assert record.attributes["naics_code"] == "221114" and record.attributes["industry_code"] == code
    named = mapped("crm", crm(industry="Energy"))
    assert named.industry == "Energy" and "naics_code" not in named.attributes


@pytest.mark.parametrize(
    ("country", "code"),
    [
        ("USA", "US"),
        ("U.S.", "US"),
        ("United States of America", "US"),
        ("united states", "US"),
        ("us", "US"),
        ("Deutschland", "DE"),
        ("DEU", "DE"),
        ("UK", "GB"),
        ("Great Britain", "GB"),
        ("Türkiye", "TR"),
        ("Turkey", "TR"),
        ("Korea, Republic of", "KR"),
        ("South Korea", "KR"),
    ],
)
def test_country_variants_land_on_their_alpha_2_code_and_the_source_value_stays(
    country: str, code: str
) -> None:
    record = mapped("crm", crm(country=country))
    assert record.attributes["country_code"] == code and record.attributes["country"] == country
    assert record.unmapped == ()


def test_every_iso_3166_country_is_listed_with_its_alpha_3_code() -> None:
    country = SHIPPED_VOCABULARIES.country
    assert len(country.canonical) == 249
    assert all(len(code) == 2 and code.isupper() for code in country.canonical)
    assert country.variants[normalise("FRA")] == "FR" and country.variants[normalise("ZWE")] == "ZW"


@pytest.mark.parametrize(
    ("source", "field", "value", "status"),
    [
        ("legacy", "legacy_status", "A", "active"),
        ("legacy", "legacy_status", "I", "inactive"),
        ("legacy", "legacy_status", "X", "deleted"),
        ("erp", "account_status", "open", "active"),
        ("erp", "account_status", "on_hold", "inactive"),
        ("erp", "account_status", "closed", "inactive"),
        ("crm", "status", "active", "active"),
        ("crm", "status", "Inactive", "inactive"),
        ("crm", "status", "deleted", "deleted"),
        ("crm", "status", "prospect", "active"),
        ("crm", "status", "churned", "inactive"),
    ],
)
def test_each_sources_status_codes_land_on_active_inactive_or_deleted(
    source: str, field: str, value: str, status: str
) -> None:
    record = mapped(source, {"id": "1", "name": "N", field: value})
    assert record.status == status and record.attributes[field] == value and record.unmapped == ()


def test_a_sources_own_status_code_means_nothing_to_another_source() -> None:
    assert mapped("legacy", {"id": 1, "name": "N", "legacy_status": "X"}).status == "deleted"
    crm_x = mapped("crm", crm(status="X"))
    assert crm_x.status == "active" and crm_x.unmapped == (("status", "X"),)


def test_a_record_without_a_status_field_is_active() -> None:
    assert mapped("legacy", {"id": 1, "name": "N"}).status == "active"
    assert mapped("crm", crm()).status == "active"


def test_revenue_in_another_currency_is_flagged_never_converted() -> None:
    erp = {
        "id": "E-2",
        "business_name": "Tech Corp GmbH",
        "financials": {"annualRevenue": 640000, "currency": "EUR"},
    }
    record = mapped("erp", erp)
    assert record.revenue == Decimal(640000) and record.attributes["revenue"] == 640000
    assert record.attributes["revenue_currency"] == "EUR"
    assert record.attributes["revenue_currency_mismatch"] is True
    assert record.attributes["financials"] == {"annualRevenue": 640000, "currency": "EUR"}
    usd = mapped("erp", {**erp, "financials": {"annualRevenue": 1, "currency": "usd"}})
    assert (
        usd.attributes["revenue_currency"] == "USD" and usd.attributes["revenue_currency_mismatch"] is False
    )


def test_revenue_in_an_unknown_currency_is_flagged_and_the_currency_counted_unmapped() -> None:
    record = mapped(
        "erp", {"id": "E", "business_name": "B", "financials": {"annualRevenue": 5, "currency": "Doubloons"}}
    )
    assert (
        "revenue_currency" not in record.attributes and record.attributes["revenue_currency_mismatch"] is True
    )
    assert record.unmapped == (("currency", "Doubloons"),)


def test_a_record_naming_no_currency_is_in_the_base_currency_and_carries_no_flag() -> None:
    record = mapped("crm", crm(annual_revenue=100))
    assert (
        "revenue_currency" not in record.attributes and "revenue_currency_mismatch" not in record.attributes
    )


def test_unmapped_values_are_kept_as_they_came_and_named_never_refused() -> None:
    record = mapped("crm", crm(industry="Underwater Basket Weaving", country="Narnia", status="dormant-ish"))
    assert record.industry == "Underwater Basket Weaving" and record.attributes["country"] == "Narnia"
    assert "country_code" not in record.attributes and record.status == "active"
    assert sorted(record.unmapped) == [
        ("country", "Narnia"),
        ("industry", "Underwater Basket Weaving"),
        ("status", "dormant-ish"),
    ]


def test_a_coded_value_that_is_not_text_is_unmapped_never_refused() -> None:
    record = mapped("crm", crm(country={"name": "France"}, status=7))
    assert record.status == "active" and sorted(record.unmapped) == [
        ("country", "{'name': 'France'}"),
        ("status", "7"),
    ]


def test_a_status_change_alone_changes_the_attributes_hash() -> None:
    active = mapped("legacy", {"id": 1, "name": "N", "legacy_status": "A"})
    deleted = mapped("legacy", {"id": 1, "name": "N", "legacy_status": "X"})
    assert (active.status, deleted.status) == ("active", "deleted")
    assert active.attributes_hash != deleted.attributes_hash


# --------------------------------------------------------------------------------------------------
# The shipped lists cover what the sources send


def test_every_coded_value_of_the_samples_maps() -> None:
    for source, record in _sample_records():
        result = map_record(source, record)
        if isinstance(result, CanonicalRecord):
            assert result.unmapped == (), (source, record)


def test_the_samples_industries_are_one_list_whether_coded_or_named() -> None:
    industries = {
        (source, r.industry)
        for source, record in _sample_records()
        if isinstance(r := map_record(source, record), CanonicalRecord)
    }
    canonical = set(SHIPPED_VOCABULARIES.industry.canonical)
    assert {i for _, i in industries} <= canonical
    assert {i for s, i in industries if s == "legacy"} <= {i for s, i in industries if s != "legacy"} | {
        "Food & Beverage"
    }


def test_every_industry_and_status_the_generator_and_the_golden_records_use_maps() -> None:
    terms = SHIPPED_VOCABULARIES.for_source("crm")
    assert [i for i in _INDUSTRIES if terms.industry(i) != i] == []  # each is canonical already
    assert all(terms.status(s) for s in _STATUS)
    named = [r.get("industry") or r.get("sector") for r in CRM + ERP] + [
        r.get("industry_code") for r in LEGACY
    ]
    assert [v for v in named if v is not None and not terms.industry(str(v))] == []


def test_every_shipped_file_has_a_version_and_each_vocabulary_one_file() -> None:
    files = sorted(p.name for p in SHIPPED.glob("*.json"))
    assert files == ["country.json", "currency.json", "industry.json", "status.json"]
    for name, versions in SHIPPED_VOCABULARIES.versions.items():
        assert versions == [
            f"{json.loads((SHIPPED / f'{name}.json').read_text())['version']} (shipped/{name}.json)"
        ]
    assert SHIPPED_VOCABULARIES.currency.base == "USD"


# --------------------------------------------------------------------------------------------------
# A deployment's own vocabulary files (VOCABULARY_PATH)


def test_a_deployment_file_adds_and_overrides_entries(tmp_path: Path) -> None:
    (tmp_path / "industry.json").write_text(
        json.dumps(
            {
                "vocabulary": "industry",
                "version": "7",
                "values": {"Space": ["Orbital Logistics"], "Technology": ["Software"]},
                "codes": {"336414": "Space"},
            }
        )
    )
    (tmp_path / "status.json").write_text(
        json.dumps({"vocabulary": "status", "version": "1", "sources": {"crm": {"deleted": ["gone"]}}})
    )
    (tmp_path / "currency.json").write_text(
        json.dumps({"vocabulary": "currency", "version": "1", "base": "EUR"})
    )
    vocabularies = load_vocabularies(str(tmp_path))
    crm_terms, erp_terms = vocabularies.for_source("crm"), vocabularies.for_source("erp")
    assert crm_terms.industry("orbital logistics") == "Space" and crm_terms.industry("336414") == "Space"
    assert crm_terms.industry("336411") == "Aerospace"  # the shipped 3364 still answers the rest
    assert crm_terms.industry("Software") == "Technology"  # overridden
    assert crm_terms.status("gone") == "deleted" and erp_terms.status("gone") == ""
    assert crm_terms.base_currency == "EUR"
    assert vocabularies.versions["industry"] == [
        "2026.12.0 (shipped/industry.json)",
        f"7 ({tmp_path / 'industry.json'})",
    ]


def test_vocabulary_path_adds_a_mapping_the_mapping_uses_without_a_code_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert mapped("crm", crm(country="Ruritania")).unmapped == (("country", "Ruritania"),)
    (tmp_path / "countries.json").write_text(
        json.dumps({"vocabulary": "country", "version": "1", "values": {"XR": ["Ruritania"]}})
    )
    monkeypatch.setenv("VOCABULARY_PATH", str(tmp_path))
    get_settings.cache_clear()
    get_vocabularies.cache_clear()
    try:
        record = mapped("crm", crm(country="Ruritania"))
        assert record.attributes["country_code"] == "XR" and record.unmapped == ()
    finally:
        monkeypatch.delenv("VOCABULARY_PATH")
        get_settings.cache_clear()
        get_vocabularies.cache_clear()


# --------------------------------------------------------------------------------------------------
# Invalid files: every problem with its file, key and what is wrong


def test_a_misspelt_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    assert problems(tmp_path, {"vocabulary": "country", "version": "1", "valeus": {}}) == [
        (str(tmp_path / "bad.json"), "valeus", "unknown key (not part of a vocabulary file)")
    ]


def test_a_variant_of_the_wrong_shape_names_its_key(tmp_path: Path) -> None:
    file = str(tmp_path / "bad.json")
    assert problems(tmp_path, {"vocabulary": "country", "version": "1", "values": {"FR": ["", "!!"]}}) == [
        (file, "values.FR.0", "String should have at least 1 character"),
        (file, "values.FR.1", "'!!' has no letter or digit to match by"),
    ]


def test_document_level_problems_name_every_key(tmp_path: Path) -> None:
    file = str(tmp_path / "bad.json")
    assert problems(
        tmp_path,
        {
            "vocabulary": "country",
            "version": "1",
            "values": {"USA": [], "XA": ["Atlantis"], "XB": ["atlantis!"]},
            "codes": {"11": "Farming"},
        },
    ) == [
        (file, "values.USA", "'USA' is not an ISO 3166-1 alpha-2 code (two capital letters)"),
        (file, "codes", "only the industry vocabulary has codes"),
        (file, "values.XB.0", "'atlantis!' also means 'XA'"),
    ]


def test_a_naics_code_that_is_no_prefix_or_names_no_listed_industry_is_named(tmp_path: Path) -> None:
    file = str(tmp_path / "bad.json")
    assert problems(tmp_path, {"vocabulary": "industry", "version": "1", "codes": {"5A": "Technology"}}) == [
        (file, "codes.5A", "'5A' is not a NAICS code or prefix (2 to 6 digits)")
    ]
    assert problems(tmp_path, {"vocabulary": "industry", "version": "1", "codes": {"5415": "Tecnology"}}) == [
        (file, "codes.5415", "'Tecnology' is not an industry of the vocabulary's values")
    ]


def test_status_and_currency_values_are_checked(tmp_path: Path) -> None:
    file = str(tmp_path / "bad.json")
    assert problems(
        tmp_path, {"vocabulary": "status", "version": "1", "sources": {"crm": {"archived": ["arc"]}}}
    ) == [(file, "sources.crm.archived", "Input should be 'active', 'inactive' or 'deleted'")]
    assert problems(tmp_path, {"vocabulary": "currency", "version": "1", "base": "XXY"}) == [
        (file, "base", "'XXY' is not a currency of the vocabulary's values")
    ]


def test_not_json_a_missing_version_and_an_unknown_vocabulary_are_named(tmp_path: Path) -> None:
    file = str(tmp_path / "bad.json")
    assert problems(tmp_path, "{not json")[0][:2] == (file, "")
    assert problems(tmp_path, {"vocabulary": "country"}) == [(file, "version", "required key is missing")]
    assert problems(tmp_path, {"vocabulary": "colour", "version": "1"})[0][:2] == (file, "vocabulary")


def test_a_vocabulary_path_that_is_no_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(VocabularyError, match="VOCABULARY_PATH is not a directory or s3:// prefix"):
        load_vocabularies(str(tmp_path / "missing"))


def test_the_vocabularies_in_effect_are_part_of_each_sources_transformation_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resources.sources.catalogue import get_sources, load_sources

    get_settings.cache_clear()
    get_sources.cache_clear()
    shipped = get_sources().source("crm").transformation_version
    assert shipped != load_sources().source("crm").transformation_version  # the shipped files count too
    (tmp_path / "countries.json").write_text(
        json.dumps({"vocabulary": "country", "version": "1", "values": {"XR": ["Ruritania"]}})
    )
    monkeypatch.setenv("VOCABULARY_PATH", str(tmp_path))
    get_settings.cache_clear()
    get_sources.cache_clear()
    try:
        assert get_sources().source("crm").transformation_version != shipped
    finally:
        monkeypatch.delenv("VOCABULARY_PATH")
        get_settings.cache_clear()
        get_sources.cache_clear()
