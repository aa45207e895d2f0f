"""Job items in DynamoDB and SNS notices, mirrored from Dagster run status (moto server over HTTP)."""

import json
import time

import pytest
from dagster import DagsterRunStatus, build_sensor_context, instance_for_test
from dagster._core.test_utils import create_run_for_test

from resources.clients.jobs_store import JobsStore
from sensors.job_status import mirror_run, reconcile
from tests.support.ingest import Driver, resources_for

pytestmark = pytest.mark.integration


@pytest.fixture
def instance():
    with instance_for_test() as inst:
        yield inst


@pytest.fixture
def store(stack) -> JobsStore:
    return JobsStore(stack.client("dynamodb"), stack.settings.jobs_table)


@pytest.fixture
def notices(stack):
    """An SQS queue subscribed to the notices topic, with raw delivery so attributes are visible."""
    sqs, sns = stack.client("sqs"), stack.client("sns")
    url = sqs.create_queue(QueueName=f"{stack.settings.jobs_table}-notices")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=stack.aws.topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "false"}
    )

    def read(expected: int, timeout: float = 10) -> list[dict]:
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            ):
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return out

    return read


def test_status_never_moves_backwards_and_repeats_are_not_new(store):
    assert store.record_status(
        "r1", "queued", job_type="analytics", fields={"operation": "simple_demo"}
    ).applied
    assert store.record_status("r1", "running").applied
    assert store.record_status("r1", "succeeded", fields={"rowCount": 3}).applied
    late = store.record_status("r1", "running")  # a delayed 'started' event
    assert not late.applied
    assert not store.record_status("r1", "succeeded").applied  # a repeat: nothing new
    assert not store.record_status("r1", "failed").applied  # terminal is final
    job = store.get("r1")
    assert job["status"] == "succeeded" and job["operation"] == "simple_demo" and job["rowCount"] == 3
    assert job["createdAt"] <= job["startedAt"] <= job["finishedAt"]


def test_expired_items_are_treated_as_absent(store):
    store.record_status("old", "succeeded", job_type="analytics", now=time.time() - 8 * 24 * 3600)
    assert store.get("old") is None
    assert store.get("never-written") is None


def test_a_failed_ingest_run_is_mirrored_with_its_error_and_announced(stack, instance, notices, store):
    driver = Driver(stack, instance)
    driver.upload("crm-data/broken.json", "{broken")
    [run] = driver.tick_and_run()
    assert not run.success
    res = resources_for(stack)
    note = mirror_run(instance, run.dagster_run, res["job_tracking"], res["metrics"], "http://dagster.test")
    assert note and note.endswith("failed")
    job = store.get(run.run_id)
    assert job["status"] == "failed" and job["jobType"] == "ingest"
    assert "malformed JSON" in job["error"]
    assert job["dagsterRunUrl"] == f"http://dagster.test/runs/{run.run_id}"
    [msg] = notices(1)
    body = json.loads(msg["Message"])
    assert body["jobId"] == run.run_id and body["status"] == "failed" and body["jobType"] == "ingest"
    assert "malformed JSON" in body["error"]
    assert msg["MessageAttributes"]["status"]["Value"] == "failed"
    assert "failed" in msg["Subject"]
    # Mirroring the same run again changes nothing and sends nothing.
    assert (
        mirror_run(instance, run.dagster_run, res["job_tracking"], res["metrics"], "http://dagster.test")
        is None
    )
    assert notices(0, timeout=1) == []
    assert _failed_runs_metric(stack, "ingest") == 1  # once, in this environment's series (the alarm's input)


def _failed_runs_metric(stack, job_type: str) -> float:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    stats = stack.client("cloudwatch").get_metric_statistics(
        Namespace="CanonicalPipeline",
        MetricName="FailedRuns",
        StartTime=now - dt.timedelta(hours=1),
        EndTime=now + dt.timedelta(minutes=5),
        Period=3600,
        Statistics=["Sum"],
        Dimensions=[
            {"Name": "Environment", "Value": stack.settings.pipeline_env},
            {"Name": "JobType", "Value": job_type},
        ],
    )
    return sum(p["Sum"] for p in stats["Datapoints"])


def test_a_successful_ingest_run_is_mirrored_without_a_notice(stack, instance, notices, store):
    driver = Driver(stack, instance)
    driver.upload("crm-data/ok.json", {"records": [{"id": 1, "name": "Fine"}]})
    [run] = driver.tick_and_run()
    assert run.success
    res = resources_for(stack)
    mirror_run(instance, run.dagster_run, res["job_tracking"], res["metrics"], "http://dagster.test")
    assert store.get(run.run_id)["status"] == "succeeded"
    assert notices(0, timeout=1) == []


def test_reconciler_repairs_a_burst_of_200_runs_and_owes_no_duplicate_notices(
    stack, instance, notices, store
):
    res = resources_for(stack)
    tracking = {k: res[k] for k in ("job_tracking", "metrics")}
    expected: dict[str, str] = {}
    final = [
        DagsterRunStatus.SUCCESS,
        DagsterRunStatus.FAILURE,
        DagsterRunStatus.CANCELED,
        DagsterRunStatus.STARTED,
        DagsterRunStatus.NOT_STARTED,
    ]
    names = {
        DagsterRunStatus.SUCCESS: "succeeded",
        DagsterRunStatus.FAILURE: "failed",
        DagsterRunStatus.CANCELED: "canceled",
        DagsterRunStatus.STARTED: "running",
        DagsterRunStatus.NOT_STARTED: "queued",
    }
    owed = 0
    for i in range(200):
        status = final[i % len(final)]
        job = "analytics_job" if i % 2 == 0 else "ingest_job"
        run = create_run_for_test(
            instance,
            job_name=job,
            status=status,
            run_config={"ops": {"run_analytics": {"config": {"operation": "simple_demo", "parameters": {}}}}}
            if job == "analytics_job"
            else {},
        )
        expected[run.run_id] = names[status]
        if (
            job == "analytics_job"
            and status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
        ) or (job == "ingest_job" and status == DagsterRunStatus.FAILURE):
            owed += 1
    # The run-status sensors saw only a few of them (say the first 3 runs were marked running early).
    for run_id in list(expected)[:3]:
        store.record_status(run_id, "running")
    ctx = build_sensor_context(instance=instance, resources=tracking)
    # A budget no busy machine exhausts: this pins what one pass repairs, not how fast.
    result = reconcile(ctx, **tracking, page=50, budget_seconds=600)
    assert json.loads(result.cursor)["ts"] > 0
    for run_id, status in expected.items():
        assert store.get(run_id)["status"] == status, run_id
    got = notices(owed, timeout=20)
    assert len(got) == owed
    # A second pass finds nothing to repair and sends nothing more.
    again = reconcile(
        build_sensor_context(instance=instance, cursor=result.cursor, resources=tracking), **tracking, page=50
    )
    assert again.skip_reason is not None
    assert notices(0, timeout=1) == []
