"""Survivorship (resources/golden/survivorship.py): which member each golden field comes from."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from resources.golden.store import source_priorities
from resources.golden.survivorship import (
    GOLDEN_FIELDS,
    Member,
    SurvivorshipRules,
    build_record,
    compile_rules,
)
from resources.sources.catalogue import get_sources

PRIORITIES = {"crm": 300, "erp": 200, "legacy": 100}


def member(cid: str, **kw: Any) -> Member:
    source = cid.split("_", 1)[0]
    base: dict[str, Any] = {
        "canonical_id": cid,
        "source_system": source,
        "name": f"name of {cid}",
        "industry": None,
        "revenue": None,
        "employees": None,
        "attributes": {},
    }
    return Member(**{**base, **kw})


def at(day: int) -> datetime:
    return datetime(2026, 1, day, tzinfo=UTC)


def test_the_higher_priority_source_wins_a_field_by_default():
    record = build_record(
        [member("legacy_1", industry="Retail"), member("crm_1", industry="Technology")], PRIORITIES
    )
    assert record.values["industry"] == "Technology"
    assert record.lineage["industry"] == "crm_1"


def test_the_shipped_source_definitions_priorities_rank_crm_over_erp_over_legacy():
    priorities = source_priorities(get_sources())
    assert priorities["crm"] > priorities["erp"] > priorities["legacy"]


def test_equal_priority_goes_to_the_newest_in_the_order_of_truth():
    older = member("crm_1", name="Old Name", source_changed_at=at(1), source_file_at=at(5), source_file_id=9)
    newer = member("crm_2", name="New Name", source_changed_at=at(2), source_file_at=at(1), source_file_id=1)
    record = build_record([older, newer], PRIORITIES)
    assert (record.values["name"], record.lineage["name"]) == ("New Name", "crm_2")


def test_the_order_of_truth_falls_back_to_file_time_then_file_id():
    a = member("crm_1", name="A", source_changed_at=at(1), source_file_at=at(1), source_file_id=7)
    b = member("crm_2", name="B", source_changed_at=at(1), source_file_at=at(1), source_file_id=8)
    c = member("crm_3", name="C", source_changed_at=at(1), source_file_at=at(2), source_file_id=1)
    assert build_record([a, b], PRIORITIES).values["name"] == "B"
    assert build_record([a, b, c], PRIORITIES).values["name"] == "C"


def test_an_unknown_position_is_older_than_any_known_one():
    unknown = member("crm_1", name="Unknown")
    known = member("crm_2", name="Known", source_changed_at=at(1))
    assert build_record([unknown, known], PRIORITIES).values["name"] == "Known"


def test_then_the_more_complete_member_wins():
    sparse = member("crm_1", name="Sparse")
    full = member("crm_2", name="Full", industry="Tech", employees=5, attributes={"email": "a@b.c"})
    record = build_record([sparse, full], PRIORITIES)
    assert record.values["name"] == "Full"


def test_a_null_or_blank_value_never_wins_over_a_present_one():
    crm = member("crm_1", industry="  ", attributes={"email": None})
    legacy = member("legacy_1", industry="Retail", attributes={"email": "x@y.z"})
    record = build_record([crm, legacy], PRIORITIES)
    assert record.values["industry"] == "Retail" and record.lineage["industry"] == "legacy_1"
    assert record.values["email"] == "x@y.z"


def test_revenue_takes_the_newest_figure_first_by_default():
    crm = member("crm_1", revenue=Decimal(100), source_changed_at=at(1))
    erp = member("erp_1", revenue=Decimal(250), source_changed_at=at(3))
    record = build_record([crm, erp], PRIORITIES)
    assert (record.values["revenue"], record.lineage["revenue"]) == (Decimal(250), "erp_1")
    assert record.lineage["name"] == "crm_1"  # other fields keep priority first


def test_a_field_override_replaces_its_order():
    rules = SurvivorshipRules(overrides={"name": ("completeness", "source_priority")})
    crm = member("crm_1", name="Short")
    legacy = member("legacy_1", name="Long", industry="Retail", revenue=Decimal(1))
    assert build_record([crm, legacy], PRIORITIES, rules).values["name"] == "Long"


def test_attribute_fields_are_read_from_their_configured_paths():
    rules = SurvivorshipRules(paths={"phone": ("contact.tel",)})
    m = member("crm_1", attributes={"contact": {"tel": "+44 1"}, "phone": "ignored", "country": "Canada"})
    record = build_record([m], PRIORITIES, rules)
    assert record.values["phone"] == "+44 1"
    assert record.values["country"] == "Canada"  # the default paths of the other fields stay


def test_configured_attributes_join_the_record_with_their_lineage():
    rules = SurvivorshipRules(attributes={"tier": ("customer_tier",)})
    record = build_record(
        [member("erp_1", attributes={"customer_tier": "gold"}), member("crm_1")], PRIORITIES, rules
    )
    assert record.values["tier"] == "gold" and record.lineage["tier"] == "erp_1"


def test_every_golden_field_is_in_the_record_even_without_a_value():
    record = build_record([member("crm_1")], PRIORITIES)
    assert set(GOLDEN_FIELDS) <= record.values.keys()
    assert record.values["email"] is None and "email" not in record.lineage


def test_deleted_members_do_not_contribute_while_another_is_alive():
    gone = member("crm_1", name="Deleted Co", status="deleted")
    alive = member("legacy_1", name="Alive Co")
    record = build_record([gone, alive], PRIORITIES)
    assert record.values["name"] == "Alive Co"


def test_when_every_member_is_deleted_they_still_make_the_record():
    record = build_record([member("crm_1", name="Gone", status="deleted")], PRIORITIES)
    assert record.values["name"] == "Gone"


def test_the_same_members_in_any_order_give_the_same_record():
    ms = [member(f"crm_{i}", name=f"N{i}") for i in range(5)]
    assert build_record(ms, PRIORITIES) == build_record(list(reversed(ms)), PRIORITIES)


def test_rules_refuse_unknown_keys_and_fields():
    with pytest.raises(ValidationError):
        SurvivorshipRules.model_validate({"ordr": ["newest"]})
    with pytest.raises(ValidationError):
        SurvivorshipRules(paths={"fax": ("fax",)})
    with pytest.raises(ValidationError):
        SurvivorshipRules.model_validate({"order": ["loudest"]})


def test_the_rules_version_changes_with_the_rules_or_the_priorities():
    rules = SurvivorshipRules()
    assert rules.version(PRIORITIES) == SurvivorshipRules().version(PRIORITIES)
    assert rules.version(PRIORITIES) != rules.version({**PRIORITIES, "crm": 1})
    assert rules.version(PRIORITIES) != SurvivorshipRules(order=("newest",)).version(PRIORITIES)


def test_an_override_must_name_a_field_of_the_record():
    with pytest.raises(ValidationError, match=r"overrides\.fax"):
        SurvivorshipRules(overrides={"fax": ("newest",)})
    assert SurvivorshipRules(attributes={"tier": ("t",)}, overrides={"tier": ("newest",)})


def test_a_single_member_is_every_fields_source_deleted_or_not():
    rules = SurvivorshipRules(attributes={"tier": ("customer_tier",)})
    for status in ("active", "deleted"):
        m = member(
            "erp_1",
            industry=" Retail ",
            revenue=Decimal(5),
            attributes={"customer_tier": "gold", "email": "  ", "phone": 12},
            status=status,
        )
        record = build_record([m], PRIORITIES, rules)
        assert record.values["industry"] == "Retail" and record.values["phone"] == "12"
        assert record.values["email"] is None and record.values["tier"] == "gold"
        assert record.lineage == {f: "erp_1" for f in ("name", "industry", "revenue", "phone", "tier")}


def test_rules_compiled_once_give_the_records_the_rules_give():
    rules = SurvivorshipRules(
        paths={"phone": ("contact.tel", "phone")},
        attributes={"tier": ("customer_tier", "meta.tier")},
        overrides={"name": ("newest", "completeness")},
    )
    plan = compile_rules(rules)
    groups = [
        [member("crm_1", attributes={"contact": {"tel": "+1"}}), member("erp_2", source_changed_at=at(3))],
        [member("legacy_3", attributes={"meta": {"tier": "silver"}, "phone": "9"})],
        [member("crm_4", status="deleted"), member("erp_5", name=" ", attributes={"customer_tier": "gold"})],
    ]
    for ms in groups:
        assert build_record(ms, PRIORITIES, plan) == build_record(ms, PRIORITIES, rules)
