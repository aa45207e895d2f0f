"""analytics_job end to end: config validation, read-only execution, result storage, mirror, notices."""

import csv
import io
import json

import pytest
from dagster import DagsterEventType, DagsterInvalidConfigError, Definitions, instance_for_test

from assets.analytics_job import analytics_job
from resources.clients.jobs_store import JobsStore
from resources.dagster_resources import PostgresResource
from sensors.job_status import mirror_run
from tests.support.ingest import Driver, resources_for
from tests.support.stack import SAMPLES

pytestmark = pytest.mark.integration


@pytest.fixture
def driver(stack):
    with instance_for_test() as instance:
        d = Driver(stack, instance)
        d.upload("crm-data/customer-data.json", (SAMPLES / "crm-data" / "customer-data.json").read_bytes())
        d.settle()
        yield d


def _mirror(driver, run):
    res = resources_for(driver.stack)
    mirror_run(driver.instance, run.dagster_run, res["job_tracking"], res["metrics"], "http://dagster.test")
    return JobsStore(driver.stack.client("dynamodb"), driver.stack.settings.jobs_table).get(run.run_id)


def _events(run, kind):
    return [e for e in run.all_events if e.event_type == kind]


def test_a_small_result_is_stored_inline_on_the_job_item(driver):
    run = driver.analytics("count_analysis", {"group_by": "industry"})
    assert run.success
    job = _mirror(driver, run)
    assert job["status"] == "succeeded" and job["operation"] == "count_analysis"
    assert job["parameters"] == {"group_by": "industry"}
    result = job["result"]
    assert result["storage"] == "inline" and result["rowCount"] == job["rowCount"] > 0
    counts = {row["segment"]: row["entities"] for row in result["rows"]}
    assert sum(counts.values()) == 10 and {"Technology", "Retail", "Manufacturing"} <= set(counts)


def test_a_large_result_goes_to_the_results_bucket_as_json_and_csv(driver):
    run = driver.analytics(
        "custom_complex_query", {"query": "SELECT g AS n, g * 2 AS twice FROM generate_series(1, 2500) AS g"}
    )
    assert run.success, run.get_step_failure_events()
    job = _mirror(driver, run)
    result = job["result"]
    assert result["storage"] == "s3" and result["rowCount"] == 2500
    s3 = driver.stack.client("s3")
    body = s3.get_object(Bucket=result["bucket"], Key=result["s3"]["json"])["Body"].read()
    doc = json.loads(body)
    assert len(doc["rows"]) == 2500 and doc["rows"][-1] == {"n": 2500, "twice": 5000}
    assert result["byteSize"]["json"] == len(body)
    rows = list(
        csv.reader(
            io.StringIO(
                s3.get_object(Bucket=result["bucket"], Key=result["s3"]["csv"])["Body"].read().decode()
            )
        )
    )
    assert rows[0] == ["n", "twice"] and len(rows) == 2501


def test_a_value_outside_a_whitelist_is_refused_before_the_run_starts(driver):
    """The config is typed: Dagster checks it against the operation's allowed values at launch."""
    with pytest.raises(DagsterInvalidConfigError, match="metric"):
        driver.analytics("customer_analysis", {"metric": "salary; DROP TABLE x", "group_by": "industry"})
    with pytest.raises(DagsterInvalidConfigError, match="no_such_thing"):
        driver.analytics("no_such_thing")


def test_a_value_out_of_bounds_fails_at_once_with_the_validation_message_and_no_retry(driver):
    run = driver.analytics("customer_analysis", {"min_group_size": 0})
    assert not run.success
    assert not _events(run, DagsterEventType.STEP_UP_FOR_RETRY)
    job = _mirror(driver, run)
    assert job["status"] == "failed"
    assert "min_group_size" in job["error"]


def test_a_refused_custom_query_fails_without_retry(driver):
    run = driver.analytics("custom_complex_query", {"query": "DELETE FROM canonical.entities"})
    assert not run.success
    assert not _events(run, DagsterEventType.STEP_UP_FOR_RETRY)
    assert "rejected" in _mirror(driver, run)["error"]


def test_transient_database_errors_are_retried_with_backoff_then_fail(driver):
    # Nothing listens on port 1: every attempt fails to connect, a transient error.
    broken = {
        **driver.resources,
        "readonly_postgres": PostgresResource(
            database_url="postgresql://pipeline_reader:x@127.0.0.1:1/canonical"
        ),
    }
    driver.defs = Definitions(jobs=[analytics_job], resources=broken)
    run = driver.analytics("simple_demo")
    assert not run.success
    assert len(_events(run, DagsterEventType.STEP_UP_FOR_RETRY)) == 3


def test_every_result_is_also_written_as_parquet(driver):
    import io

    import pandas as pd

    run = driver.analytics(
        "custom_complex_query",
        {"query": "SELECT g AS n, g * 1.5 AS price, 'x' || g AS label FROM generate_series(1, 3) AS g"},
    )
    assert run.success
    job = _mirror(driver, run)
    key = job["result"]["parquet"]
    assert key == f"results/{run.run_id}/result.parquet"
    body = (
        driver.stack.client("s3")
        .get_object(Bucket=driver.stack.settings.results_bucket, Key=key)["Body"]
        .read()
    )
    frame = pd.read_parquet(io.BytesIO(body))
    assert list(frame.columns) == ["n", "price", "label"]
    assert frame["n"].tolist() == [1, 2, 3] and frame["price"].tolist() == [1.5, 3.0, 4.5]
    assert frame["label"].tolist() == ["x1", "x2", "x3"]
