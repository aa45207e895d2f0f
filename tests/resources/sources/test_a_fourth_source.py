"""A fourth source system is one definition file in SOURCE_DEFINITIONS_PATH: no Python change, no
migration. Through the real path: upload, landing sensor tick, ingest run, canonical.entities."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from dagster import instance_for_test

from resources.analytics import run_operation
from resources.analytics.integrity import data_integrity_analysis
from resources.analytics.params import DataIntegrityParams, RelationshipNetworkParams
from resources.settings import get_settings
from resources.sources.catalogue import get_sources
from tests.support.golden import clusters, pair, resolve
from tests.support.ingest import Driver, q

BILLING = {
    "name": "billing",
    "description": "The billing tool's accounts: annual recurring revenue in cents.",
    "prefixes": ["billing-data/"],
    "formats": ["json", "ndjson"],
    "fields": {
        "id": ["account_ref"],
        "name": ["org_name"],
        "revenue": {"paths": ["arr_cents"], "scale": "0.01"},
    },
}


@pytest.fixture
def billing_defined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "source-definitions"
    folder.mkdir()
    (folder / "billing.json").write_text(json.dumps(BILLING))
    monkeypatch.setenv("SOURCE_DEFINITIONS_PATH", str(folder))
    get_settings.cache_clear()
    get_sources.cache_clear()
    yield folder
    monkeypatch.delenv("SOURCE_DEFINITIONS_PATH")
    get_settings.cache_clear()
    get_sources.cache_clear()


@pytest.mark.integration
def test_a_fourth_source_loads_from_one_definition_file_with_revenue_converted_from_cents(
    stack, billing_defined: Path
) -> None:
    with instance_for_test() as instance:
        driver = Driver(stack, instance)
        driver.upload(
            "billing-data/2026-11/accounts.json",
            {
                "records": [
                    {"account_ref": "ACC-1", "org_name": "Tech Corp Global", "arr_cents": 250000050},
                    {"account_ref": "ACC-2", "org_name": "Small Shop", "arr_cents": "99"},
                    {"account_ref": "ACC-3", "org_name": "Refused", "arr_cents": -1},
                ]
            },
        )
        driver.upload(
            "crm-data/c.json", {"records": [{"customer_id": "C-1", "company_name": "Tech Corp Global"}]}
        )
        driver.upload("billing-data/notes.txt", "not a data file")
        driver.settle()

    url = stack.pg.owner_url
    assert q(url, "SELECT s3_key, source_system, status FROM ingest.files ORDER BY s3_key") == [
        ("billing-data/2026-11/accounts.json", "billing", "loaded"),
        ("billing-data/notes.txt", "billing", "skipped"),
        ("crm-data/c.json", "crm", "loaded"),
    ]
    assert q(
        url,
        "SELECT canonical_id, source_system, name, revenue, entity_type, attributes->>'arr_cents', "
        "attributes->>'revenue' FROM canonical.entities WHERE source_system = 'billing' ORDER BY canonical_id",
    ) == [
        (
            "billing_ACC-1",
            "billing",
            "Tech Corp Global",
            Decimal("2500000.50"),
            "medium_business",
            "250000050",
            "2500000.5",
        ),
        ("billing_ACC-2", "billing", "Small Shop", Decimal("0.99"), "small_business", "99", "0.99"),
    ]
    assert q(url, "SELECT source_id, reasons->0->>'code' FROM ingest.rejected_records") == [
        ("ACC-3", "negative")
    ]

    # A resolution that links the billing account with its CRM twin: golden scope counts one company both
    # systems know, and data_integrity_analysis reports the pair with the earlier system's record first.
    resolve(
        stack.pg.writer_url,
        clusters(["billing_ACC-1", "crm_C-1"], ["billing_ACC-2"]),
        run_id="r1",
        pairs=[pair("crm_C-1", "billing_ACC-1", weight=20.0, probability=0.99)],
    )
    by_system = run_operation(
        stack.pg.reader_url, "count_analysis", {"group_by": "source_system", "entity_scope": "golden"}
    )
    assert sorted((r[0], r[1]) for r in by_system.rows) == [("billing", 1), ("billing+crm", 1)]
    with psycopg.connect(url) as conn:
        table = data_integrity_analysis(conn, DataIntegrityParams(min_similarity=0.9), max_rows=10)
    pairs = [(r[table.columns.index("a_id")], r[table.columns.index("b_id")]) for r in table.rows]
    assert pairs == [("billing_ACC-1", "crm_C-1")]
    assert RelationshipNetworkParams(root_entity_id="billing_ACC-1").root_entity_id == "billing_ACC-1"


@pytest.mark.integration
def test_definitions_under_an_s3_prefix_add_and_override_and_their_problems_name_the_object(stack) -> None:
    from resources.sources.catalogue import load_sources
    from resources.sources.definition import SourceDefinitionError

    s3, bucket = stack.client("s3"), stack.settings.raw_bucket
    s3.put_object(Bucket=bucket, Key="config/sources/billing.json", Body=json.dumps(BILLING).encode())
    s3.put_object(Bucket=bucket, Key="config/sources/nested/ignored.json", Body=b"not read")
    sources = load_sources(f"s3://{bucket}/config/sources/", settings=stack.settings)
    assert sources.names == ("billing", "crm", "erp", "legacy")
    assert sources.origins["billing"] == f"s3://{bucket}/config/sources/billing.json"

    s3.put_object(
        Bucket=bucket,
        Key="config/sources/crm.json",
        Body=json.dumps({**BILLING, "name": "crm", "prefixes": ["crm-data/"], "priority": "top"}).encode(),
    )
    with pytest.raises(SourceDefinitionError) as caught:
        load_sources(f"s3://{bucket}/config/sources/", settings=stack.settings)
    assert [(p.file, p.key) for p in caught.value.problems] == [
        (f"s3://{bucket}/config/sources/crm.json", "priority")
    ]
