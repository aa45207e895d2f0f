"""Drift findings: a file's shape against its source's earlier loaded files (pure; the database side is
tests/assets/test_schema_drift.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resources.ingest.drift import KnownField, compare, percent, profile_after, profiler_for
from resources.ingest.shapes import FileShape
from resources.sources.catalogue import get_sources

CRM = get_sources().source("crm")


def _shape(records: list[Any]) -> FileShape:
    profiler = profiler_for(CRM)
    for r in records:
        profiler.observe(r)
    return profiler.finish()


def _rows(n: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"customer_id": f"C-{i}", **fields} for i in range(n)]


def _profile_of(*files: list[dict[str, Any]]) -> dict[str, KnownField]:
    profile: dict[str, KnownField] = {}
    for file_id, records in enumerate(files, start=1):
        profile.update(profile_after(profile, _shape(records), file_id))
    return profile


def _drift(profile: dict[str, KnownField], records: list[dict[str, Any]], **kw: Any) -> Any:
    return compare(_shape(records), profile, CRM, required_min_share=kw.get("share", 0.05), min_records=20)


def test_the_first_file_of_a_source_has_no_drift() -> None:
    drift = _drift({}, _rows(30, company_name="A", annual_revenue=1))
    assert not drift.drifted and drift.as_json()["marker"] == ""


def test_an_unchanged_second_file_has_no_drift() -> None:
    profile = _profile_of(_rows(30, company_name="A", annual_revenue=1))
    assert not _drift(profile, _rows(40, company_name="B", annual_revenue=2)).drifted


def test_a_renamed_optional_field_is_one_new_and_one_missing_finding() -> None:
    profile = _profile_of(_rows(30, company_name="A", annual_revenue=1))
    drift = _drift(profile, _rows(30, company_name="A", annualRevenue=1))
    assert [(c.field, c.share) for c in drift.new] == [("annualRevenue", 1.0)]
    assert [(c.field, c.share) for c in drift.missing] == [("annual_revenue", 1.0)]
    assert drift.marker() == "+1 -1" and not drift.required
    assert drift.summary() == "new: annualRevenue (100%); missing: annual_revenue (in 100%)"


def test_a_field_missing_from_some_records_reports_that_share() -> None:
    profile = _profile_of(_rows(10, company_name="A", email="a@b.c"))
    drift = _drift(profile, _rows(30, company_name="A", email="a@b.c") + _rows(10, company_name="A"))
    assert [(c.field, c.share) for c in drift.missing] == [("email", 0.25)]


def test_a_field_that_was_a_number_and_is_now_text_is_a_type_change() -> None:
    profile = _profile_of(_rows(30, company_name="A", annual_revenue=5))
    drift = _drift(profile, _rows(30, company_name="A", annual_revenue="5"))
    assert [(t.field, t.before, t.now) for t in drift.type_changes] == [
        ("annual_revenue", ("number",), ("string",))
    ]
    assert drift.marker() == "~1" and "annual_revenue number → string" in drift.summary()
    # null is an empty value, not a new type
    assert not _drift(profile, _rows(30, company_name="A", annual_revenue=None)).drifted


def test_a_change_is_reported_once_then_it_is_the_sources_shape() -> None:
    first, second = _rows(30, company_name="A"), _rows(30, company_name="A", tier="gold")
    profile = _profile_of(first, second)
    assert not _drift(profile, second).drifted
    assert profile["tier"] == KnownField(2, 2, 1, True, frozenset({"string"}))
    assert profile["company_name"].files_seen == 2


def test_a_renamed_name_is_one_finding_that_suggests_the_new_field() -> None:
    profile = _profile_of(_rows(30, company_name="A", tier="gold"))
    drift = _drift(profile, _rows(1000, companyName="A", tier="gold", zzz="x"))
    [gone] = drift.required
    assert str(gone) == (
        "required field name: `company_name` missing in 100% of records; new field `companyName` present "
        "in 100% (add it to the name paths of the source's definition, then reprocess)"
    )
    assert gone.usual == "company_name" and gone.suggestion is not None


def test_a_name_gone_from_a_sources_first_file_names_every_path_looked_for() -> None:
    drift = _drift({}, _rows(25, companyName="A"))
    [gone] = drift.required
    assert gone.usual is None and gone.suggestion is not None and gone.suggestion.field == "companyName"
    assert "`company_name` | `business_name` | `businessName` | `name` missing in 100%" in str(gone)


def test_a_name_present_in_enough_records_or_a_small_file_is_left_to_the_mapping() -> None:
    profile = _profile_of(_rows(30, company_name="A"))
    mostly_gone = _rows(90, other="x") + _rows(10, company_name="A")
    assert not _drift(profile, mostly_gone).required  # 10 % carry it: refused one by one
    assert _drift(profile, mostly_gone, share=0.2).required  # the threshold is the setting's
    assert not _drift(profile, _rows(19, other="x")).required  # below the minimum records


def test_a_missing_id_is_found_as_well() -> None:
    records = [{"account": f"A{i}", "company_name": "A"} for i in range(30)]
    [gone] = _drift({}, records).required
    assert gone.canonical == "id" and gone.suggestion is not None and gone.suggestion.field == "account"


def test_an_empty_file_neither_drifts_nor_changes_the_profile() -> None:
    profile = _profile_of(_rows(30, company_name="A"))
    assert not _drift(profile, []).drifted
    assert profile_after(profile, _shape([]), 9) == {}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(0, 1))
def test_a_share_is_never_shown_as_all_or_nothing_unless_it_is(share: float) -> None:
    shown = percent(share)
    assert (shown == "100%") == (share >= 1) and (shown == "0%") == (share <= 0)
