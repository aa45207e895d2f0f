"""Vocabularies through the real path: files uploaded to the moto raw bucket, the landing sensor, ingest
runs, PostgreSQL; analytics over what landed. The unmapped values counted on the file's row and the
warning check; a deployment's vocabulary files under an s3:// prefix."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from dagster import AssetCheckSeverity, DagsterInstance, instance_for_test

from assets.ingest import CHECK_UNMAPPED
from resources.analytics import run_operation
from resources.vocabularies.catalogue import load_vocabularies
from resources.vocabularies.document import VocabularyError
from tests.support.ingest import Driver, q
from tests.support.stack import SAMPLES

pytestmark = pytest.mark.integration


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


@pytest.fixture
def driver(stack, instance: DagsterInstance) -> Driver:
    return Driver(stack, instance)


def test_naics_codes_and_names_land_in_one_industry_so_each_company_is_in_one_segment(driver: Driver) -> None:
    for path in sorted(SAMPLES.rglob("*-data/*")):
        driver.upload(f"{path.parent.name}/{path.name}", path.read_bytes())
    driver.settle()
    url = driver.stack.pg.owner_url

    table = run_operation(
        driver.stack.pg.reader_url, "revenue_analysis", {"group_by": "industry", "top_n": 100}
    )
    segment, entity = table.columns.index("segment"), table.columns.index("canonical_id")
    segments: dict[str, set[str]] = {}
    for row in table.rows:
        segments.setdefault(row[segment], set()).add(row[entity])
    names = dict(q(url, "SELECT canonical_id, name FROM canonical.entities"))
    # Each company's records (CRM name, ERP name, legacy NAICS code) share its industry's segment.
    for industry, company in [
        ("Energy", "Green Energy"),
        ("Retail", "Retail Masters"),
        ("Technology", "Tech Corp Global"),
        ("Healthcare", "Healthcare Plus"),
    ]:
        holding = {
            s for s, ids in segments.items() for i in ids if names[i].lower().startswith(company.lower())
        }
        assert holding == {industry}, (company, holding)
    assert not [s for s in segments if s and s.isdigit()]  # no segment is a bare NAICS code
    assert q(
        url, "SELECT attributes->>'naics_code' FROM canonical.entities WHERE canonical_id = 'legacy_30004'"
    ) == [("221114",)]

    # Status, country code and currency flag, from each source's own codes.
    # legacy 30005 (status X: deleted) is refused for its negative revenue
    assert q(
        url, "SELECT canonical_id, status FROM canonical.entities WHERE status <> 'active' ORDER BY 1"
    ) == [
        ("erp_ERP-2007", "inactive"),
        ("legacy_30006", "inactive"),
    ]
    assert q(
        url,
        "SELECT count(*) FROM canonical.entities WHERE attributes ? 'country' AND NOT attributes ? 'country_code'",
    ) == [(0,)]
    assert q(
        url,
        "SELECT attributes->>'revenue_currency', attributes->'revenue_currency_mismatch' FROM canonical.entities "
        "WHERE canonical_id IN ('erp_ERP-2001', 'erp_ERP-2002') ORDER BY canonical_id",
    ) == [("USD", False), ("EUR", True)]
    # Every coded value of the samples is in its vocabulary: nothing unmapped, the check passes.
    assert q(url, "SELECT DISTINCT unmapped FROM ingest.files") == [({},)]
    evaluations = [
        e for r in driver.results for e in r.get_asset_check_evaluations() if e.check_name == CHECK_UNMAPPED
    ]
    assert evaluations and all(e.passed for e in evaluations)


def test_unmapped_values_are_kept_counted_on_the_file_row_and_the_check_warns(driver: Driver) -> None:
    driver.upload(
        "crm-data/odd.json",
        {
            "records": [
                {
                    "customer_id": "C-1",
                    "company_name": "A",
                    "industry": "Basket Weaving",
                    "country": "Narnia",
                },
                {
                    "customer_id": "C-2",
                    "company_name": "B",
                    "industry": "Basket Weaving",
                    "country": "Narnia",
                },
                {
                    "customer_id": "C-3",
                    "company_name": "C",
                    "industry": "Tech",
                    "country": "Atlantis",
                    "status": "zombie",
                },
                {"customer_id": "C-4", "company_name": "D", "industry": "Retail", "country": "USA"},
            ]
        },
    )
    driver.settle()
    url = driver.stack.pg.owner_url
    assert q(url, "SELECT status, unmapped FROM ingest.files WHERE s3_key = 'crm-data/odd.json'") == [
        (
            "loaded",
            {
                "country": {"count": 3, "examples": ["Narnia", "Atlantis"]},
                "industry": {"count": 2, "examples": ["Basket Weaving"]},
                "status": {"count": 1, "examples": ["zombie"]},
            },
        )
    ]
    assert q(
        url,
        "SELECT canonical_id, industry, attributes->>'country', attributes->>'country_code', status "
        "FROM canonical.entities ORDER BY canonical_id",
    ) == [
        ("crm_C-1", "Basket Weaving", "Narnia", None, "active"),
        ("crm_C-2", "Basket Weaving", "Narnia", None, "active"),
        ("crm_C-3", "Technology", "Atlantis", None, "active"),
        ("crm_C-4", "Retail", "USA", "US", "active"),
    ]
    [run] = driver.results
    [check] = [e for e in run.get_asset_check_evaluations() if e.check_name == CHECK_UNMAPPED]
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.metadata["unmapped"].value["crm-data/odd.json"]["country"]["count"] == 3
    assert run.success  # a warning: the run and the data stand
    [materialization] = [
        m
        for m in run.asset_materializations_for_node("ingest_files")
        if m.asset_key.path == ["canonical", "entities"]
    ]
    assert materialization.metadata["unmapped"].value["industry"] == {
        "count": 2,
        "examples": ["Basket Weaving"],
    }
    assert set(materialization.metadata["vocabularies"].value) == {
        "industry",
        "country",
        "status",
        "currency",
    }


def test_a_status_change_alone_makes_a_new_version_with_the_new_status(driver: Driver) -> None:
    row = {"id": 30006, "name": "Old Mill Bakery", "revenue": 98000, "legacy_status": "A"}
    driver.upload("legacy-data/2026-01.ndjson", json.dumps({**row, "last_sync": "2026-01-01"}) + "\n")
    driver.settle()
    driver.upload(
        "legacy-data/2026-02.ndjson",
        json.dumps({**row, "legacy_status": "X", "last_sync": "2026-01-01"}) + "\n",
    )
    driver.settle()
    url = driver.stack.pg.owner_url
    assert q(url, "SELECT status, version FROM canonical.entities WHERE canonical_id = 'legacy_30006'") == [
        ("deleted", 2)
    ]
    assert q(url, "SELECT version, attributes->>'legacy_status' FROM canonical.entity_history") == [(1, "A")]
    # The same content again is no new version.
    driver.upload(
        "legacy-data/2026-03.ndjson",
        json.dumps({**row, "legacy_status": "X", "last_sync": "2026-01-01"}) + "\n",
    )
    driver.settle()
    assert q(url, "SELECT status, version FROM canonical.entities") == [("deleted", 2)]


def test_vocabulary_files_under_an_s3_prefix_add_entries_and_their_problems_name_the_object(stack) -> None:
    s3, bucket = stack.client("s3"), stack.settings.raw_bucket
    prefix = f"s3://{bucket}/config/vocabularies/"
    s3.put_object(
        Bucket=bucket,
        Key="config/vocabularies/status.json",
        Body=json.dumps(
            {"vocabulary": "status", "version": "3", "sources": {"erp": {"deleted": ["purged"]}}}
        ).encode(),
    )
    s3.put_object(Bucket=bucket, Key="config/vocabularies/nested/ignored.json", Body=b"not read")
    vocabularies = load_vocabularies(prefix, settings=stack.settings)
    assert vocabularies.for_source("erp").status("PURGED") == "deleted"
    assert vocabularies.versions["status"][-1] == f"3 (s3://{bucket}/config/vocabularies/status.json)"

    s3.put_object(
        Bucket=bucket,
        Key="config/vocabularies/country.json",
        Body=json.dumps({"vocabulary": "country", "version": "1", "values": {"Narnia": []}}).encode(),
    )
    with pytest.raises(VocabularyError) as caught:
        load_vocabularies(prefix, settings=stack.settings)
    assert [(p.file, p.key) for p in caught.value.problems] == [
        (f"s3://{bucket}/config/vocabularies/country.json", "values.Narnia")
    ]
