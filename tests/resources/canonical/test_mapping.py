"""Source record → canonical record: resources/canonical/mapping.py (README, "What files may contain"). Unit tests, no I/O but
the sample files in the repository."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import ijson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resources.canonical.mapping import CHANGE_TIME_KEYS, classify_entity_type, data_quality_score, map_record
from resources.canonical.model import CanonicalRecord, Metric, Refusal

ROOT = Path(__file__).resolve().parents[3]
CRM_SAMPLE = ROOT / "samples" / "crm-data" / "customer-data.json"
ERP_SAMPLE = ROOT / "samples" / "erp-data" / "erp-accounts.json"
LEGACY_SAMPLE = ROOT / "samples" / "legacy-data" / "legacy-companies.ndjson"
SEED = ROOT.parent / "shared" / "seed-data" / "customer-data.json"

CANONICAL_KEYS = {"name", "revenue", "employees", "industry"}

SAMPLES = ROOT / "samples"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def crm_record(**changes: object) -> dict:
    """A full 20-field CRM record as the parser yields it; a change of None removes the key."""
    record: dict = {
        "customer_id": "CUST-1001",
        "first_name": "John",
        "last_name": "Smith",
        "email": "john.smith@techcorp.com",
        "company_name": "Tech Corp Global",
        "industry": "Technology",
        "annual_revenue": 2500000,
        "employee_count": 120,
        "country": "United States",
        "region": "North America",
        "status": "active",
        "customer_tier": "enterprise",
        "lifetime_value": 50000,
        "first_contact_date": "2023-01-15",
        "last_purchase_date": "2024-11-10",
        "total_orders": 45,
        "total_spent": 125000,
        "preferred_channel": "email",
        "sales_rep_id": "SR-501",
        "created_at": "2024-11-17T10:30:00Z",
    }
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    return record


def ok(record: object, source: str = "crm") -> CanonicalRecord:
    result = map_record(source, record)  # type: ignore[arg-type]
    assert isinstance(result, CanonicalRecord), result
    return result


def refused(record: object, source: str = "crm") -> Refusal:
    result = map_record(source, record)  # type: ignore[arg-type]
    assert isinstance(result, Refusal), result
    return result


def codes(refusal: Refusal) -> list[tuple[str, str | None]]:
    return [(p.code, p.field) for p in refusal.problems]


def stored(result: CanonicalRecord) -> dict:
    """attributes_json read back the way jsonb reads it: every number exact."""
    return json.loads(result.attributes_json, parse_float=Decimal)


# --------------------------------------------------------------------------------------------------
# Shape of the record and the id


@pytest.mark.parametrize("record", [[1, 2], "text", 42, None, Decimal("1.5"), True])
def test_non_object_record_is_refused_as_not_an_object(record: object) -> None:
    refusal = refused(record)
    assert codes(refusal) == [("not_an_object", None)]
    assert refusal.source_id is None
    assert refusal.record_json == json.dumps(record, ensure_ascii=True, default=str)


def test_id_is_read_from_id_or_customer_id_and_id_wins() -> None:
    assert ok(crm_record()).source_id == "CUST-1001"
    assert ok(crm_record(customer_id=None, id="A-1")).source_id == "A-1"
    assert ok(crm_record(id="A-1")).source_id == "A-1"


def test_null_id_falls_through_to_customer_id() -> None:
    record = crm_record()
    record["id"] = None
    assert ok(record).source_id == "CUST-1001"


def test_integer_id_is_stringified_and_string_id_stripped() -> None:
    assert ok(crm_record(customer_id=30001)).source_id == "30001"
    assert ok(crm_record(customer_id="  CUST-7 \t")).canonical_id == "crm_CUST-7"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_or_blank_id_is_missing_id(value: object) -> None:
    record = crm_record(customer_id=None)
    if value is not None:
        record["customer_id"] = value
    assert [c for c, _ in codes(refused(record))] == ["missing_id"]


@pytest.mark.parametrize("value", [True, 12.0, Decimal(12), [1], {"a": 1}, "x" * 201, 10**250])
def test_id_of_wrong_type_or_too_long_is_invalid_id(value: object) -> None:
    refusal = refused(crm_record(customer_id=value))
    assert codes(refusal) == [("invalid_id", "customer_id")]
    assert refusal.source_id is None


def test_id_of_200_characters_is_accepted() -> None:
    assert ok(crm_record(customer_id="x" * 200)).source_id == "x" * 200


@pytest.mark.parametrize("source", ["crm", "erp", "legacy"])
def test_canonical_id_is_source_system_and_source_id(source: str) -> None:
    assert ok(crm_record(customer_id="X-9"), source).canonical_id == f"{source}_X-9"


def test_unknown_source_system_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="unknown source system"):
        map_record("sap", crm_record())  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Name


@pytest.mark.parametrize("key", ["company_name", "business_name", "businessName", "name"])
def test_name_is_read_from_each_source_variant(key: str) -> None:
    record = crm_record(company_name=None)
    record[key] = "  Acme Ltd  "
    result = ok(record)
    assert result.name == "Acme Ltd"
    assert result.attributes["name"] == "Acme Ltd"


def test_name_variants_are_taken_in_documented_order_skipping_nulls() -> None:
    record = {"id": 1, "company_name": None, "business_name": "B", "businessName": "C", "name": "D"}
    assert ok(record).name == "B"
    assert ok({"id": 1, "businessName": "C", "name": "D"}).name == "C"


@pytest.mark.parametrize(
    "name",
    [
        "Müller & Söhne GmbH",
        "株式会社テスト",
        "شركة الاختبار",
        "Zoë\u0301 e\u0301",
        "🚀 Rocket Labs",
        "Ελληνική Α.Ε.",
    ],
)
def test_unicode_name_is_kept_exactly(name: str) -> None:
    result = ok(crm_record(company_name=f"  {name}\n"))
    assert result.name == name  # no normalisation: combining marks stay as sent
    assert stored(result)["name"] == name
    assert name in result.attributes_json  # written as text, not \u escapes


@pytest.mark.parametrize("name", ["", "   "])
def test_blank_name_is_missing_name(name: str) -> None:
    assert codes(refused(crm_record(company_name=name))) == [("missing_name", "company_name")]


def test_record_without_any_name_is_missing_name() -> None:
    assert codes(refused(crm_record(company_name=None))) == [("missing_name", None)]


@pytest.mark.parametrize("name", [123, True, ["Acme"], {"en": "Acme"}, Decimal("1.5")])
def test_non_text_name_is_invalid_name(name: object) -> None:
    assert codes(refused(crm_record(company_name=name))) == [("invalid_name", "company_name")]


def test_name_limit_is_1000_characters_after_strip() -> None:
    assert ok(crm_record(company_name=" " + "n" * 1000 + " ")).name == "n" * 1000
    assert codes(refused(crm_record(company_name="n" * 1001))) == [("invalid_name", "company_name")]


# --------------------------------------------------------------------------------------------------
# Revenue and employees


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"annual_revenue": 2500000}, "annual_revenue"),
        ({"annual_revenue": None, "revenue": 2500000}, "revenue"),
        ({"annual_revenue": None, "financials": {"annualRevenue": 2500000, "currency": "USD"}}, "financials"),
    ],
)
def test_revenue_is_read_from_each_source_variant(changes: dict, field: str) -> None:
    result = ok(crm_record(**changes))
    assert result.revenue == Decimal(2500000)
    assert isinstance(result.revenue, Decimal)
    assert stored(result)["revenue"] == 2500000
    assert field in result.attributes


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"employee_count": 120}, "employee_count"),
        ({"employee_count": None, "employees": 120}, "employees"),
        ({"employee_count": None, "hrData": {"employeeCount": 120, "contractors": 4}}, "hrData"),
    ],
)
def test_employees_are_read_from_each_source_variant(changes: dict, field: str) -> None:
    result = ok(crm_record(**changes))
    assert result.employees == 120
    assert type(result.employees) is int
    assert stored(result)["employees"] == 120


def test_nested_erp_fields_stay_nested_in_attributes() -> None:
    record = {
        "id": "ERP-1",
        "businessName": "Nested AG",
        "financials": {"annualRevenue": Decimal("12000000.25"), "currency": "EUR"},
        "hrData": {"employeeCount": 40, "sites": [{"city": "Basel"}]},
        "sector": "Chemicals",
    }
    result = ok(record, "erp")
    assert (result.revenue, result.employees, result.industry) == (Decimal("12000000.25"), 40, "Chemicals")
    assert result.entity_type == "large_enterprise"
    back = stored(result)
    assert back["financials"] == {"annualRevenue": Decimal("12000000.25"), "currency": "EUR"}
    assert back["hrData"] == {"employeeCount": 40, "sites": [{"city": "Basel"}]}


def test_top_level_revenue_wins_over_nested_and_nested_under_a_non_object_is_absent() -> None:
    both = ok({"id": 1, "name": "N", "revenue": 5, "financials": {"annualRevenue": 9}})
    assert both.revenue == 5
    odd = ok({"id": 1, "name": "N", "financials": "n/a", "hrData": [1, 2]})
    assert (odd.revenue, odd.employees) == (None, None)
    assert stored(odd)["financials"] == "n/a"


def test_missing_revenue_and_employees_are_none_and_not_added_to_attributes() -> None:
    result = ok(crm_record(annual_revenue=None, employee_count=None))
    assert (result.revenue, result.employees) == (None, None)
    assert "revenue" not in result.attributes and "employees" not in stored(result)


def test_explicit_null_canonical_keys_of_the_source_are_kept() -> None:
    record = crm_record(annual_revenue=None)
    record["revenue"] = None
    assert stored(ok(record))["revenue"] is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2500000", Decimal(2500000)),
        ("1250.50", Decimal("1250.50")),
        ("  1250.5 \n", Decimal("1250.5")),
        ("+7", Decimal(7)),
        (".5", Decimal("0.5")),
        (1250.5, Decimal("1250.5")),
        (0.1, Decimal("0.1")),  # the float's shortest repr, not its binary expansion
        (Decimal("1250.50"), Decimal("1250.50")),
        (0, Decimal(0)),
        (10**18, Decimal(10**18)),
    ],
)
def test_revenue_accepts_numbers_and_plain_numeric_strings(raw: object, expected: Decimal) -> None:
    result = ok(crm_record(annual_revenue=raw))
    assert result.revenue == expected
    assert str(result.revenue) == str(expected)


@pytest.mark.parametrize(
    "raw",
    [
        True,
        False,
        "abc",
        "",
        "1,000",
        "1 000",
        "1e6",
        "0x10",
        "NaN",
        "Infinity",
        "١٢",
        [1],
        {"v": 1},
        float("nan"),
        float("inf"),
        Decimal("NaN"),
        Decimal("-Infinity"),
        Decimal("sNaN"),
    ],
)
def test_non_numeric_revenue_is_not_numeric(raw: object) -> None:
    assert codes(refused(crm_record(annual_revenue=raw)))[0] == ("not_numeric", "annual_revenue")


@pytest.mark.parametrize("raw", [-1, Decimal("-0.01"), "-5", -0.5])
def test_negative_revenue_is_negative(raw: object) -> None:
    assert codes(refused(crm_record(annual_revenue=raw))) == [("negative", "annual_revenue")]


@pytest.mark.parametrize(
    "raw", [10**18 + 1, Decimal("1000000000000000000.01"), 1e19, 10**400, Decimal("1E+1000000")]
)
def test_huge_revenue_is_out_of_range(raw: object) -> None:
    assert codes(refused(crm_record(annual_revenue=raw))) == [("out_of_range", "annual_revenue")]


def test_revenue_of_up_to_1e18_keeps_every_digit() -> None:
    raw = Decimal("999999999999999999.987654321")
    result = ok(crm_record(annual_revenue=raw))
    assert result.revenue == raw
    assert '"revenue":999999999999999999.987654321' in result.attributes_json


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(12.0, 12), (Decimal("12.0"), 12), ("12.00", 12), ("12", 12), (0, 0), (10_000_000, 10_000_000)],
)
def test_whole_employee_counts_become_int(raw: object, expected: int) -> None:
    result = ok(crm_record(employee_count=raw))
    assert result.employees == expected and type(result.employees) is int


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (12.5, "not_integer"),
        (Decimal("0.1"), "not_integer"),
        ("7.25", "not_integer"),
        (-1, "negative"),
        ("-3", "negative"),
        (-12.5, "negative"),
        (10_000_001, "out_of_range"),
        (1e30, "out_of_range"),
        (True, "not_numeric"),
        ("twelve", "not_numeric"),
        (float("nan"), "not_numeric"),
    ],
)
def test_bad_employee_counts_are_refused_with_their_code(raw: object, code: str) -> None:
    assert codes(refused(crm_record(employee_count=raw))) == [(code, "employee_count")]


def test_nested_field_problems_name_the_dotted_path() -> None:
    record = {
        "id": "E1",
        "business_name": "N",
        "financials": {"annualRevenue": "lots"},
        "hrData": {"employeeCount": -2},
    }
    assert codes(refused(record, "erp")) == [
        ("not_numeric", "financials.annualRevenue"),
        ("negative", "hrData.employeeCount"),
    ]


# --------------------------------------------------------------------------------------------------
# Industry


@pytest.mark.parametrize("key", ["industry_code", "industry", "sector"])
def test_industry_is_read_from_each_source_variant(key: str) -> None:
    record = crm_record(industry=None)
    record[key] = " Energy "
    result = ok(record)
    assert result.industry == "Energy" and stored(result)["industry"] == "Energy"


def test_industry_code_wins_lands_in_its_industry_and_is_kept_beside_it_as_text() -> None:
    coded = ok(crm_record(industry_code=541512))
    assert coded.industry == "Technology" and stored(coded)["naics_code"] == "541512"
    assert stored(coded)["industry_code"] == 541512  # the source field as it came
    # A number that is no NAICS code is no industry either: kept as its text, and counted unmapped.
    odd = ok(crm_record(industry=Decimal("52.1")))
    assert odd.industry == "52.1" and "naics_code" not in stored(odd)
    assert odd.unmapped == (("industry", "52.1"),)


def test_blank_industry_is_none_and_omitted_unless_the_source_had_the_key() -> None:
    kept = ok(crm_record(industry="   "))
    assert kept.industry is None and stored(kept)["industry"] is None
    dropped = ok(crm_record(industry=None, sector=""))
    assert dropped.industry is None and "industry" not in stored(dropped)


@pytest.mark.parametrize("raw", [True, ["IT"], {"code": "IT"}, float("nan"), "x" * 201])
def test_unusable_industry_is_invalid_industry(raw: object) -> None:
    assert codes(refused(crm_record(industry=raw))) == [("invalid_industry", "industry")]


# --------------------------------------------------------------------------------------------------
# Entity type


@pytest.mark.parametrize(
    ("revenue", "employees", "expected"),
    [
        (None, None, "small_business"),
        (Decimal(1_000_000), 100, "small_business"),
        (Decimal("1000000.01"), None, "medium_business"),
        (None, 101, "medium_business"),
        (Decimal(10_000_000), 1000, "medium_business"),
        (Decimal("10000000.01"), 0, "large_enterprise"),
        (Decimal(0), 1001, "large_enterprise"),
        (None, 1001, "large_enterprise"),
        (Decimal(50), 5000, "large_enterprise"),
    ],
)
def test_entity_type_thresholds_are_strictly_greater_than(
    revenue: Decimal | None, employees: int | None, expected: str
) -> None:
    assert classify_entity_type(revenue, employees) == expected


def test_map_record_sets_entity_type_from_canonical_values() -> None:
    assert ok(crm_record(annual_revenue="10000001", employee_count=3)).entity_type == "large_enterprise"
    assert ok(crm_record(annual_revenue=None, employee_count=None)).entity_type == "small_business"


# --------------------------------------------------------------------------------------------------
# attributes and attributes_json


def test_attributes_keep_every_source_field_and_add_canonical_keys() -> None:
    record = crm_record()
    result = ok(record)
    back = stored(result)
    for key, value in record.items():
        assert back[key] == value
    assert {k: back[k] for k in CANONICAL_KEYS} == {
        "name": "Tech Corp Global",
        "revenue": 2500000,
        "employees": 120,
        "industry": "Technology",
    }
    assert result.attributes == back


def test_mapping_does_not_modify_the_input_record() -> None:
    record = crm_record(metrics=[{"date": "2024-01-31", "type": "m", "value": 1}], financials={"a": 1})
    before = copy.deepcopy(record)
    ok(record)
    assert record == before


def test_attributes_json_is_compact_sorted_and_unescaped_utf8() -> None:
    result = ok({"id": 1, "name": "Ärzte", "b": {"z": 1, "a": 2}, "a": [3, "ü"]})
    assert result.attributes_json == '{"a":[3,"ü"],"b":{"a":2,"z":1},"id":1,"name":"Ärzte"}'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("123.45"), "123.45"),
        (Decimal("2500000.00"), "2500000"),  # integral → integer
        (Decimal("1250.50"), "1250.5"),  # same value; jsonb compares numerically
        (Decimal("0.1"), "0.1"),
        (Decimal("-0.000001"), "-1e-06"),
        (Decimal("12345678901234567890.123456789"), "12345678901234567890.123456789"),
        (Decimal("0.1000000000000000000001"), "0.1000000000000000000001"),
        (Decimal("1E+400"), "1E+400"),
        (Decimal("1.5E-320"), "1.5E-320"),
        (Decimal(123456789012345678901234567890), "123456789012345678901234567890"),
        (10**40, str(10**40)),
    ],
)
def test_decimals_are_written_as_exact_json_numbers(value: object, text: str) -> None:
    result = ok({"id": 1, "name": "N", "x": value, "deep": [{"y": value}]})
    assert f'"x":{text}}}' in result.attributes_json
    assert f'"y":{text}' in result.attributes_json
    back = stored(result)
    assert back["x"] == value and back["deep"][0]["y"] == value


def test_placeholder_lookalike_strings_in_the_source_survive_the_exact_decimal_path() -> None:
    lookalikes = {f"s{i}": f"\ue000{i}\ue001{j}\ue002" for i in range(3) for j in range(2)}
    result = ok({"id": 1, "name": "N", "x": Decimal("0.1000000000000000000001"), **lookalikes})
    back = stored(result)
    assert back["x"] == Decimal("0.1000000000000000000001")
    assert {k: back[k] for k in lookalikes} == lookalikes


def test_attributes_hash_is_md5_of_attributes_json() -> None:
    result = ok(crm_record())
    assert result.attributes_hash == hashlib.md5(result.attributes_json.encode("utf-8")).digest()
    assert len(result.attributes_hash) == 16


def test_hash_is_stable_for_the_same_input() -> None:
    assert ok(crm_record()).attributes_hash == ok(crm_record()).attributes_hash


def test_hash_ignores_key_order_at_every_level() -> None:
    record = crm_record(financials={"annualRevenue": 1, "currency": "USD"})
    shuffled = dict(reversed(list(record.items())))
    shuffled["financials"] = {"currency": "USD", "annualRevenue": 1}
    assert ok(record).attributes_hash == ok(shuffled).attributes_hash


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "inactive"},
        {"total_orders": 46},
        {"annual_revenue": 2500001},
        {"extra": None},
        {"financials": {"a": Decimal("1.01")}},
    ],
)
def test_a_changed_value_changes_the_hash(changes: dict) -> None:
    record = crm_record()
    changed = crm_record()
    for key, value in changes.items():
        changed[key] = value
    assert ok(record).attributes_hash != ok(changed).attributes_hash


def test_equal_numbers_in_other_notations_hash_the_same() -> None:
    assert (
        ok(crm_record(total_spent=Decimal("1250.50"))).attributes_hash
        == ok(crm_record(total_spent=Decimal("1250.5"))).attributes_hash
    )
    assert (
        ok(crm_record(total_spent=Decimal("125000.00"))).attributes_hash
        == ok(crm_record(total_spent=125000)).attributes_hash
    )


# --------------------------------------------------------------------------------------------------
# What jsonb cannot store


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"note": "a\x00b"}, "note"),
        ({"nested": {"deeper": ["ok", "bad\x00"]}}, "nested.deeper[1]"),
        ({"ke\x00y": 1}, None),
        ({"company_name": "Acme\x00"}, "company_name"),
    ],
)
def test_nul_character_anywhere_is_unstorable_text(record: dict, field: str | None) -> None:
    refusal = refused(crm_record(**record))
    assert [p.code for p in refusal.problems] == ["unstorable_text"]
    problem = refusal.problems[0]
    if field is not None:
        assert problem.field == field
    assert "\x00" not in problem.message and "\x00" not in (problem.field or "")


@pytest.mark.parametrize("record", [{"note": "a\ud800b"}, {"k\udfff": 1}, {"company_name": "x\udc00"}])
def test_lone_surrogate_anywhere_is_unstorable_text(record: dict) -> None:
    refusal = refused(crm_record(**record))
    assert [p.code for p in refusal.problems] == ["unstorable_text"]
    for p in refusal.problems:
        p.message.encode("utf-8")
        (p.field or "").encode("utf-8")


def test_literal_backslash_u0000_text_is_storable() -> None:
    result = ok(crm_record(note="C:\\u0000\\path"))
    assert stored(result)["note"] == "C:\\u0000\\path"


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("-inf"),
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("1E-20000"),
        Decimal("1E+131072"),
    ],
)
def test_numbers_postgresql_cannot_hold_are_unstorable_number(value: object) -> None:
    refusal = refused(crm_record(score={"v": value}))
    assert codes(refusal) == [("unstorable_number", "score.v")]


def test_values_without_a_json_form_are_refused_not_raised() -> None:
    assert [p.code for p in refused(crm_record(tags={"a", "b"})).problems] == ["unserialisable"]
    assert [p.code for p in refused(crm_record(when=datetime(2024, 1, 1))).problems] == ["unserialisable"]
    loop: dict = {}
    loop["self"] = loop
    refusal = refused(crm_record(loop=loop))
    assert [p.code for p in refusal.problems] == ["unserialisable"]
    json.loads(refusal.record_json)


def test_absurdly_deep_nesting_is_refused_not_raised() -> None:
    deep: object = "leaf"
    for _ in range(5000):
        deep = {"d": [deep]}
    refusal = refused(crm_record(deep=deep))
    assert [p.code for p in refusal.problems] == ["unserialisable"]
    assert refusal.record_json


def test_nul_in_the_id_is_escaped_in_the_refusal_source_id() -> None:
    refusal = refused(crm_record(customer_id="C\x00-1"))
    assert refusal.source_id == "C\\x00-1"


# --------------------------------------------------------------------------------------------------
# Relationships


@pytest.mark.parametrize("key", ["parent_id", "parent_company_id"])
def test_parent_reference_becomes_parent_canonical_id(key: str) -> None:
    record = {"id": "ERP-2", "business_name": "Child", key: " ERP-1 "}
    assert ok(record, "erp").parent_canonical_id == "erp_ERP-1"


def test_integer_parent_is_stringified_and_blank_parent_is_none() -> None:
    assert ok({"id": 2, "name": "C", "parent_id": 1}, "legacy").parent_canonical_id == "legacy_1"
    assert ok({"id": 2, "name": "C", "parent_id": "  "}).parent_canonical_id is None
    assert ok({"id": 2, "name": "C", "parent_id": None}).parent_canonical_id is None


def test_record_naming_itself_as_parent_is_self_parent() -> None:
    assert codes(refused({"id": "A", "name": "C", "parent_company_id": "A "})) == [
        ("self_parent", "parent_company_id")
    ]
    assert codes(refused({"id": 7, "name": "C", "parent_id": "7"})) == [("self_parent", "parent_id")]


@pytest.mark.parametrize("parent", [True, 1.5, ["A"], {"id": "A"}, "p" * 201])
def test_unusable_parent_is_invalid_parent(parent: object) -> None:
    assert codes(refused({"id": "B", "name": "C", "parent_id": parent})) == [("invalid_parent", "parent_id")]


# --------------------------------------------------------------------------------------------------
# Metrics


def test_metrics_are_parsed_with_utc_times_and_kept_in_attributes() -> None:
    raw = [
        {"date": "2024-01-31", "type": "monthly_revenue", "value": Decimal("123.45")},
        {"date": "2024-02-29T12:30:00", "type": " headcount ", "value": 42},
        {"date": "2024-03-31T23:00:00-02:00", "type": "monthly_revenue", "value": "-10.5"},
        {"date": "2024-04-30T00:00:00Z", "type": "margin", "value": -0.25},
    ]
    result = ok(crm_record(metrics=raw))
    assert result.metrics == [
        Metric("monthly_revenue", datetime(2024, 1, 31, tzinfo=UTC), Decimal("123.45")),
        Metric("headcount", datetime(2024, 2, 29, 12, 30, tzinfo=UTC), Decimal(42)),
        Metric("monthly_revenue", datetime(2024, 4, 1, 1, 0, tzinfo=UTC), Decimal("-10.5")),
        Metric("margin", datetime(2024, 4, 30, tzinfo=UTC), Decimal("-0.25")),
    ]
    assert all(m.observed_at.utcoffset() == timedelta(0) for m in result.metrics)
    assert stored(result)["metrics"][0] == {
        "date": "2024-01-31",
        "type": "monthly_revenue",
        "value": Decimal("123.45"),
    }


def test_absent_or_null_metrics_give_no_metrics() -> None:
    assert ok(crm_record()).metrics == []
    assert ok(crm_record(metrics=[])).metrics == []
    record = crm_record()
    record["metrics"] = None
    assert ok(record).metrics == []


@pytest.mark.parametrize(
    ("metrics", "field"),
    [
        ({"date": "2024-01-31", "type": "m", "value": 1}, "metrics"),
        (["2024-01-31"], "metrics[0]"),
        ([{"type": "m", "value": 1}], "metrics[0].date"),
        ([{"date": "31/01/2024", "type": "m", "value": 1}], "metrics[0].date"),
        ([{"date": 20240131, "type": "m", "value": 1}], "metrics[0].date"),
        ([{"date": "2024-02-30", "type": "m", "value": 1}], "metrics[0].date"),
        ([{"date": "2024-01-31", "value": 1}], "metrics[0].type"),
        ([{"date": "2024-01-31", "type": "  ", "value": 1}], "metrics[0].type"),
        ([{"date": "2024-01-31", "type": "t" * 101, "value": 1}], "metrics[0].type"),
        ([{"date": "2024-01-31", "type": 5, "value": 1}], "metrics[0].type"),
        ([{"date": "2024-01-31", "type": "m"}], "metrics[0].value"),
        ([{"date": "2024-01-31", "type": "m", "value": True}], "metrics[0].value"),
        ([{"date": "2024-01-31", "type": "m", "value": "n/a"}], "metrics[0].value"),
        ([{"date": "2024-01-31", "type": "m", "value": Decimal("NaN")}], "metrics[0].value"),
        ([{"date": "2024-01-31", "type": "m", "value": -(10**19)}], "metrics[0].value"),
        (
            [
                {"date": "2024-01-31", "type": "m", "value": 1},
                {"date": "2024-01-31T00:00:00Z", "type": "m", "value": 2},
            ],
            "metrics[1]",
        ),
    ],
)
def test_invalid_metric_entries_refuse_the_record_naming_the_entry(metrics: object, field: str) -> None:
    assert codes(refused(crm_record(metrics=metrics))) == [("invalid_metric", field)]


def test_every_bad_key_of_a_metric_is_reported() -> None:
    refusal = refused(
        crm_record(
            metrics=[
                {"date": "x"},
                {"date": "2024-01-01", "type": "m", "value": 1},
                {"type": "", "value": "?"},
            ]
        )
    )
    assert codes(refusal) == [
        ("invalid_metric", "metrics[0].date"),
        ("invalid_metric", "metrics[0].type"),
        ("invalid_metric", "metrics[0].value"),
        ("invalid_metric", "metrics[2].date"),
        ("invalid_metric", "metrics[2].type"),
        ("invalid_metric", "metrics[2].value"),
    ]


def test_identical_duplicate_metrics_are_kept_once() -> None:
    entry = {"date": "2024-01-31", "type": "m", "value": 1}
    assert len(ok(crm_record(metrics=[entry, dict(entry)])).metrics) == 1


# --------------------------------------------------------------------------------------------------
# Data quality


def test_data_quality_counts_six_facts() -> None:
    full = {
        "name": "N",
        "revenue": Decimal(1),
        "employees": 1,
        "industry": "I",
        "email": "a@b.co",
        "country": "DE",
    }
    assert data_quality_score(**full) == 1.0
    assert data_quality_score(name="N", revenue=None, employees=None, industry=None) == 0.17
    assert data_quality_score(name="N", revenue=Decimal(0), employees=0, industry="I") == 0.67
    assert data_quality_score(**{**full, "email": "not an email"}) == 0.83
    assert data_quality_score(**{**full, "country": None, "region": "Europe"}) == 1.0
    assert data_quality_score(**{**full, "country": " ", "region": 3}) == 0.83


def test_map_record_reports_data_quality_from_the_record() -> None:
    assert ok(crm_record()).data_quality == 1.0
    assert ok(crm_record(email="nobody", country=None, region=None, industry=None)).data_quality == 0.5


# --------------------------------------------------------------------------------------------------
# Refusals


def test_every_problem_of_a_record_is_reported() -> None:
    record = {
        "customer_id": "C-9",
        "company_name": "",
        "annual_revenue": "-5",
        "employee_count": 1.5,
        "industry": ["x"],
        "parent_id": "C-9",
        "metrics": [{"date": "nope", "type": "m", "value": 1}],
        "note": "nul\x00",
    }
    refusal = refused(record)
    assert codes(refusal) == [
        ("missing_name", "company_name"),
        ("negative", "annual_revenue"),
        ("not_integer", "employee_count"),
        ("invalid_industry", "industry"),
        ("self_parent", "parent_id"),
        ("invalid_metric", "metrics[0].date"),
        ("unstorable_text", "note"),
    ]
    assert refusal.source_id == "C-9"
    assert json.loads(refusal.record_json)["note"] == "nul\x00"
    assert refusal.record_json.isascii()


def test_refusal_record_json_is_the_record_as_ascii_json() -> None:
    record = {"id": "x", "name": "", "revenue": Decimal("1.5"), "city": "Zürich"}
    refusal = refused(record)
    assert refusal.record_json == json.dumps(record, ensure_ascii=True, default=str)


def test_refusal_record_json_never_raises_for_odd_objects() -> None:
    class Odd:
        def __str__(self) -> str:
            raise RuntimeError("no")

        def __repr__(self) -> str:
            raise RuntimeError("no")

    refusal = refused({"id": "x", "name": "", "odd": Odd()})
    assert isinstance(json.loads(refusal.record_json), str)
    assert refused(Odd()).record_json


def test_problem_messages_name_the_value_briefly() -> None:
    refusal = refused(crm_record(annual_revenue="not a number " * 50))
    message = refusal.problems[0].message
    assert "'not a number not a number" in message
    assert len(message) < 130


def test_problem_message_for_a_giant_integer_does_not_print_it() -> None:
    refusal = refused(crm_record(employee_count=10**5000))
    assert codes(refusal) == [("out_of_range", "employee_count")]
    assert "digits" in refusal.problems[0].message


# --------------------------------------------------------------------------------------------------
# The real exports and the samples


def _crm_records(path: Path) -> list:
    with path.open("rb") as f:
        return list(ijson.items(f, "records.item", use_float=False))


def test_crm_seed_export_maps_to_ten_distinct_valid_records() -> None:
    results = [map_record("crm", r) for r in _crm_records(CRM_SAMPLE)]
    assert all(isinstance(r, CanonicalRecord) for r in results), [
        r for r in results if isinstance(r, Refusal)
    ]
    ids = {r.canonical_id for r in results}  # type: ignore[union-attr]
    assert ids == {f"crm_CUST-{n}" for n in range(1001, 1011)}
    assert len({r.attributes_hash for r in results}) == 10  # type: ignore[union-attr]
    first = results[0]
    assert isinstance(first, CanonicalRecord)
    assert (first.name, first.revenue, first.employees, first.industry, first.entity_type) == (
        "Tech Corp Global",
        Decimal(2500000),
        120,
        "Technology",
        "medium_business",
    )


def test_crm_sample_is_the_seed_export_unchanged() -> None:
    if not SEED.exists():
        pytest.skip("shared seed data not present")
    assert CRM_SAMPLE.read_bytes() == SEED.read_bytes()


def test_erp_sample_maps_fully_with_parents_inside_the_file_and_metrics() -> None:
    with ERP_SAMPLE.open("rb") as f:
        results = [map_record("erp", r) for r in ijson.items(f, "item", use_float=False)]
    assert len(results) == 8 and all(isinstance(r, CanonicalRecord) for r in results), results
    records = {r.canonical_id: r for r in results}  # type: ignore[union-attr]
    parents = {r.parent_canonical_id for r in records.values()} - {None}
    assert parents and parents <= set(records)
    assert sum(len(r.metrics) for r in records.values()) >= 15
    months = {m.observed_at.strftime("%Y-%m") for r in records.values() for m in r.metrics}
    assert len(months) >= 4 and all(m.startswith("2024-") for m in months)
    assert {r.entity_type for r in records.values()} == {
        "small_business",
        "medium_business",
        "large_enterprise",
    }


def test_legacy_sample_maps_five_and_refuses_the_negative_revenue() -> None:
    lines = LEGACY_SAMPLE.read_text(encoding="utf-8").splitlines()
    results = [map_record("legacy", json.loads(line, parse_float=Decimal)) for line in lines if line.strip()]
    refusals = [r for r in results if isinstance(r, Refusal)]
    assert len(results) == 6 and len(refusals) == 1
    assert codes(refusals[0]) == [("negative", "revenue")]
    valid = [r for r in results if isinstance(r, CanonicalRecord)]
    # NAICS codes land in the canonical industries, the code kept beside each as text
    assert [(r.industry, r.attributes["naics_code"]) for r in valid] == [
        ("Technology", "541512"),
        ("Retail", "452210"),
        ("Healthcare", "621111"),
        ("Energy", "221114"),
        ("Food & Beverage", "311811"),
    ]
    assert [r.status for r in valid] == ["active", "active", "active", "active", "inactive"]


def test_erp_and_legacy_names_echo_crm_names_for_fuzzy_matching() -> None:
    crm = {r["company_name"].lower() for r in _crm_records(CRM_SAMPLE)}
    with ERP_SAMPLE.open("rb") as f:
        erp = [r.get("business_name") or r.get("businessName") for r in ijson.items(f, "item")]
    legacy = [json.loads(line)["name"] for line in LEGACY_SAMPLE.read_text(encoding="utf-8").splitlines()]
    for names in (erp, legacy):
        echoed = [
            n for n in names if any(n.lower().startswith(c.split()[0]) and n.lower() not in crm for c in crm)
        ]
        assert len(echoed) >= 3, names


# --------------------------------------------------------------------------------------------------
# Open-ended input


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.decimals(places=None)
    | st.text(st.characters(codec=None), max_size=20)  # surrogates and NUL included
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["date", "type", "value", "annualRevenue", "employeeCount"])
            | st.text(max_size=8),
            inner | st.sampled_from(["2024-01-31", "2024-02-29T10:00:00Z", "m"]),
            max_size=4,
        )
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "id",
        "customer_id",
        "company_name",
        "business_name",
        "businessName",
        "name",
        "annual_revenue",
        "revenue",
        "financials",
        "employee_count",
        "employees",
        "hrData",
        "industry_code",
        "industry",
        "sector",
        "parent_id",
        "parent_company_id",
        "metrics",
        "email",
        "country",
    ]
) | st.text(max_size=10)
json_records = st.dictionaries(field_names, json_values, max_size=10)


def _texts(value: object):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)


@FAST
@given(json_records | json_values)
def test_arbitrary_json_like_input_never_raises(record: object) -> None:
    result = map_record("crm", record)
    if isinstance(result, Refusal):
        assert result.problems
        assert result.record_json.isascii()
        for p in result.problems:
            json.dumps(p.as_dict(), ensure_ascii=False).encode("utf-8")
            assert "\x00" not in p.message and "\x00" not in (p.field or "")
    else:
        assert isinstance(result, CanonicalRecord)
        assert result.attributes_hash == hashlib.md5(result.attributes_json.encode("utf-8")).digest()
        assert not any("\x00" in t for t in _texts(json.loads(result.attributes_json)))
        result.attributes_json.encode("utf-8")
        json.loads(result.attributes_json, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
        assert 0.0 <= result.data_quality <= 1.0


# What jsonb can hold: no NUL, no lone surrogates.
storable_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)
extra_keys = storable_text.filter(lambda k: len(k) > 0).filter(
    lambda k: (
        k not in CANONICAL_KEYS
        and k
        not in {
            "id",
            "customer_id",
            "metrics",
            "parent_id",
            "parent_company_id",
            "company_name",
            "business_name",
            "businessName",
            "annual_revenue",
            "financials",
            "employee_count",
            "hrData",
            "industry_code",
            "sector",
        }
        # A change-time field holds a time or refuses the record (tested above), never free content.
        and k not in CHANGE_TIME_KEYS
    )
)
storable_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(
        allow_nan=False, allow_infinity=False, min_value=Decimal("-1e50"), max_value=Decimal("1e50")
    )
    | storable_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(storable_text, inner, max_size=3),
    max_leaves=10,
)


def _same(a: object, b: object) -> bool:
    """Equal as jsonb sees it: numbers by value, whatever their Python type."""
    if isinstance(a, float | Decimal | int) and not isinstance(a, bool):
        return (
            isinstance(b, float | Decimal | int)
            and not isinstance(b, bool)
            and Decimal(repr(a) if isinstance(a, float) else a)
            == Decimal(repr(b) if isinstance(b, float) else b)
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


@FAST
@given(
    source_id=st.integers(min_value=0) | storable_text.filter(lambda s: s.strip()),
    name=storable_text.filter(lambda s: s.strip()),
    extras=st.dictionaries(extra_keys, storable_values, max_size=8),
    seed=st.integers(0, 2**32 - 1),
)
def test_valid_records_round_trip_every_source_key(
    source_id: object, name: str, extras: dict, seed: int
) -> None:
    record = {"id": source_id, "name": name, **extras}
    result = ok(record, "legacy")
    back = stored(result)
    assert set(record) <= set(back)
    for key, value in extras.items():
        assert _same(value, back[key]), key
    assert back["name"] == name.strip() == result.name
    # Key order of the input never matters.
    items = list(record.items())
    random.Random(seed).shuffle(items)
    assert ok(dict(items), "legacy").attributes_hash == result.attributes_hash


amounts = st.decimals(min_value=0, max_value=Decimal(10**18), allow_nan=False, allow_infinity=False, places=4)


@FAST
@given(revenue=amounts, employees=st.integers(0, 10_000_000), pad=st.sampled_from(["", " ", "\t", " \n"]))
def test_numeric_strings_and_numbers_give_equal_canonical_values(
    revenue: Decimal, employees: int, pad: str
) -> None:
    as_numbers = ok({"id": 1, "name": "N", "revenue": revenue, "employees": employees})
    as_text = ok(
        {"id": 1, "name": "N", "revenue": f"{pad}{revenue:f}{pad}", "employees": f"{pad}{employees}{pad}"}
    )
    as_float = ok({"id": 1, "name": "N", "revenue": float(revenue), "employees": float(employees)})
    assert (as_numbers.revenue, as_numbers.employees) == (as_text.revenue, as_text.employees)
    assert as_numbers.attributes_hash == as_text.attributes_hash
    assert as_float.employees == employees
    assert as_float.revenue == Decimal(repr(float(revenue)))
    assert as_numbers.entity_type == as_text.entity_type == classify_entity_type(revenue, employees)


@FAST
@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, min_value=Decimal("-1e300"), max_value=Decimal("1e300")
    )
    | st.decimals(allow_nan=False, allow_infinity=False, places=40)
)
def test_any_storable_decimal_is_written_with_its_exact_value(value: Decimal) -> None:
    result = ok({"id": 1, "name": "N", "x": value})
    assert stored(result)["x"] == value


def test_timezone_offsets_of_metrics_are_normalised_to_utc() -> None:
    at = datetime(2024, 6, 30, 23, 59, 59, tzinfo=timezone(timedelta(hours=8)))
    result = ok(crm_record(metrics=[{"date": at.isoformat(), "type": "m", "value": 1}]))
    assert result.metrics[0].observed_at == at
    assert result.metrics[0].observed_at.tzinfo == UTC


# ---- the record's own change time (its position in the source's history) ---------------------------


def test_change_time_is_read_from_the_first_configured_field_in_utc() -> None:
    r = map_record("crm", {"id": 1, "name": "A", "updated_at": "2026-01-02T03:04:05+02:00"})
    assert isinstance(r, CanonicalRecord) and r.changed_at == datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)
    r = map_record("crm", {"id": 1, "name": "A", "lastModified": "2026-01-02"})
    assert isinstance(r, CanonicalRecord) and r.changed_at == datetime(2026, 1, 2, tzinfo=UTC)
    r = map_record("crm", {"id": 1, "name": "A", "stamp": "2026-01-02"}, ("stamp",))
    assert isinstance(r, CanonicalRecord) and r.changed_at == datetime(2026, 1, 2, tzinfo=UTC)


def test_a_record_without_a_change_time_or_with_record_times_off_has_none() -> None:
    assert map_record("crm", {"id": 1, "name": "A"}).changed_at is None  # type: ignore[union-attr]
    r = map_record("crm", {"id": 1, "name": "A", "updated_at": "2026-01-02"}, ())
    assert isinstance(r, CanonicalRecord) and r.changed_at is None


@given(
    st.one_of(
        st.text(max_size=30).filter(lambda t: _iso_or_none(t) is None),
        st.integers(),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
    )
)
def test_an_unreadable_change_time_refuses_the_record_naming_the_field(value: object) -> None:
    r = map_record("crm", {"id": 1, "name": "A", "updated_at": value})
    assert isinstance(r, Refusal)
    assert [(p.code, p.field) for p in r.problems] == [("invalid_change_time", "updated_at")]


def _iso_or_none(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None


# What our parsers build (ijson with use_float=False): no float, Decimal for every non-integer number.
parsed_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.integers(min_value=-(2**63) - 2, max_value=-(2**63) + 2)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**9), max_value=10**9)
    | st.text(st.characters(codec=None), max_size=20)  # surrogates and NUL included
)
parsed_values = st.recursive(
    parsed_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["date", "type", "value", "annualRevenue", "employeeCount"])
            | st.text(st.characters(codec=None), max_size=8),
            inner | st.sampled_from(["2024-01-31", "2024-02-29T10:00:00Z", "m"]),
            max_size=4,
        )
    ),
    max_leaves=12,
)
parsed_records = st.dictionaries(field_names, parsed_values, max_size=10)


@FAST
@given(
    st.fixed_dictionaries({"id": st.integers(0, 10**6), "name": st.sampled_from(["Acme", "Bäcker GmbH"])}),
    parsed_records,
)
def test_the_fast_encoder_for_parsed_records_gives_the_same_result(base: dict, record: dict) -> None:
    for candidate in (record, {**record, **base}):
        assert map_record("crm", candidate, json_types_only=True) == map_record("crm", candidate)


def test_the_fast_encoder_gives_the_same_result_on_the_sample_exports() -> None:
    for path in sorted(SAMPLES.glob("*/*.json")):
        prefix = "records.item" if path.read_bytes().lstrip()[:1] == b"{" else "item"
        with path.open("rb") as f:
            for record in ijson.items(f, prefix, use_float=False):
                assert map_record("crm", record, json_types_only=True) == map_record("crm", record)
