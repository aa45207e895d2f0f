"""The AWS side of the local platform, created on a real moto server as the CDK app creates it on AWS."""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

import pytest

from pipeline_defs.devstack.provisioning import ensure_aws_resources, set_queue_wait
from resources.clients.aws import aws_client
from resources.settings import Settings
from tests.support.aws import receive_messages, s3_event_records, unique_aws_env

integration = pytest.mark.integration


@integration
def test_ensure_aws_resources_creates_everything_and_is_idempotent(aws_env):
    s = aws_env
    first = ensure_aws_resources(s)
    second = ensure_aws_resources(s)
    assert first == second
    assert first.queue_arn and first.queue_arn.endswith(":" + s.ingest_queue)
    assert first.topic_arn.endswith(":" + s.notify_topic)

    s3 = aws_client("s3", s)
    for bucket in (s.raw_bucket, s.results_bucket):
        # us-east-1: no LocationConstraint (S3 reports None for it).
        assert s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") is None
    notif = s3.get_bucket_notification_configuration(Bucket=s.raw_bucket)
    assert [(q["QueueArn"], q["Events"]) for q in notif["QueueConfigurations"]] == [
        (first.queue_arn, ["s3:ObjectCreated:*"])
    ]

    sqs = aws_client("sqs", s)
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=first.queue_url, AttributeNames=["Policy"])["Attributes"]["Policy"]
    )
    [stmt] = policy["Statement"]
    assert stmt["Action"] == "sqs:SendMessage"
    assert stmt["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:s3:::{s.raw_bucket}"

    ddb = aws_client("dynamodb", s)
    table = ddb.describe_table(TableName=s.jobs_table)["Table"]
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {
        ("PK", "HASH"),
        ("SK", "RANGE"),
    }
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = ddb.describe_time_to_live(TableName=s.jobs_table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expiresAt")

    # Paged (100 a page): the session's moto server holds every earlier test's topics too.
    pages = aws_client("sns", s).get_paginator("list_topics").paginate()
    topics = [t for page in pages for t in page["Topics"]]
    assert first.topic_arn in {t["TopicArn"] for t in topics}

    # The notification configuration was written once: one s3:TestEvent, not one per call.
    bodies = receive_messages(sqs, first.queue_url, timeout=1.5, expect=2)
    assert [b.get("Event") for b in bodies] == ["s3:TestEvent"]


@integration
def test_an_upload_delivers_an_s3_event_with_url_encoded_key_and_unquoted_etag(aws_settings):
    s, res = aws_settings
    sqs = aws_client("sqs", s)
    receive_messages(sqs, res.queue_url, timeout=2, expect=1)  # the configuration's s3:TestEvent
    key = "crm-data/with space+plus é.json"
    put = aws_client("s3", s).put_object(Bucket=s.raw_bucket, Key=key, Body=b'{"records": []}')

    [record] = s3_event_records(receive_messages(sqs, res.queue_url, timeout=10))
    assert record["eventSource"] == "aws:s3"
    assert record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == s.raw_bucket
    obj = record["s3"]["object"]
    assert obj["key"] != key and unquote_plus(obj["key"]) == key  # form-encoded, as S3 does
    assert obj["eTag"] == put["ETag"].strip('"')  # events carry the ETag without quotes
    assert obj["size"] == len(b'{"records": []}')


@integration
def test_buckets_outside_us_east_1_get_their_location_constraint(moto_server, monkeypatch):
    env = unique_aws_env(moto_server.endpoint_url) | {"AWS_REGION": "eu-west-1"}
    s = Settings(**env)
    res = ensure_aws_resources(s)
    assert ensure_aws_resources(s) == res
    assert ":eu-west-1:" in (res.queue_arn or "")
    loc = aws_client("s3", s).get_bucket_location(Bucket=s.raw_bucket)["LocationConstraint"]
    assert loc == "eu-west-1"


@integration
def test_an_empty_ingest_queue_disables_the_queue_and_the_notifications(moto_server):
    s = Settings(**unique_aws_env(moto_server.endpoint_url) | {"INGEST_QUEUE": ""})
    res = ensure_aws_resources(s)
    assert (res.queue_url, res.queue_arn) == (None, None)
    notif = aws_client("s3", s).get_bucket_notification_configuration(Bucket=s.raw_bucket)
    assert not notif.get("QueueConfigurations")


@integration
def test_the_queue_long_poll_is_set_on_the_queue_and_left_at_zero_by_provisioning(aws_env):
    res = ensure_aws_resources(aws_env)
    sqs = aws_client("sqs", aws_env)

    def wait() -> str:
        return sqs.get_queue_attributes(
            QueueUrl=res.queue_url, AttributeNames=["ReceiveMessageWaitTimeSeconds"]
        )["Attributes"]["ReceiveMessageWaitTimeSeconds"]

    assert wait() == "0"  # the tests' queues answer at once: an idle test tick never waits
    set_queue_wait(aws_env, res.queue_url, 4)
    assert wait() == "4"
