"""landing_sensor's discovery: queue and listing paths, bounds per tick, idempotency, recovery."""

from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import psycopg
import pytest
from dagster import DagsterRunStatus, build_sensor_context, instance_for_test

from resources.ingest.registry import FileObject, get_files, register_files
from resources.settings import Settings
from sensors.landing import LandingCursor, TickLimits, landing_tick, parse_s3_event
from tests.support.ingest import Driver, q, q1, resources_for


def test_s3_event_messages_are_parsed_with_url_decoded_keys_and_test_events_ignored():
    body = json.dumps(
        {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "eventTime": "2024-01-01T00:00:00.000Z",
                    "s3": {
                        "bucket": {"name": "raw"},
                        "object": {"key": "crm-data/my+file%C3%A9.json", "size": 5, "eTag": "abc"},
                    },
                }
            ]
        }
    )
    [obj] = parse_s3_event(body, "raw")
    assert obj.key == "crm-data/my fileé.json" and obj.etag == "abc" and obj.size == 5
    assert parse_s3_event(json.dumps({"Event": "s3:TestEvent"}), "raw") == []
    assert parse_s3_event("not json", "raw") is None
    assert parse_s3_event(body, "other-bucket") == []


def test_cursor_survives_garbage():
    assert LandingCursor.parse("{not json") == LandingCursor()
    c = LandingCursor(list_after="crm-data/x", last_pass_completed=5.0, passes=2)
    assert LandingCursor.parse(c.serialize()) == c


@pytest.fixture
def instance():
    with instance_for_test() as inst:
        yield inst


def _upload_many(stack, keys, body=b'{"records": [{"id": 1, "name": "x"}]}'):
    s3 = stack.client("s3")

    def put(k):
        s3.put_object(Bucket=stack.settings.raw_bucket, Key=k, Body=body)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, keys))


@pytest.mark.integration
def test_a_thousand_keys_in_one_second_out_of_key_order_are_all_ingested(stack, instance):
    # Reverse key order and one LastModified second: a since-key or since-time sensor would miss files.
    keys = [f"crm-data/burst/{i:04d}.json" for i in range(1000)][::-1]
    bodies = {
        k: json.dumps({"records": [{"id": k.split("/")[-1][:4], "name": f"Company {k}"}]}).encode()
        for k in keys
    }
    s3 = stack.client("s3")
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=stack.settings.raw_bucket, Key=k, Body=bodies[k]), keys))
    driver = Driver(stack, instance, tuning={"max_files_per_run": 100})
    driver.settle(max_ticks=200)
    url = stack.pg.owner_url
    assert q(url, "SELECT status, count(*) FROM ingest.files GROUP BY status") == [("loaded", 1000)]
    assert q1(url, "SELECT count(*) FROM canonical.entities") == 1000
    # Bounded runs: never more files per run than configured.
    sizes = [
        len(r.dagster_run.run_config["ops"]["ingest_files"]["config"]["file_ids"]) for r in driver.results
    ]
    assert max(sizes) == 100 and len(sizes) == 10
    assert all(r.success for r in driver.results)


@pytest.mark.integration
def test_listing_is_bounded_per_tick_and_resumes_from_the_cursor(stack, instance):
    keys = [f"legacy-data/{i:05d}.json" for i in range(1200)]
    _upload_many(stack, keys)
    res = resources_for(stack)
    res["raw_bucket"] = res["raw_bucket"].model_copy(
        update={"event_queue": ""}
    )  # listing alone, as when notifications are off
    limits = replace(
        TickLimits.from_tuning(res["ingest_tuning"], queue_on=False),
        page_size=250,
        list_pages=2,
        max_runs_per_tick=0,
    )
    cursor = None
    seen = []
    for _ in range(3):
        ctx = build_sensor_context(instance=instance, cursor=cursor, resources=res)
        result = landing_tick(ctx, res["postgres"], res["raw_bucket"], limits, 0.5)
        cursor = result.cursor
        seen.append(q1(stack.pg.owner_url, "SELECT count(*) FROM ingest.files"))
    assert seen == [500, 1000, 1200]  # 2 pages of 250 per tick, carried in the cursor
    assert LandingCursor.parse(cursor).list_after is None and LandingCursor.parse(cursor).passes == 1


@pytest.mark.integration
def test_queue_path_finds_new_files_without_listing(stack, instance):
    driver = Driver(stack, instance)
    driver.cursor = LandingCursor(last_pass_completed=time.time()).serialize()  # listing not due
    driver.upload("crm-data/q.json", {"records": [{"id": 1, "name": "Queued"}]})
    result = driver.tick()
    assert len(result.run_requests) == 1
    assert q(stack.pg.owner_url, "SELECT s3_key, discovered_via FROM ingest.files") == [
        ("crm-data/q.json", "queue")
    ]
    sqs = stack.client("sqs")
    attrs = sqs.get_queue_attributes(
        QueueUrl=stack.aws.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"  # deleted after the registry committed


@pytest.mark.integration
def test_restarted_endpoint_with_recreated_queue_neither_loses_nor_reingests_recorded_files(stack, instance):
    from pipeline_defs.devstack.provisioning import ensure_aws_resources

    driver = Driver(stack, instance)
    driver.upload("crm-data/a.json", {"records": [{"id": 1, "name": "A"}]})
    driver.settle()
    # moto restarted: everything recreated empty, the same sample re-uploaded, plus a new file.
    s3 = stack.client("s3")
    for obj in s3.list_objects_v2(Bucket=stack.settings.raw_bucket).get("Contents", []):
        s3.delete_object(Bucket=stack.settings.raw_bucket, Key=obj["Key"])
    stack.client("sqs").purge_queue(QueueUrl=stack.aws.queue_url)
    ensure_aws_resources(stack.settings)
    driver.upload("crm-data/a.json", {"records": [{"id": 1, "name": "A"}]})
    driver.upload("crm-data/b.json", {"records": [{"id": 2, "name": "B"}]})
    driver.settle()
    rows = q(stack.pg.owner_url, "SELECT s3_key, status FROM ingest.files ORDER BY s3_key")
    assert rows == [("crm-data/a.json", "loaded"), ("crm-data/b.json", "loaded")]


def _load_in_child(writer_url, endpoint, bucket, file_id, run_id):
    import os

    os.environ["AWS_ENDPOINT_URL"] = endpoint
    from resources.clients.aws import aws_client
    from resources.ingest.runner import ingest_file

    with psycopg.connect(writer_url) as conn:
        [file] = get_files(conn, [file_id])
        conn.commit()
        ingest_file(conn, aws_client("s3", Settings()), bucket, file, run_id)


@pytest.mark.integration
def test_a_run_killed_half_way_leaves_no_partial_file_and_the_file_is_failed_after(stack, instance):
    records = [{"id": i, "name": f"Company {i}", "annual_revenue": i} for i in range(150_000)]
    key = "crm-data/big.json"
    s3 = stack.client("s3")
    etag = s3.put_object(
        Bucket=stack.settings.raw_bucket, Key=key, Body=json.dumps({"records": records}).encode()
    )["ETag"]
    with psycopg.connect(stack.pg.writer_url) as conn:
        [row] = register_files(conn, [FileObject(key, etag, 1)], via="listing")
    from dagster._core.test_utils import create_run_for_test

    dagster_run = create_run_for_test(
        instance, job_name="ingest_job", status=DagsterRunStatus.STARTED, tags={"ingest/batch": "killed"}
    )
    with psycopg.connect(stack.pg.writer_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE ingest.files SET status = 'queued', batch_id = 'killed', queued_at = now(), "
            "launches = 1 WHERE file_id = %s",
            (row.file_id,),
        )
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(
        target=_load_in_child,
        args=(
            stack.pg.writer_url,
            stack.settings.aws_endpoint_url,
            stack.settings.raw_bucket,
            row.file_id,
            dagster_run.run_id,
        ),
    )
    child.start()
    deadline = time.monotonic() + 60
    while q1(stack.pg.owner_url, "SELECT status FROM ingest.files") != "loading":
        assert time.monotonic() < deadline and child.is_alive()
        time.sleep(0.05)
    time.sleep(1.0)  # well into parsing and COPY
    child.kill()
    child.join()
    url = stack.pg.owner_url
    assert q1(url, "SELECT count(*) FROM canonical.entities") == 0
    assert q1(url, "SELECT status FROM ingest.files") == "loading"
    # The daemon notices the run ended; the sensor then fails the file instead of leaving it loading.
    instance.report_run_failed(dagster_run)
    res = resources_for(stack)
    landing_tick(
        build_sensor_context(
            instance=instance,
            resources=res,
            cursor=LandingCursor(last_pass_completed=time.time()).serialize(),
        ),
        res["postgres"],
        res["raw_bucket"],
        TickLimits(),
        0.5,
    )
    status, reason = q(url, "SELECT status, reason FROM ingest.files")[0]
    assert status == "failed" and "ended" in reason and "nothing of it landed" in reason


@pytest.mark.integration
def test_a_batch_whose_run_was_never_launched_is_released_and_rebatched(stack, instance):
    driver = Driver(stack, instance)
    driver.upload("crm-data/lost.json", {"records": [{"id": 1, "name": "Lost"}]})
    lost = driver.tick()  # claimed; pretend the daemon never launched it
    assert len(lost.run_requests) == 1
    with psycopg.connect(stack.pg.owner_url, autocommit=True) as conn:
        conn.execute("UPDATE ingest.files SET queued_at = now() - interval '1 hour'")
    again = driver.tick()
    assert len(again.run_requests) == 1
    assert again.run_requests[0].run_key != lost.run_requests[0].run_key
    [run] = driver.run(again)
    assert run.success
    assert q1(stack.pg.owner_url, "SELECT status FROM ingest.files") == "loaded"


@pytest.mark.integration
def test_batches_in_flight_are_looked_up_in_one_runs_query_per_tick(stack, instance, monkeypatch):
    driver = Driver(stack, instance, tuning={"max_files_per_run": 1})
    for i in range(3):
        driver.upload(f"crm-data/flight-{i}.json", {"records": [{"id": i, "name": "In flight"}]})
    assert len(driver.tick().run_requests) == 3  # three batches queued; their runs not launched yet
    calls = []
    get_runs = instance.get_runs
    monkeypatch.setattr(instance, "get_runs", lambda *a, **k: calls.append(k) or get_runs(*a, **k))
    assert not driver.tick().run_requests  # young batches without runs are left alone
    assert len(calls) == 1
    with psycopg.connect(stack.pg.owner_url, autocommit=True) as conn:
        conn.execute("UPDATE ingest.files SET queued_at = now() - interval '1 hour'")
    again = driver.tick()  # now lost: released and batched again, each still found by its own tag
    assert len(again.run_requests) == 3 and len(calls) == 2
    assert all(r.success for r in driver.run(again))
    assert q(stack.pg.owner_url, "SELECT DISTINCT status FROM ingest.files") == [("loaded",)]


def test_landing_sensor_ticks_at_every_daemon_loop():
    # The daemon's sensor loop comes round every MIN_INTERVAL_LOOP_TIME (5 s) at best, and the minimum is
    # measured from the previous tick's start: a minimum of 5 s would be missed at every other loop (10 s ticks).
    from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME

    from sensors.landing import landing_sensor

    assert landing_sensor.minimum_interval_seconds < MIN_INTERVAL_LOOP_TIME


class _RecordingSqs:
    """An SQS client that hands out the given batches, then nothing, and records every receive."""

    def __init__(self, batches):
        self.batches = list(batches)
        self.receives: list[dict] = []
        self.deleted = 0

    def receive_message(self, **kwargs):
        self.receives.append(kwargs)
        return {"Messages": self.batches.pop(0)} if self.batches else {}

    def delete_message_batch(self, QueueUrl, Entries):
        self.deleted += len(Entries)


class _NoDatabase:
    def commit(self):
        pass


def test_a_ticks_first_receive_long_polls_as_the_queue_says_and_later_receives_never_wait():
    from sensors.landing import drain_queue

    test_event = {"Body": json.dumps({"Event": "s3:TestEvent"}), "ReceiptHandle": "h"}
    sqs = _RecordingSqs([[test_event], [test_event, test_event]])
    messages, registered = drain_queue(
        sqs, "url", "raw", _NoDatabase(), receives=10, deadline=time.monotonic() + 60, log=None
    )
    assert (messages, registered, sqs.deleted) == (3, 0, 3)
    # No WaitTimeSeconds on the first receive: SQS applies the queue's ReceiveMessageWaitTimeSeconds
    # (make dev's queue: 4 s; 0 unless set), so an idle tick can wait there for the next upload.
    assert "WaitTimeSeconds" not in sqs.receives[0]
    assert [r["WaitTimeSeconds"] for r in sqs.receives[1:]] == [0, 0]
    assert all(r["QueueUrl"] == "url" and r["MaxNumberOfMessages"] == 10 for r in sqs.receives)


def test_an_empty_queue_costs_a_tick_one_receive():
    from sensors.landing import drain_queue

    sqs = _RecordingSqs([])
    assert drain_queue(
        sqs, "url", "raw", _NoDatabase(), receives=10, deadline=time.monotonic() + 60, log=None
    ) == (0, 0)
    assert len(sqs.receives) == 1 and "WaitTimeSeconds" not in sqs.receives[0]


@pytest.mark.integration
def test_a_tick_recovers_and_lists_before_it_drains_the_queue_then_claims(stack, instance, monkeypatch):
    # A file that arrives while the queue long-polls goes to a run with only the claim in between.
    import sensors.landing as landing

    order = []
    for name in ("recover_lost_work", "list_pass", "drain_queue", "run_requests"):
        real = getattr(landing, name)
        monkeypatch.setattr(landing, name, lambda *a, _n=name, _r=real, **k: order.append(_n) or _r(*a, **k))
    driver = Driver(stack, instance)
    driver.upload("crm-data/order.json", {"records": [{"id": 1, "name": "Order"}]})
    assert len(driver.tick().run_requests) == 1
    assert order == ["recover_lost_work", "list_pass", "drain_queue", "run_requests"]
