"""entity_scope on the segment operations: source records (the default, as every answer always was) or the
golden entities of the latest resolution, with their golden records' values. Resolutions are written
through the real golden store (its writer and survivorship) from clusterings the tests construct; one
test resolves the samples with the real engine through the golden asset."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from dagster import Definitions, instance_for_test

from assets.golden import GOLDEN_ENTITIES
from pipeline_defs.domains.golden import golden_definitions
from resources.analytics import run_operation
from tests.support.golden import add_entities, clusters, resolve
from tests.support.ingest import Driver
from tests.support.stack import SAMPLES

pytestmark = pytest.mark.integration

TECH = [
    {"canonical_id": "crm_T1", "name": "Tech Corp Global", "industry": "Technology", "revenue": 2_500_000},
    {
        "canonical_id": "erp_T2",
        "name": "Tech Corp Global Inc.",
        "industry": "Technology",
        "revenue": 2_600_000,
    },
    {"canonical_id": "legacy_T3", "name": "TECH CORP GLOBAL", "industry": "Technology", "revenue": 2_400_000},
]
OTHERS = [
    {"canonical_id": "crm_Q1", "name": "Quantum Analytics", "industry": "Technology", "revenue": 2_550_000},
    {"canonical_id": "erp_R1", "name": "Retail Masters", "industry": "Retail", "revenue": 900_000},
]


def rows(url: str, operation: str, **params: Any) -> list[dict[str, Any]]:
    res = run_operation(url, operation, params)
    return [dict(zip(res.columns, r, strict=True)) for r in res.rows]


def seed_and_resolve(db: Any) -> None:
    # Survivorship (resources/golden/survivorship.py): the newest record's revenue (the ERP one's, changed
    # last), the name from the source of highest priority (CRM).
    days = {"crm_T1": 1, "erp_T2": 5, "legacy_T3": 2, "crm_Q1": 3, "erp_R1": 4}
    add_entities(db.owner_url, [{**r, "changed_at": _at(days[r["canonical_id"]])} for r in TECH + OTHERS])
    resolve(
        db.writer_url,
        clusters(["crm_T1", "erp_T2", "legacy_T3"], ["crm_Q1"], ["erp_R1"]),
        run_id="r1",
    )


def _at(day: int) -> datetime:
    return datetime(2026, 1, day, tzinfo=UTC)


def golden_id_of(db: Any, canonical_id: str) -> str:
    with psycopg.connect(db.owner_url) as conn:
        row = conn.execute(
            "SELECT golden_id FROM golden.members WHERE canonical_id = %s", (canonical_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_golden_scope_ranks_a_company_three_systems_know_once_with_its_golden_record(db) -> None:
    seed_and_resolve(db)
    source = rows(db.reader_url, "revenue_analysis", group_by="industry", top_n=10)
    assert [r["canonical_id"] for r in source if r["segment"] == "Technology"] == [
        "erp_T2",
        "crm_Q1",
        "crm_T1",
        "legacy_T3",
    ]
    golden = rows(db.reader_url, "revenue_analysis", group_by="industry", top_n=10, entity_scope="golden")
    tech = [r for r in golden if r["segment"] == "Technology"]
    assert [(r["rank"], r["name"], r["value"], r["member_count"]) for r in tech] == [
        (1, "Tech Corp Global", Decimal(2_600_000), 3),
        (2, "Quantum Analytics", Decimal(2_550_000), 1),
    ]
    assert tech[0]["golden_id"] == golden_id_of(db, "crm_T1")
    # canonical_id: the member the golden name came from.
    assert tech[0]["canonical_id"] == "crm_T1" and tech[0]["segment_size"] == 2
    assert tech[1]["previous_value"] == Decimal(2_600_000)


def test_source_scope_is_the_default_and_answers_as_before_a_resolution(db) -> None:
    add_entities(db.owner_url, TECH + OTHERS)
    before = {
        op: run_operation(db.reader_url, op, {}).rows
        for op in ("revenue_analysis", "customer_analysis", "count_analysis")
    }
    resolve(db.writer_url, clusters(["crm_T1", "erp_T2", "legacy_T3"], ["crm_Q1"], ["erp_R1"]), run_id="r1")
    for op, answer in before.items():
        assert run_operation(db.reader_url, op, {}).rows == answer
        assert run_operation(db.reader_url, op, {"entity_scope": "source"}).rows == answer


def test_a_record_no_resolution_has_seen_counts_as_its_own_golden_entity(db) -> None:
    seed_and_resolve(db)
    add_entities(
        db.owner_url, [{"canonical_id": "legacy_N1", "name": "Newcomer", "industry": "Retail", "revenue": 5}]
    )
    golden = rows(db.reader_url, "revenue_analysis", group_by="industry", entity_scope="golden")
    newcomer = [r for r in golden if r["canonical_id"] == "legacy_N1"]
    assert newcomer == [
        {
            "segment": "Retail",
            "rank": 2,
            "canonical_id": "legacy_N1",
            "name": "Newcomer",
            "value": Decimal(5),
            "previous_value": Decimal(900_000),
            "gap_to_previous": Decimal(899_995),
            "percent_rank": Decimal("1.0000"),
            "share_of_segment_pct": Decimal("0.0006"),
            "segment_size": 2,
            "golden_id": None,
            "member_count": 1,
        }
    ]
    counts = rows(db.reader_url, "count_analysis", group_by="industry", entity_scope="golden")
    assert {r["segment"]: (r["entities"], r["members"]) for r in counts} == {
        "Technology": (2, 4),
        "Retail": (2, 2),
    }


def test_golden_scope_before_any_resolution_is_one_golden_entity_per_record(db) -> None:
    add_entities(db.owner_url, TECH + OTHERS)
    source = rows(db.reader_url, "customer_analysis", group_by="industry")
    golden = rows(db.reader_url, "customer_analysis", group_by="industry", entity_scope="golden")
    assert [{k: v for k, v in r.items() if k != "members"} for r in golden] == source
    assert [r["members"] for r in golden] == [r["entities"] for r in source]


def test_a_golden_entity_counts_its_live_members_and_is_left_out_when_all_are_deleted(db) -> None:
    seed_and_resolve(db)
    add_entities(db.owner_url, [{**TECH[0], "status": "deleted"}, {**OTHERS[1], "status": "deleted"}])
    golden = rows(db.reader_url, "count_analysis", group_by="industry", entity_scope="golden")
    # Tech Corp keeps two live members; Retail Masters' only member is deleted.
    assert {r["segment"]: (r["entities"], r["members"]) for r in golden} == {"Technology": (2, 3)}
    everything = rows(
        db.reader_url, "count_analysis", group_by="industry", entity_scope="golden", include_deleted=True
    )
    assert {r["segment"]: (r["entities"], r["members"]) for r in everything} == {
        "Technology": (2, 4),
        "Retail": (1, 1),
    }


@pytest.mark.parametrize("include_deleted", [False, True])
def test_the_members_golden_rows_stand_for_are_exactly_the_records_source_scope_counts(
    db, include_deleted
) -> None:
    seed_and_resolve(db)
    add_entities(
        db.owner_url,
        [
            {**TECH[1], "status": "deleted"},
            {"canonical_id": "crm_N2", "name": "Unresolved", "industry": "Retail", "revenue": 7},
            {"canonical_id": "erp_N3", "name": "Gone", "industry": "Energy", "status": "deleted"},
        ],
    )
    for op in ("count_analysis", "customer_analysis"):
        for group_by in ("industry", "source_system", "entity_type", "region", "country"):
            params = {"group_by": group_by, "include_deleted": include_deleted}
            source = rows(db.reader_url, op, **params)
            golden = rows(db.reader_url, op, **params, entity_scope="golden")
            assert sum(r["members"] for r in golden) == sum(r["entities"] for r in source), (op, group_by)
            assert sum(r["entities"] for r in golden) <= sum(r["entities"] for r in source)


def test_golden_count_analysis_counts_a_company_under_every_system_that_knows_it(db) -> None:
    seed_and_resolve(db)
    by_system = rows(db.reader_url, "count_analysis", group_by="source_system", entity_scope="golden")
    assert {r["segment"]: r["entities"] for r in by_system} == {"crm+erp+legacy": 1, "crm": 1, "erp": 1}
    by_industry = {
        r["segment"]: r
        for r in rows(db.reader_url, "count_analysis", group_by="industry", entity_scope="golden")
    }
    tech = by_industry["Technology"]
    # Entity type: the golden record's class by the mapping's rule (2.6M and 2.55M revenue: medium).
    assert (tech["entities"], tech["crm"], tech["erp"], tech["legacy"], tech["medium_business"]) == (
        2,
        2,
        1,
        1,
        2,
    )


def test_golden_customer_analysis_aggregates_the_golden_records_values(db) -> None:
    seed_and_resolve(db)
    golden = rows(db.reader_url, "customer_analysis", group_by="industry", entity_scope="golden")
    tech = next(r for r in golden if r["segment"] == "Technology")
    assert (tech["entities"], tech["total"], tech["maximum"], tech["members"]) == (
        2,
        Decimal(5_150_000),
        Decimal(2_600_000),
        4,
    )


def test_golden_entity_types_follow_the_mappings_classes() -> None:
    from resources.analytics import scope
    from resources.canonical import mapping

    assert (scope.LARGE_REVENUE, scope.LARGE_EMPLOYEES, scope.MEDIUM_REVENUE, scope.MEDIUM_EMPLOYEES) == (
        mapping.LARGE_REVENUE,
        mapping.LARGE_EMPLOYEES,
        mapping.MEDIUM_REVENUE,
        mapping.MEDIUM_EMPLOYEES,
    )


def test_entity_scope_is_refused_outside_its_whitelist_and_named_in_the_catalogue() -> None:
    from resources.analytics import InvalidParameters, describe_catalogue, validate_parameters

    with pytest.raises(InvalidParameters) as exc:
        validate_parameters("revenue_analysis", {"entity_scope": "company"})
    assert exc.value.errors[0].valid_values == ["source", "golden"]
    scoped = {
        op["name"] for op in describe_catalogue() if "entity_scope" in op["parameters"].get("properties", {})
    }
    assert scoped == {"customer_analysis", "revenue_analysis", "count_analysis"}


def test_on_the_samples_golden_scope_ranks_tech_corp_global_once_after_a_resolution(stack) -> None:
    with instance_for_test() as instance:
        driver = Driver(stack, instance)
        for key, path in (
            ("crm-data/customer-data.json", "crm-data/customer-data.json"),
            ("erp-data/erp-accounts.json", "erp-data/erp-accounts.json"),
            ("legacy-data/legacy-companies.ndjson", "legacy-data/legacy-companies.ndjson"),
        ):
            driver.upload(key, (SAMPLES / path).read_bytes())
        driver.settle()
        assert driver.results and all(r.success for r in driver.results)
        reader = stack.pg.reader_url
        source = rows(reader, "revenue_analysis", group_by="industry", top_n=100)
        assert (
            sum(
                r["name"].lower().startswith("tech corp global") and "europe" not in r["name"].lower()
                for r in source
            )
            == 3
        )

        defs = Definitions.merge(golden_definitions(), Definitions(resources=driver.resources))
        result = defs.resolve_job_def("golden_entities_job").execute_in_process(
            instance=instance, raise_on_error=False
        )
        assert result.success and GOLDEN_ENTITIES in {
            m.asset_key for m in result.asset_materializations_for_node("canonical__golden_entities")
        }
    tech_corp = ("crm_CUST-1001", "erp_ERP-2001", "legacy_30001")
    assert len({golden_id_of(stack.pg, c) for c in tech_corp}) == 1, "the resolution links Tech Corp Global"
    golden = rows(reader, "revenue_analysis", group_by="industry", top_n=100, entity_scope="golden")
    tech = [r for r in golden if r["golden_id"] == golden_id_of(stack.pg, "crm_CUST-1001")]
    assert len(tech) == 1 and tech[0]["member_count"] == 3
    assert tech[0]["canonical_id"] in tech_corp


def test_the_golden_relation_joins_member_systems_and_lead_fields_only_when_read() -> None:
    from resources.analytics.scope import Needs, golden_rows

    systems = ("crm", "erp", "legacy")
    plain = golden_rows(systems, include_deleted=False, needs=Needs())
    assert "GROUP BY m.golden_id) s" not in plain and "lead." not in plain
    both = golden_rows(systems, include_deleted=True, needs=Needs(systems=True, lead=True))
    assert "GROUP BY m.golden_id) s" in both and "lead.region" in both and "deleted" not in both


def test_a_system_whose_name_extends_anothers_is_told_apart_in_member_systems(db) -> None:
    from resources.analytics.scope import _system_flags

    with psycopg.connect(db.owner_url) as conn:
        got = conn.execute(
            f"""SELECT m.golden_id, {_system_flags(("crm", "crm_eu", "erp"))}
                FROM (VALUES ('G1', 'crm_eu_1'), ('G1', 'erp_2'), ('G2', 'crm_3'), ('G2', 'crm_eu_4'))
                     AS m (golden_id, canonical_id)
                GROUP BY m.golden_id ORDER BY 1"""
        ).fetchall()
    assert got == [("G1", ["crm_eu", "erp"]), ("G2", ["crm", "crm_eu"])]
