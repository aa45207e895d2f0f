"""Source definitions (resources/sources/): the format's checks, the errors (file, key, problem), the
shipped three as the mapping read them before, overrides. Unit tests: files in tmp_path, no services."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from resources.canonical.mapping import CHANGE_TIME_KEYS, map_record
from resources.canonical.model import CanonicalRecord, Refusal
from resources.sources.catalogue import SHIPPED, load_sources
from resources.sources.definition import SourceDefinitionError

BILLING = {
    "name": "billing",
    "prefixes": ["billing-data/"],
    "fields": {
        "id": ["account_ref"],
        "name": ["org_name"],
        "revenue": {"paths": ["arr_cents"], "scale": "0.01"},
    },
}


def write(folder: Path, name: str, document: object) -> Path:
    path = folder / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def problems(tmp_path: Path, document: object, name: str = "bad.json") -> list[tuple[str, str, str]]:
    write(tmp_path, name, document)
    with pytest.raises(SourceDefinitionError) as caught:
        load_sources(str(tmp_path))
    return [(p.file, p.key, p.problem) for p in caught.value.problems]


def test_the_shipped_definitions_list_what_the_mapping_read_before_in_the_same_order() -> None:
    sources = load_sources()
    assert sources.names == ("crm", "erp", "legacy")
    for name in sources.names:
        c = sources.source(name)
        assert c.prefixes == (f"{name}-data/",)
        assert c.suffixes == (".json", ".ndjson", ".jsonl", ".json.gz", ".ndjson.gz", ".jsonl.gz")
        assert [p[0] for p in c.id] == ["id", "customer_id"]
        assert [p[0] for p in c.name_paths] == ["company_name", "business_name", "businessName", "name"]
        assert [p[0] for p in c.revenue] == ["annual_revenue", "revenue", "financials.annualRevenue"]
        assert [p[0] for p in c.employees] == ["employee_count", "employees", "hrData.employeeCount"]
        assert [p[0] for p in c.industry] == ["industry_code", "industry", "sector"]
        assert [p[0] for p in c.parent] == ["parent_id", "parent_company_id"]
        assert [p[0] for p in c.metrics] == ["metrics"]
        assert tuple(p[0] for p in c.change_time) == CHANGE_TIME_KEYS
        assert (c.revenue_scale, c.employees_scale) == (None, None)
        assert c.revenue_numeric_strings and c.employees_numeric_strings
        assert not c.name_combinations and not c.industry_combinations
        assert [p[0] for p in c.country] == ["country"]
        assert [p[0] for p in c.currency] == ["financials.currency", "currency"]
        assert c.currency_heads == {"financials", "currency"}
    assert {n: [p[0] for p in sources.source(n).status] for n in sources.names} == {
        "crm": ["status"],
        "erp": ["account_status", "status"],
        "legacy": ["legacy_status", "status"],
    }
    assert sources.compiled["erp"].revenue[2] == (
        "financials.annualRevenue",
        "financials",
        ("annualRevenue",),
    )
    assert {sources.definitions[n].priority for n in sources.names} == {300, 200, 100}


def test_a_definition_in_the_directory_adds_a_source(tmp_path: Path) -> None:
    write(tmp_path, "billing.json", BILLING)
    sources = load_sources(str(tmp_path))
    assert sources.names == ("billing", "crm", "erp", "legacy")
    assert sources.origins["billing"] == str(tmp_path / "billing.json")
    assert sources.of_key("billing-data/2026/x.json").name == "billing"  # type: ignore[union-attr]
    assert sources.of_key("sap-data/x.json") is None
    assert sources.upload_prefix("billing") == "billing-data/"


def test_a_definition_of_the_same_name_overrides_the_shipped_one(tmp_path: Path) -> None:
    crm = json.loads((SHIPPED / "crm.json").read_text())
    crm["prefixes"] = ["crm-v2/"]
    crm["fields"]["name"] = {"paths": ["display_name"], "combine": [{"parts": ["given", "family"]}]}
    write(tmp_path, "my-crm.json", crm)
    sources = load_sources(str(tmp_path))
    assert sources.names == ("crm", "erp", "legacy")
    assert sources.origins["crm"] == str(tmp_path / "my-crm.json")
    assert sources.of_key("crm-data/x.json") is None and sources.of_key("crm-v2/x.json") is not None
    compiled = sources.source("crm")
    assert map_record(compiled, {"id": 1, "display_name": "Shown"}).name == "Shown"  # type: ignore[union-attr]
    assert map_record(compiled, {"id": 1, "given": " Ada ", "family": "Lovelace"}).name == "Ada Lovelace"  # type: ignore[union-attr]
    refused = map_record(compiled, {"id": 1, "company_name": "Old key"})
    assert isinstance(refused, Refusal)
    assert refused.problems[0].message == "record has no name (looked for display_name, given+family)"
    assert load_sources().source("crm").prefixes == ("crm-data/",)  # the shipped file itself is untouched


def test_conversions_scale_cents_and_refuse_numeric_text_when_told(tmp_path: Path) -> None:
    billing = {
        **BILLING,
        "fields": {**BILLING["fields"], "employees": {"paths": ["seats"], "numeric_strings": False}},
    }
    write(tmp_path, "billing.json", billing)
    c = load_sources(str(tmp_path)).source("billing")
    r = map_record(c, {"account_ref": "A-1", "org_name": "Acme", "arr_cents": 1234567, "seats": 12})
    assert isinstance(r, CanonicalRecord)
    assert (r.canonical_id, r.revenue, r.employees) == ("billing_A-1", Decimal("12345.67"), 12)
    assert (
        json.loads(r.attributes_json)["revenue"] == 12345.67
        and json.loads(r.attributes_json)["arr_cents"] == 1234567
    )
    r = map_record(c, {"account_ref": "A-1", "org_name": "Acme", "arr_cents": "250", "seats": "12"})
    assert isinstance(r, Refusal)
    assert [(p.code, p.field) for p in r.problems] == [("not_numeric", "seats")]
    r = map_record(c, {"account_ref": "A-1", "org_name": "Acme", "arr_cents": -5})
    assert isinstance(r, Refusal) and [(p.code, p.field) for p in r.problems] == [("negative", "arr_cents")]


def test_an_unknown_key_is_named_with_its_path_and_file(tmp_path: Path) -> None:
    doc = {**BILLING, "fields": {**BILLING["fields"], "revenue": {"paths": ["arr"], "scael": "0.01"}}}
    assert problems(tmp_path, doc) == [
        (str(tmp_path / "bad.json"), "fields.revenue.scael", "unknown key (not part of a source definition)")
    ]


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"name": "Billing"}, "name", "should match pattern"),
        ({"prefixes": []}, "prefixes", "at least 1 item"),
        ({"prefixes": ["billing-data"]}, "prefixes", "ends with '/'"),
        ({"formats": ["xml"]}, "formats.0", "'json' or 'ndjson'"),
        ({"priority": -1}, "priority", "greater than or equal to 0"),
        ({"snapshot": "sometimes"}, "snapshot", "valid boolean"),
        (
            {"delete_markers": [{"path": "deleted", "values": []}]},
            "delete_markers.0.values",
            "at least 1 item",
        ),
        ({"fields": {"name": ["org_name"]}}, "fields.id", "required key is missing"),
        ({"fields": {"id": [], "name": ["org_name"]}}, "fields.id", "needs at least one path"),
        ({"fields": {"id": ["a..b"], "name": ["n"]}}, "fields.id.paths.0", "is not a field path"),
        ({"fields": {"id": ["a", "a"], "name": ["n"]}}, "fields.id.paths", "listed twice: a"),
        (
            {"fields": {"id": ["a"], "name": ["n"], "revenue": {"paths": ["r"], "scale": 0}}},
            "fields.revenue.scale",
            "greater than 0",
        ),
        (
            {"fields": {"id": ["a"], "name": ["n"], "revenue": {"combine": [{"parts": ["a", "b"]}]}}},
            "fields.revenue.combine",
            "numbers cannot be combined",
        ),
        (
            {"fields": {"id": ["a"], "name": {"combine": [{"parts": ["given"]}]}}},
            "fields.name.combine.0.parts",
            "at least 2 items",
        ),
    ],
)
def test_each_problem_names_the_file_the_key_and_the_problem(
    tmp_path: Path, change: dict, key: str, words: str
) -> None:
    [(file, found_key, problem)] = problems(tmp_path, {**BILLING, **change})
    assert (file, found_key) == (str(tmp_path / "bad.json"), key)
    assert words in problem


def test_a_document_that_is_not_json_or_not_an_object_is_named(tmp_path: Path) -> None:
    [(file, key, problem)] = problems(tmp_path, '{"name": "billing",')
    assert (file, key) == (str(tmp_path / "bad.json"), "") and problem.startswith("not JSON")
    assert problems(tmp_path, "[1]") == [(str(tmp_path / "bad.json"), "", "must be an object, not list")]


def test_every_problem_of_every_file_is_reported_at_once_in_the_message(tmp_path: Path) -> None:
    write(tmp_path, "a.json", {**BILLING, "priority": "high", "colour": "red"})
    write(tmp_path, "b.json", {**BILLING, "name": "other", "prefixes": ["billing-data/x/"]})
    with pytest.raises(SourceDefinitionError) as caught:
        load_sources(str(tmp_path))
    assert [(Path(p.file).name, p.key) for p in caught.value.problems] == [
        ("a.json", "priority"),
        ("a.json", "colour"),
    ]
    assert f"{tmp_path / 'a.json'}: colour: unknown key" in str(caught.value)


def test_two_sources_cannot_share_a_prefix_or_a_name(tmp_path: Path) -> None:
    write(tmp_path, "a.json", BILLING)
    write(tmp_path, "b.json", {**BILLING, "name": "other", "prefixes": ["billing-data/x/"]})
    [(file, key, problem)] = [(p.file, p.key, p.problem) for p in _raised(tmp_path)]
    assert (Path(file).name, key) == (
        "b.json",
        "prefixes.0",
    ) and "overlaps 'billing-data/' of source 'billing'" in problem
    (tmp_path / "b.json").write_text(json.dumps(BILLING))
    [(file, key, problem)] = [(p.file, p.key, p.problem) for p in _raised(tmp_path)]
    assert (Path(file).name, key) == ("b.json", "name") and "also defined by" in problem
    (tmp_path / "b.json").write_text(json.dumps({**BILLING, "name": "other", "prefixes": ["crm-data/"]}))
    assert str(_raised(tmp_path)[0]).startswith(
        f"{tmp_path / 'b.json'}: prefixes.0: 'crm-data/' overlaps 'crm-data/' of source 'crm'"
    )


def _raised(folder: Path) -> tuple:
    with pytest.raises(SourceDefinitionError) as caught:
        load_sources(str(folder))
    return caught.value.problems


def test_a_location_that_is_not_a_directory_is_named(tmp_path: Path) -> None:
    [p] = _raised(tmp_path / "missing")
    assert (p.file, p.key) == (str(tmp_path / "missing"), "") and "not a directory" in p.problem
