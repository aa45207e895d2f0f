"""Every analytics operation against a golden dataset, compared row by row with answers computed here.

The dataset goes through the real path once per module: CRM, ERP and legacy files uploaded to the moto
raw bucket, the landing sensor, ingest runs, PostgreSQL. The expected answers are computed in plain
Python from the same input records (with the README's mapping rules re-stated here, not imported),
so a wrong query and a wrong mapping cannot agree by accident.

Then the custom query's defences, for real, as the read-only role: the guard refuses, and where the
guard is deliberately bypassed, the role, the READ ONLY transaction, the timeout and the row cap hold.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

import psycopg
import pytest
from dagster import instance_for_test

from pipeline_defs.devstack.provisioning import ensure_aws_resources
from resources.analytics import (
    InvalidParameters,
    NotReadOnlyRole,
    QueryFailed,
    QueryRejected,
    QueryTimeout,
    UnknownOperation,
    run_operation,
)
from resources.analytics import guard as guard_module
from resources.settings import Settings, get_settings
from tests.support.ingest import Driver
from tests.support.periods import period_of
from tests.support.postgres import reset_canonical
from tests.support.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("analytics_golden")]

# --------------------------------------------------------------------------------------------------
# The golden input


def _months(entity_values: list[tuple[str, str | int]]) -> list[dict]:
    return [{"date": d, "type": "monthly_revenue", "value": v} for d, v in entity_values]


CRM = [
    {
        "customer_id": "C-1",
        "company_name": "Tech Corp Global",
        "industry": "Technology",
        "annual_revenue": 2500000,
        "employee_count": 120,
        "country": "United States",
        "region": "North America",
        "lifetime_value": 50000,
        "total_spent": 125000,
        "email": "john@techcorp.com",
    },
    {
        "customer_id": "C-2",
        "company_name": "Retail Masters Inc",
        "industry": "Retail",
        "annual_revenue": 850000,
        "employee_count": 45,
        "country": "Canada",
        "region": "North America",
        "lifetime_value": 25000,
        "total_spent": 60000,
    },
    {
        "customer_id": "C-3",
        "company_name": "Healthcare Plus",
        "industry": "Healthcare",
        "annual_revenue": 1200000,
        "employee_count": 80,
        "country": "United Kingdom",
        "region": "Europe",
        "lifetime_value": 30000,
        "total_spent": 45000.50,
        "email": "info@hcplus.co.uk",
    },
    {
        "customer_id": "C-4",
        "company_name": "Green Energy Solutions",
        "industry": "Energy",
        "annual_revenue": 1800000,
        "employee_count": 95,
        "country": "Germany",
        "region": "Europe",
        "lifetime_value": "n/a",
        "total_spent": 70000,
    },
    {
        "customer_id": "C-5",
        "company_name": "Tech Corp Europe",
        "industry": "Technology",
        "annual_revenue": 640000,
        "employee_count": 28,
        "country": "Germany",
        "region": "Europe",
        "lifetime_value": 12000,
        "parent_id": "C-1",
    },
    {
        "customer_id": "C-6",
        "company_name": "Tech Corp Labs",
        "industry": "Technology",
        "annual_revenue": 300000,
        "employee_count": 12,
        "country": "France",
        "region": "Europe",
        "lifetime_value": 8000,
        "parent_id": "C-5",
    },
    {
        "customer_id": "C-7",
        "company_name": "Quantum Analytics",
        "industry": "Technology",
        "annual_revenue": 15000000,
        "employee_count": 1500,
        "country": "United States",
        "region": "North America",
        "lifetime_value": 400000,
        "total_spent": 900000,
    },
    {
        "customer_id": "C-8",
        "company_name": "Blue River Foods",
        "industry": "Food",
        "annual_revenue": None,
        "employee_count": 40,
        "country": "Brazil",
        "region": "Latin America",
        "lifetime_value": 9000,
    },
    {
        "customer_id": "C-9",
        "company_name": "Summit Logistics",
        "industry": "Logistics",
        "annual_revenue": 5200000,
        "employee_count": 300,
        "country": "United States",
        "region": "North America",
        "lifetime_value": 70000,
        "parent_id": "C-404",
    },
    {
        "customer_id": "C-10",
        "company_name": "Tech Corp Cloud",
        "industry": "Technology",
        "annual_revenue": 640000,
        "employee_count": 30,
        "country": "Japan",
        "region": "Asia Pacific",
        "lifetime_value": 15000,
        "parent_id": "C-1",
    },
    {
        "customer_id": "C-11",
        "company_name": "",
        "industry": "Retail",
        "annual_revenue": 1,
    },  # refused: no name
    {
        "customer_id": "C-12",
        "company_name": "Pinnacle Retail",
        "industry": "Retail",
        "annual_revenue": 3100000,
        "employee_count": 210,
        "country": "Canada",
        "region": "North America",
        "lifetime_value": 41000,
        "total_spent": 88000,
    },
]
ERP = [
    {
        "id": "E-1",
        "business_name": "Tech Corp Global Inc.",
        "sector": "Technology",
        "country": "United States",
        "region": "North America",
        "financials": {"annualRevenue": 2450000.50, "currency": "USD"},
        "hrData": {"employeeCount": 118},
        "metrics": _months(
            [
                ("2024-01-31", 200000),
                ("2024-02-29", 210000),
                ("2024-03-31", 190000),
                ("2024-04-30", 230000),
                ("2024-05-31", 240000),
                ("2024-06-15", 100000),
                ("2024-06-30", 150000),
            ]
        ),
    },
    {
        "id": "E-2",
        "businessName": "Tech Corp Global Europe GmbH",
        "sector": "Technology",
        "country": "Germany",
        "region": "Europe",
        "parent_company_id": "E-1",
        "financials": {"annualRevenue": 640000.00},
        "hrData": {"employeeCount": 28},
        "metrics": _months(
            [
                ("2024-01-31", 50000),
                ("2024-02-29", 52000),
                ("2024-03-31", 40000),
                ("2024-04-30", 61000),
                ("2024-06-30", 70000),
            ]
        ),
    },
    {
        "id": "E-3",
        "business_name": "Retail Masters Incorporated",
        "sector": "Retail",
        "country": "Canada",
        "region": "North America",
        "financials": {"annualRevenue": 845000},
        "hrData": {"employeeCount": 44},
        "metrics": _months(
            [("2024-01-31", 70000), ("2024-02-29", 69000.25), ("2024-03-31T23:30:00-02:00", 80000)]
        ),
    },  # 2024-04-01 01:30 UTC: April
    {
        "id": "E-4",
        "business_name": "Northwind Traders",
        "sector": "Retail",
        "country": "United States",
        "region": "North America",
        "financials": {"annualRevenue": 12000000},
        "hrData": {"employeeCount": 800},
    },
    {
        "id": "E-5",
        "business_name": "Cycle Holdings A",
        "sector": "Finance",
        "parent_company_id": "E-6",
        "financials": {"annualRevenue": 100000},
    },
    {
        "id": "E-6",
        "business_name": "Cycle Holdings B",
        "sector": "Finance",
        "parent_company_id": "E-5",
        "financials": {"annualRevenue": 200000},
    },
    {
        "id": "E-7",
        "business_name": "Summit Logistics LLC",
        "sector": "Logistics",
        "country": "United States",
        "region": "North America",
        "financials": {"annualRevenue": 5100000},
        "hrData": {"employeeCount": 290},
        "metrics": [
            *_months(
                [
                    ("2024-02-29", 400000),
                    ("2024-03-31", 420000),
                    ("2024-04-30", 380000),
                    ("2024-05-31", 500000),
                    ("2024-06-30", 520000),
                ]
            ),
            {"date": "2024-01-31", "type": "active_users", "value": 1200},
            {"date": "2024-02-29", "type": "active_users", "value": 1500},
            {"date": "2024-03-31", "type": "active_users", "value": 900},
        ],
    },
]
LEGACY = [
    {
        "id": 30001,
        "name": "TECH CORP GLOBAL",
        "revenue": "2500000",
        "employees": "118",
        "industry_code": 541512,
    },
    {
        "id": 30002,
        "name": "Retail Masters Inc.",
        "revenue": 845000.00,
        "employees": 44,
        "industry_code": 452210,
    },
    {"id": 30003, "name": "HEALTHCARE PLUS", "revenue": 1150000, "employees": 80, "industry_code": "621111"},
    {
        "id": 30004,
        "name": "Pinnacle Retail Group",
        "revenue": 3000000,
        "employees": 200,
        "industry_code": 452210,
    },
    {
        "id": 30005,
        "name": "Creative Agency",
        "revenue": -125000,
        "employees": 25,
    },  # refused: negative revenue
    {
        "id": 30006,
        "name": "Old Mill Bakery",
        "revenue": 90000,
        "employees": 6,
        "industry_code": 311811,
        "parent_id": 30004,
        "metrics": _months([("2024-05-31", 7000), ("2024-06-30", 7500)]),
    },
]


# --------------------------------------------------------------------------------------------------
# The README's mapping rules, re-stated for the golden records (numbers exact as Decimals)


def _first(rec: dict, *keys: str) -> Any:
    for key in keys:
        if "." in key:
            outer, inner = key.split(".")
            value = rec.get(outer, {}).get(inner) if isinstance(rec.get(outer), dict) else None
        else:
            value = rec.get(key)
        if value is not None:
            return value
    return None


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


# The vocabularies' answers for the golden records' coded industries (README, "Vocabularies"): NAICS
# codes by their longest listed prefix, names by their variants; every other value is canonical already.
GOLDEN_INDUSTRIES = {
    "541512": "Technology",
    "452210": "Retail",
    "621111": "Healthcare",
    "311811": "Food & Beverage",
    "Finance": "Financial Services",
    "Food": "Food & Beverage",
}


def _entity(system: str, rec: dict) -> dict | None:
    source_id = str(_first(rec, "id", "customer_id"))
    name = _first(rec, "company_name", "business_name", "businessName", "name")
    revenue = _dec(_first(rec, "annual_revenue", "revenue", "financials.annualRevenue"))
    employees = _first(rec, "employee_count", "employees", "hrData.employeeCount")
    employees = None if employees is None else int(employees)
    if not name or (revenue is not None and revenue < 0):
        return None
    industry = _first(rec, "industry_code", "industry", "sector")
    if (revenue is not None and revenue > 10_000_000) or (employees is not None and employees > 1000):
        kind = "large_enterprise"
    elif (revenue is not None and revenue > 1_000_000) or (employees is not None and employees > 100):
        kind = "medium_business"
    else:
        kind = "small_business"
    email = rec.get("email")
    facts = (
        1
        + (revenue is not None)
        + (employees is not None)
        + (industry is not None)
        + (isinstance(email, str) and "@" in email)
        + bool(rec.get("country") or rec.get("region"))
    )
    parent = _first(rec, "parent_id", "parent_company_id")
    return {
        "canonical_id": f"{system}_{source_id}",
        "source_system": system,
        "name": name,
        "industry": None if industry is None else GOLDEN_INDUSTRIES.get(str(industry), str(industry)),
        "revenue": revenue,
        "employees": employees,
        "entity_type": kind,
        "region": rec.get("region"),
        "country": rec.get("country"),
        "lifetime_value": _num_attr(rec.get("lifetime_value")),
        "total_spent": _num_attr(rec.get("total_spent")),
        "quality": round(facts / 6, 2),
        "parent": None if parent is None else f"{system}_{parent}",
        "metrics": [(m["type"], _utc(m["date"]), _dec(m["value"])) for m in rec.get("metrics", [])],
    }


def _num_attr(value: Any) -> Decimal | None:
    return _dec(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _utc(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


ENTITIES: list[dict] = [
    e
    for system, recs in (("crm", CRM), ("erp", ERP), ("legacy", LEGACY))
    for e in (_entity(system, r) for r in recs)
    if e is not None
]
BY_ID = {e["canonical_id"]: e for e in ENTITIES}
POINTS = [(e["canonical_id"], kind, at, value) for e in ENTITIES for kind, at, value in e["metrics"]]
LINKS = {e["canonical_id"]: e["parent"] for e in ENTITIES if e["parent"]}  # child → parent


def test_the_golden_input_is_what_the_tests_assume():
    assert len(ENTITIES) == 11 + 7 + 5 and len(POINTS) == 7 + 5 + 3 + 8 + 2
    assert BY_ID["erp_E-1"]["revenue"] == Decimal("2450000.50") and BY_ID["legacy_30001"]["employees"] == 118


# --------------------------------------------------------------------------------------------------
# Exact helpers: PostgreSQL's round() is half away from zero; C collation is code point order


def r2(x: Decimal | float | None, places: str = "0.01") -> Decimal | None:
    if x is None:
        return None
    d = x if isinstance(x, Decimal) else Decimal(repr(x))
    return d.quantize(Decimal(places), rounding=ROUND_HALF_UP)


def div(a: Decimal, b: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 40
        return a / b


def nulls_last(value: Any) -> tuple:
    return (value is None, value if value is not None else "")


def assert_rows(
    actual: list[tuple], expected: list[tuple], tolerance: dict[int, float] | None = None
) -> None:
    """Row by row; columns listed in tolerance compare within that absolute difference."""
    tolerance = tolerance or {}
    assert len(actual) == len(expected), (
        f"{len(actual)} rows, expected {len(expected)}:\n{actual}\n{expected}"
    )
    for i, (got, want) in enumerate(zip(actual, expected, strict=True)):
        assert len(got) == len(want), f"row {i}: {got} vs {want}"
        for j, (g, w) in enumerate(zip(got, want, strict=True)):
            if j in tolerance and g is not None and w is not None:
                assert abs(float(g) - float(w)) <= tolerance[j], f"row {i} col {j}: {g} vs {w}\n{got}\n{want}"
            else:
                assert g == w, f"row {i} col {j}: {g!r} vs {w!r}\n{got}\n{want}"


# --------------------------------------------------------------------------------------------------
# The dataset, through the real ingest, once per module


# What Driver needs of the `stack` fixture, built once for the module.
_Stack = Stack


@pytest.fixture(scope="module")
def golden(pg, moto_server) -> Iterator[str]:
    """Loads the golden files through sensor + ingest runs; yields the read-only URL."""
    suffix = uuid.uuid4().hex[:8]
    env = {
        "DATABASE_URL": pg.writer_url,
        "READONLY_DATABASE_URL": pg.reader_url,
        "AWS_ENDPOINT_URL": moto_server.endpoint_url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "RAW_BUCKET": f"raw-{suffix}",
        "RESULTS_BUCKET": f"results-{suffix}",
        "JOBS_TABLE": f"jobs-{suffix}",
        "NOTIFY_TOPIC": f"notices-{suffix}",
        "INGEST_QUEUE": f"raw-events-{suffix}",
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        get_settings.cache_clear()
        reset_canonical(pg.owner_url)
        settings = Settings()
        stack = _Stack(settings=settings, aws=ensure_aws_resources(settings), pg=pg)
        with instance_for_test() as instance:
            driver = Driver(stack, instance)
            driver.upload("crm-data/golden-crm.json", {"records": CRM})
            driver.upload("erp-data/golden-erp.json", ERP)
            driver.upload("legacy-data/golden-legacy.ndjson", "\n".join(json.dumps(r) for r in LEGACY) + "\n")
            driver.settle()
            assert all(r.success for r in driver.results)
        get_settings.cache_clear()
    yield pg.reader_url


@pytest.fixture
def reader(golden, pg) -> str:
    # Other modules' tests empty the tables; this module's tests run together (xdist_group), but say so
    # clearly if the data went missing under them.
    with psycopg.connect(pg.owner_url) as conn:
        ids = {r[0] for r in conn.execute("SELECT canonical_id FROM canonical.entities")}
    assert ids == set(BY_ID), "the golden dataset is not (only) what is in canonical.entities"
    return golden


def run(url: str, name: str, params: dict | None = None, **kw: Any):
    return run_operation(url, name, params, **kw)


# --------------------------------------------------------------------------------------------------
# database_info, simple_demo


def test_database_info_lists_the_canonical_tables_with_exact_small_counts(reader):
    res = run(reader, "database_info")
    assert res.columns == [
        "table_name",
        "kind",
        "partitions",
        "row_count",
        "row_count_exact",
        "total_bytes",
        "column_count",
        "columns",
    ]
    months = {(at.year, at.month) for _, _, at, _ in POINTS}
    expected = [
        ("entities", "table", 0, len(ENTITIES), True),
        ("entity_history", "table", 0, 0, True),
        ("entity_relationships", "table", 0, len(LINKS), True),
        (
            "time_series_data",
            "partitioned table",
            len(months) + 1,
            len(POINTS),
            True,
        ),  # + the default partition
    ]
    assert [row[:5] for row in res.rows] == expected
    assert all(row[5] > 0 for row in res.rows)
    entities = res.rows[0]
    assert entities[7].startswith(
        "entity_id uuid, entity_type text, source_system text, canonical_id text, "
        "name text, industry text, revenue numeric, employees bigint, attributes jsonb"
    )
    assert entities[6] == entities[7].count(", ") + 1
    assert not res.truncated and res.row_count == 4


def test_simple_demo_is_a_real_aggregate_per_source_and_in_all(reader):
    res = run(reader, "simple_demo")
    expected = []
    for system in ("crm", "erp", "legacy", None):
        es = [e for e in ENTITIES if system is None or e["source_system"] == system]
        revs = [e["revenue"] for e in es if e["revenue"] is not None]
        emps = [Decimal(e["employees"]) for e in es if e["employees"] is not None]
        expected.append(
            (
                system or "all",
                len(es),
                len(revs),
                sum(revs),
                r2(div(sum(revs), len(revs))),
                r2(div(sum(emps), len(emps)), "0.1"),
                sum(e["entity_type"] == "large_enterprise" for e in es),
            )
        )
    assert_rows(res.rows, expected)


# --------------------------------------------------------------------------------------------------
# Segments

GROUP = {
    "industry": "industry",
    "entity_type": "entity_type",
    "source_system": "source_system",
    "region": "region",
    "country": "country",
}


def metric_value(e: dict, metric: str) -> Decimal | None:
    if metric == "revenue":
        return e["revenue"]
    if metric == "employees":
        return None if e["employees"] is None else Decimal(e["employees"])
    if metric == "revenue_per_employee":
        if e["revenue"] is None or not e["employees"]:
            return None
        return r2(div(e["revenue"], Decimal(e["employees"])))
    return e[metric]


def pg_median(values: list[Decimal]) -> float:
    xs = sorted(float(v) for v in values)
    n = len(xs)
    pos = 0.5 * (n - 1)
    lo, hi = xs[int(pos)], xs[min(int(pos) + 1, n - 1)]
    return lo + (hi - lo) * (pos - int(pos))


def expected_customer_analysis(metric: str, group_by: str, min_group_size: int) -> list[tuple]:
    groups: dict[Any, list[dict]] = defaultdict(list)
    for e in ENTITIES:
        groups[e[GROUP[group_by]]].append(e)
    rows = []
    for segment, es in groups.items():
        if len(es) < min_group_size:
            continue
        vals = [v for v in (metric_value(e, metric) for e in es) if v is not None]
        total = sum(vals) if vals else None
        rows.append(
            (
                segment,
                len(es),
                len(vals),
                total,
                r2(div(total, len(vals))) if vals else None,
                r2(pg_median(vals)) if vals else None,
                min(vals) if vals else None,
                max(vals) if vals else None,
            )
        )
    rows.sort(key=lambda r: (r[3] is None, -(r[3] or 0), *nulls_last(r[0])))
    return rows


@pytest.mark.parametrize(
    ("metric", "group_by", "min_group_size"),
    [
        ("revenue", "industry", 1),
        ("lifetime_value", "region", 2),
        ("employees", "source_system", 1),
        ("revenue_per_employee", "country", 2),
        ("total_spent", "entity_type", 1),
        ("revenue", "industry", 3),
    ],
)
def test_customer_analysis(reader, metric, group_by, min_group_size):
    res = run(
        reader,
        "customer_analysis",
        {"metric": metric, "group_by": group_by, "min_group_size": str(min_group_size)},
    )  # "3" coerces to 3
    assert res.columns == [
        "segment",
        "entities",
        "with_value",
        "total",
        "average",
        "median",
        "minimum",
        "maximum",
    ]
    assert_rows(res.rows, expected_customer_analysis(metric, group_by, min_group_size), {5: 0.011})
    assert res.parameters == {
        "metric": metric,
        "group_by": group_by,
        "min_group_size": min_group_size,
        "include_deleted": False,
        "entity_scope": "source",
    }


def expected_revenue_analysis(metric: str, group_by: str, top_n: int) -> list[tuple]:
    groups: dict[Any, list[tuple[Decimal, dict]]] = defaultdict(list)
    for e in ENTITIES:
        v = metric_value(e, metric)
        if v is not None:
            groups[e[GROUP[group_by]]].append((v, e))
    rows = []
    for segment, items in groups.items():
        n = len(items)
        total = sum(v for v, _ in items)
        ordered = sorted(items, key=lambda it: (-it[0], it[1]["canonical_id"]))
        for i, (v, e) in enumerate(ordered):
            rank = 1 + sum(1 for w, _ in items if w > v)
            if rank > top_n:
                continue
            prev = ordered[i - 1][0] if i > 0 else None
            pr = (rank - 1) / (n - 1) if n > 1 else 0.0
            share = r2(div(100 * v, total), "0.0001") if total else None
            rows.append(
                (
                    segment,
                    rank,
                    e["canonical_id"],
                    e["name"],
                    v,
                    prev,
                    None if prev is None else prev - v,
                    r2(pr, "0.0001"),
                    share,
                    n,
                )
            )
    rows.sort(key=lambda r: (*nulls_last(r[0]), r[1], r[2]))
    return rows


@pytest.mark.parametrize(
    ("metric", "group_by", "top_n"),
    [
        ("revenue", "industry", 2),
        ("revenue", "region", 3),
        ("employees", "source_system", 1),
        ("lifetime_value", "country", 5),
        ("revenue_per_employee", "entity_type", 100),
    ],
)
def test_revenue_analysis(reader, metric, group_by, top_n):
    res = run(reader, "revenue_analysis", {"metric": metric, "group_by": group_by, "top_n": top_n})
    assert res.columns == [
        "segment",
        "rank",
        "canonical_id",
        "name",
        "value",
        "previous_value",
        "gap_to_previous",
        "percent_rank",
        "share_of_segment_pct",
        "segment_size",
    ]
    assert_rows(res.rows, expected_revenue_analysis(metric, group_by, top_n))


def test_revenue_analysis_ties_share_a_rank(reader):
    # crm_C-5 and crm_C-10 both have 640000 in Technology; erp_E-2 too.
    rows = run(
        reader, "revenue_analysis", {"metric": "revenue", "group_by": "source_system", "top_n": 100}
    ).rows
    ranks = {r[2]: r[1] for r in rows}
    assert ranks["crm_C-5"] == ranks["crm_C-10"]


@pytest.mark.parametrize("group_by", list(GROUP))
def test_count_analysis(reader, group_by):
    res = run(reader, "count_analysis", {"group_by": group_by})
    groups: dict[Any, list[dict]] = defaultdict(list)
    for e in ENTITIES:
        groups[e[GROUP[group_by]]].append(e)
    expected = []
    for segment, es in groups.items():
        expected.append(
            (
                segment,
                len(es),
                r2(div(Decimal(100 * len(es)), Decimal(len(ENTITIES)))),
                *(sum(e["source_system"] == s for e in es) for s in ("crm", "erp", "legacy")),
                *(
                    sum(e["entity_type"] == t for e in es)
                    for t in ("large_enterprise", "medium_business", "small_business")
                ),
            )
        )
    expected.sort(key=lambda r: (-r[1], *nulls_last(r[0])))
    assert_rows(res.rows, expected)


# --------------------------------------------------------------------------------------------------
# Time series


def minus_months(d: date, months: int) -> date:
    total = d.year * 12 + d.month - 1 - months
    return date(total // 12, total % 12 + 1, 1)


STEP = {"month": 1, "quarter": 3, "year": 12}


@pytest.mark.parametrize("timeframe", ["month", "quarter", "year"])
def test_multi_dimensional_analytics(reader, timeframe):
    per_entity: dict[tuple, Decimal] = defaultdict(Decimal)
    for cid, kind, at, value in POINTS:
        per_entity[(period_of(at, timeframe), kind, cid)] += value
    cells: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])
    for (period, kind, cid), value in per_entity.items():
        cell = cells[(period, kind, BY_ID[cid]["industry"])]
        cell[0] += 1
        cell[1] += value
    rows = []
    for (period, kind, industry), (n, total) in cells.items():
        peers = [t for (p, k, _), (_, t) in cells.items() if p == period and k == kind]
        prev_cell = cells.get((minus_months(period, STEP[timeframe]), kind, industry))
        prev = prev_cell[1] if prev_cell else None
        growth = r2(div(100 * (total - prev), abs(prev))) if prev else None
        pr = (sum(1 for t in peers if t < total)) / (len(peers) - 1) if len(peers) > 1 else 0.0
        tier = "leader" if pr >= 0.75 else "strong" if pr >= 0.5 else "moderate" if pr >= 0.25 else "emerging"
        rows.append(
            (
                period,
                kind,
                industry,
                n,
                total,
                r2(div(total, Decimal(n))),
                prev,
                growth,
                r2(div(100 * total, sum(peers))),
                r2(pr, "0.0001"),
                tier,
            )
        )
    rows.sort(key=lambda r: (r[0], r[1], -r[4], *nulls_last(r[2])))
    res = run(reader, "multi_dimensional_analytics", {"timeframe": timeframe})
    assert res.columns == [
        "period",
        "metric_type",
        "industry",
        "entities",
        "total",
        "average_per_entity",
        "previous_total",
        "growth_pct",
        "market_share_pct",
        "percentile",
        "tier",
    ]
    assert_rows(res.rows, rows)
    assert any(r[7] is not None for r in res.rows) or timeframe == "year"


def expected_patterns(months: int | None, metric_type: str) -> list[tuple]:
    pts = [(cid, at, v) for cid, kind, at, v in POINTS if kind == metric_type]
    if not pts:
        return []
    last = period_of(max(at for _, at, _ in pts), "month")
    start = minus_months(last, months - 1) if months else date.min
    monthly: dict[date, tuple[set, Decimal]] = {}
    for cid, at, v in pts:
        p = period_of(at, "month")
        if p < start:
            continue
        ids, total = monthly.get(p, (set(), Decimal(0)))
        monthly[p] = (ids | {cid}, total + v)
    periods = sorted(monthly)
    rows = []
    with localcontext() as ctx:
        ctx.prec = 40
        totals = [monthly[p][1] for p in periods]
        for i, p in enumerate(periods):
            n, total = len(monthly[p][0]), totals[i]
            last3, last6 = totals[max(0, i - 2) : i + 1], totals[max(0, i - 5) : i + 1]
            ma3, ma6 = sum(last3) / len(last3), sum(last6) / len(last6)
            sd3 = Decimal(statistics.stdev(last3)) if len(last3) > 1 else None
            prev = totals[i - 1] if i > 0 and periods[i - 1] == minus_months(p, 1) else None
            growth = 100 * (total - prev) / abs(prev) if prev else None
            vol = 100 * sd3 / abs(ma3) if sd3 is not None and ma3 else None
            if growth is None:
                trend = "insufficient_data"
            elif vol is not None and vol >= 20:
                trend = "volatile"
            elif growth >= 5:
                trend = "strong_growth"
            elif growth > Decimal("0.5"):
                trend = "growth"
            elif growth >= Decimal("-0.5"):
                trend = "stable"
            elif growth > -5:
                trend = "decline"
            else:
                trend = "strong_decline"
            rows.append((p, n, total, r2(total / n), r2(ma3), r2(ma6), r2(growth), r2(vol), trend))
    return rows


@pytest.mark.parametrize(
    ("period", "months", "metric_type"),
    [
        ("12 months", 12, "monthly_revenue"),
        ("3 months", 3, "monthly_revenue"),
        ("1 quarter", 3, "monthly_revenue"),
        ("all", None, "active_users"),
        ("all", None, "no_such_metric"),
    ],
)
def test_time_series_patterns(reader, period, months, metric_type):
    res = run(reader, "time_series_patterns", {"analysis_period": period, "metric_type": metric_type})
    assert res.columns == [
        "period",
        "entities",
        "total",
        "average_per_entity",
        "moving_avg_3",
        "moving_avg_6",
        "growth_pct",
        "volatility_pct",
        "trend",
    ]
    assert_rows(res.rows, expected_patterns(months, metric_type), {7: 0.011})


# --------------------------------------------------------------------------------------------------
# Relationship network


def expected_network(root: str, max_depth: int) -> list[tuple]:
    children: dict[str, list[str]] = defaultdict(list)
    for child, parent in LINKS.items():
        children[parent].append(child)
    nodes = []

    def walk(cid: str, parent: str | None, depth: int, path: list[str], cycle: bool) -> None:
        nodes.append((depth, cid, parent, path, cycle))
        if cycle or depth >= max_depth:
            return
        for child in children.get(cid, []):
            walk(child, cid, depth + 1, [*path, child], child in path)

    walk(root, None, 0, [root], False)
    rows = []
    for depth, cid, parent, path, cycle in nodes:
        e = BY_ID.get(cid)
        below = [n for n in nodes if not n[4] and cid in n[3]]
        revs = [BY_ID[n[1]]["revenue"] for n in below if n[1] in BY_ID and BY_ID[n[1]]["revenue"] is not None]
        rows.append(
            (
                depth,
                cid,
                e and e["name"],
                e and e["source_system"],
                parent,
                " > ".join(path),
                cycle,
                e is not None,
                e and e["revenue"],
                None if cycle else (sum(revs) if revs else None),
                None if cycle else len(below) - 1,
                path,
            )
        )
    rows.sort(key=lambda r: r[-1])
    return [r[:-1] for r in rows]


@pytest.mark.parametrize(
    ("root", "max_depth"),
    [
        ("crm_C-1", 5),
        ("crm_C-1", 1),
        ("erp_E-1", 3),
        ("erp_E-5", 6),
        ("crm_C-404", 3),
        ("legacy_30004", 2),
        ("crm_C-7", 3),
    ],
)
def test_relationship_network(reader, root, max_depth):
    res = run(reader, "relationship_network", {"root_entity_id": root, "max_depth": max_depth})
    assert res.columns == [
        "depth",
        "canonical_id",
        "name",
        "source_system",
        "parent_canonical_id",
        "path",
        "is_cycle",
        "found",
        "revenue",
        "subtree_revenue",
        "descendants",
    ]
    assert_rows(res.rows, expected_network(root, max_depth))


def test_relationship_network_cycle_is_reported_and_not_followed(reader):
    rows = run(reader, "relationship_network", {"root_entity_id": "erp_E-5", "max_depth": 10}).rows
    assert [(r[1], r[6]) for r in rows] == [("erp_E-5", False), ("erp_E-6", False), ("erp_E-5", True)]


def test_relationship_network_root_by_entity_uuid(reader, pg):
    with psycopg.connect(pg.owner_url) as conn:
        entity_id = conn.execute(
            "SELECT entity_id FROM canonical.entities WHERE canonical_id = 'crm_C-1'"
        ).fetchone()[0]
    by_uuid = run(reader, "relationship_network", {"root_entity_id": str(entity_id), "max_depth": 5})
    assert (
        by_uuid.rows
        == run(reader, "relationship_network", {"root_entity_id": "crm_C-1", "max_depth": 5}).rows
    )
    unknown = run(reader, "relationship_network", {"root_entity_id": str(uuid.uuid4())})
    assert unknown.rows == []


# --------------------------------------------------------------------------------------------------
# Data integrity


INTEGRITY_COLUMNS = [
    "a_id",
    "a_system",
    "a_name",
    "b_id",
    "b_system",
    "b_name",
    "name_similarity",
    "revenue_match",
    "employees_match",
    "match_score",
    "confidence",
    "recommended_action",
    "a_data_quality",
    "b_data_quality",
    "survivor_id",
]


@pytest.mark.parametrize(("min_similarity", "limit"), [(0.5, 100), (0.3, 1)])
def test_data_integrity_analysis_before_any_resolution_answers_no_pairs_and_says_why(
    reader, min_similarity, limit
):
    """The candidates are the entity resolution's scored pairs (tests/resources/analytics/
    test_integrity_pairs.py); this dataset was never resolved. The old answer's keys come first."""
    res = run(reader, "data_integrity_analysis", {"min_similarity": min_similarity, "limit": limit})
    assert res.columns[: len(INTEGRITY_COLUMNS)] == INTEGRITY_COLUMNS
    assert res.rows == [] and not res.truncated
    assert res.notes and "no entity resolution has run yet" in res.notes[0]
    assert res.to_jsonable()["notes"] == list(res.notes)


# --------------------------------------------------------------------------------------------------
# custom_complex_query: results, cap, and every defence for real


def test_custom_query_binds_parameters_and_returns_rows(reader):
    res = run(
        reader,
        "custom_complex_query",
        {
            "query": "SELECT canonical_id, revenue FROM entities WHERE source_system = $1 AND revenue > $2 "
            "ORDER BY revenue DESC, canonical_id",
            "params": ["crm", 1000000],
        },
    )
    expected = sorted(
        (
            (e["canonical_id"], e["revenue"])
            for e in ENTITIES
            if e["source_system"] == "crm" and e["revenue"] is not None and e["revenue"] > 1000000
        ),
        key=lambda r: (-r[1], r[0]),
    )
    assert res.columns == ["canonical_id", "revenue"] and res.rows == expected and not res.truncated


def test_custom_query_text_with_percent_signs_and_comments_runs_as_written(reader):
    res = run(
        reader,
        "custom_complex_query",
        {
            "query": "SELECT count(*) AS n FROM canonical.entities -- a trailing comment; DROP TABLE x\n"
            "WHERE name LIKE '%Corp%' /* ; */",
            "params": [],
        },
    )
    assert res.rows == [(sum("Corp" in e["name"] for e in ENTITIES),)]


def test_custom_query_is_capped_and_says_so(reader):
    res = run(
        reader, "custom_complex_query", {"query": "SELECT canonical_id FROM entities ORDER BY 1"}, max_rows=5
    )
    assert res.row_count == 5 and res.truncated
    assert [r[0] for r in res.rows] == sorted(BY_ID)[:5]


def test_custom_query_huge_cross_join_stops_at_the_row_cap(reader):
    started = time.perf_counter()
    res = run(
        reader,
        "custom_complex_query",
        {
            "query": "SELECT a.canonical_id, b.canonical_id, g FROM entities a CROSS JOIN entities b "
            "CROSS JOIN entities c CROSS JOIN entities d CROSS JOIN generate_series(1, 1000) g"
        },
        max_rows=1000,
    )
    assert res.truncated and res.row_count == 1000
    assert time.perf_counter() - started < 5


def test_custom_query_huge_cross_join_aggregate_hits_the_timeout(reader):
    started = time.perf_counter()
    with pytest.raises(QueryTimeout) as info:
        run(
            reader,
            "custom_complex_query",
            {"query": "SELECT count(*) FROM entities a, entities b, entities c, generate_series(1, 1000000)"},
            timeout_s=0.5,
        )
    assert time.perf_counter() - started < 5
    assert info.value.as_dict()["code"] == "query_timeout"


@pytest.mark.parametrize(
    ("query", "rule", "words"),
    [
        ("DELETE FROM canonical.entities", "not_select", "DELETE"),
        ("INSERT INTO canonical.entities (name) VALUES ('x')", "not_select", "INSERT"),
        ("UPDATE canonical.entities SET name = 'x'", "not_select", "UPDATE"),
        ("DROP TABLE canonical.entities", "not_select", "DROP"),
        ("CREATE TABLE canonical.x (a int)", "not_select", "CREATE TABLE"),
        ("TRUNCATE canonical.entities", "not_select", "TRUNCATE"),
        ("SELECT 1; DELETE FROM canonical.entities", "not_one_statement", "found 2"),
        ("SET ROLE postgres", "not_select", "SET ROLE"),
        ("SELECT set_config('role', 'postgres', false)", "denied_function", "set_config"),
        ("SELECT set_config('statement_timeout', '0', false)", "denied_function", "settings"),
        ("COPY canonical.entities TO '/tmp/x'", "not_select", "COPY"),
        ("SELECT pg_sleep(60)", "denied_function", "sleeps"),
        ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "denied_function", "signals"),
        ("SELECT nextval('canonical.entity_history_history_id_seq')", "denied_function", "sequence"),
        ("SELECT pg_advisory_lock(1)", "denied_function", "advisory"),
        ("SELECT pg_read_file('/etc/passwd')", "denied_function", "files"),
        ("SELECT query_to_xml('select pg_sleep(60)', true, true, '')", "denied_function", "SQL text"),
        (
            "WITH d AS (DELETE FROM canonical.entities RETURNING 1) SELECT count(*) FROM d",
            "data_modifying",
            "DELETE",
        ),
        ("SELECT * INTO TEMP t FROM canonical.entities", "select_into", "INTO"),
        ("SELECT * FROM canonical.entities FOR UPDATE", "row_locks", "FOR UPDATE"),
    ],
)
def test_custom_query_bypass_attempts_are_refused_with_a_precise_reason(reader, pg, query, rule, words):
    with pytest.raises(QueryRejected) as info:
        run(reader, "custom_complex_query", {"query": query})
    assert info.value.rule == rule and words in info.value.reason, info.value.reason
    # Nothing changed.
    with psycopg.connect(pg.owner_url) as conn:
        assert conn.execute("SELECT count(*) FROM canonical.entities").fetchone()[0] == len(ENTITIES)


@pytest.fixture
def guard_gap(monkeypatch):
    """Pretend the guard missed something: the database's own defences must still hold."""
    monkeypatch.setattr(guard_module, "denial_reason", lambda name: None)
    monkeypatch.setattr(guard_module._Inspector, "visit", lambda self, ancestors, node: None)


def test_behind_the_guard_pg_sleep_past_the_timeout_is_stopped(reader, guard_gap):
    started = time.perf_counter()
    with pytest.raises(QueryTimeout):
        run(reader, "custom_complex_query", {"query": "SELECT pg_sleep(30)"}, timeout_s=0.3)
    assert time.perf_counter() - started < 3


READ_ONLY, NO_PRIVILEGE, NOT_AT_TOP_LEVEL = "25006", "42501", "0A000"


@pytest.mark.parametrize(
    ("query", "sqlstates"),
    [
        # A data-modifying WITH cannot even sit inside the row-cap wrapper; at the top it would meet READ ONLY.
        (
            "WITH d AS (DELETE FROM canonical.entities RETURNING 1) SELECT count(*) FROM d",
            {NOT_AT_TOP_LEVEL, READ_ONLY},
        ),
        ("SELECT * FROM canonical.entities FOR UPDATE", {READ_ONLY, NO_PRIVILEGE}),
        ("SELECT nextval('canonical.entity_history_history_id_seq')", {READ_ONLY, NO_PRIVILEGE}),
        ("SELECT set_config('role', 'postgres', true)", {NO_PRIVILEGE}),
        ("SELECT pg_read_file('/etc/passwd')", {NO_PRIVILEGE}),
        ("SELECT count(*) FROM ingest.files", {NO_PRIVILEGE}),  # only canonical.* is readable
        ("SELECT lo_import('/etc/passwd')", {READ_ONLY, NO_PRIVILEGE}),
    ],
)
def test_behind_the_guard_the_role_and_the_read_only_transaction_refuse(
    reader, pg, guard_gap, query, sqlstates
):
    with pytest.raises(QueryFailed) as info:
        run(reader, "custom_complex_query", {"query": query})
    assert info.value.sqlstate in sqlstates, (info.value.sqlstate, info.value.message)
    with psycopg.connect(pg.owner_url) as conn:
        assert conn.execute("SELECT count(*) FROM canonical.entities").fetchone()[0] == len(ENTITIES)


def test_behind_the_guard_another_roles_backend_cannot_be_terminated(reader, pg, guard_gap):
    with psycopg.connect(pg.owner_url) as victim:
        pid = victim.info.backend_pid
        with pytest.raises(QueryFailed) as info:
            run(reader, "custom_complex_query", {"query": f"SELECT pg_terminate_backend({pid})"})
        assert info.value.sqlstate == NO_PRIVILEGE
        assert victim.execute("SELECT 1").fetchone() == (1,)


def test_the_read_only_role_has_no_temp_no_server_roles_and_role_level_limits(reader, pg):
    with psycopg.connect(pg.reader_url, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")  # even when the session lifts it
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="temporary"):
            conn.execute("CREATE TEMP TABLE t (a int)")
        conn.execute("RESET default_transaction_read_only")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET ROLE postgres")
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('statement_timeout', 'lock_timeout', 'search_path', "
                "'idle_in_transaction_session_timeout', 'default_transaction_read_only')"
            ).fetchall()
        )
        server_roles = conn.execute(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
            "WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        ).fetchone()[0]
    assert settings == {
        "statement_timeout": "30000",
        "lock_timeout": "2000",
        "search_path": "canonical",
        "idle_in_transaction_session_timeout": "60000",
        "default_transaction_read_only": "on",
    }
    assert server_roles == 0
    with psycopg.connect(pg.writer_url) as conn:  # the writer still stages in temporary tables
        conn.execute("CREATE TEMP TABLE t (a int)")


def test_the_runner_becomes_the_read_only_role_or_refuses(reader, pg):
    who = run(
        pg.owner_url,
        "custom_complex_query",
        {"query": "SELECT current_user, current_setting('transaction_read_only')"},
    )
    assert who.rows == [("pipeline_reader", "on")]
    with pytest.raises(NotReadOnlyRole):
        run(pg.writer_url, "simple_demo")


def test_the_connection_is_left_idle_and_usable(reader):
    with psycopg.connect(reader) as conn:
        first = run_operation(conn, "count_analysis", {"group_by": "source_system"})
        with pytest.raises(QueryFailed):
            run_operation(conn, "custom_complex_query", {"query": "SELECT 1/0"})
        assert run_operation(conn, "count_analysis", {"group_by": "source_system"}).rows == first.rows
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "30s"  # SET LOCAL did not leak


def test_errors_before_sql(reader):
    with pytest.raises(UnknownOperation):
        run(reader, "drop_everything")
    with pytest.raises(InvalidParameters) as info:
        run(reader, "customer_analysis", {"group_by": "name; DROP TABLE x"})
    assert info.value.errors[0].valid_values == [
        "industry",
        "entity_type",
        "source_system",
        "region",
        "country",
    ]
