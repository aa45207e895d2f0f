"""What the CDK app creates on AWS, created on the local endpoint (moto) for `make dev`, the
integration tests and the benchmarks: the raw and results buckets, the ingest queue fed by the raw
bucket's event notifications, the jobs table and the notices topic.

Idempotent: run it at every start (moto keeps its state in memory).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from resources.clients.aws import aws_client
from resources.settings import Settings, get_settings

NOTIFICATION_ID = "raw-objects-to-ingest-queue"


@dataclass(frozen=True)
class AwsResources:
    # None when INGEST_QUEUE is empty (the queue path is disabled; the listing reconciler finds files).
    queue_url: str | None
    queue_arn: str | None
    topic_arn: str


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def ensure_bucket(s3: Any, name: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=name)
        return
    except ClientError as exc:
        if _error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise
    kwargs: dict[str, Any] = {"Bucket": name}
    # us-east-1 is the default location and refuses an explicit LocationConstraint.
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as exc:
        if _error_code(exc) != "BucketAlreadyOwnedByYou":
            raise


def ensure_queue(sqs: Any, name: str, bucket: str) -> tuple[str, str]:
    """The ingest queue, with a policy letting the raw bucket's notifications send to it."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RawBucketNotifications",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    return url, arn


def set_queue_wait(settings: Settings, queue_url: str, seconds: int) -> None:
    """The queue's ReceiveMessageWaitTimeSeconds: how long a receive that names no wait of its own
    (landing_sensor's first receive of a tick) long-polls an empty queue. SQS allows 0 to 20."""
    aws_client("sqs", settings).set_queue_attributes(
        QueueUrl=queue_url, Attributes={"ReceiveMessageWaitTimeSeconds": str(seconds)}
    )


def ensure_bucket_notifications(s3: Any, bucket: str, queue_arn: str) -> None:
    """Every object created in the bucket → an event message on the queue.

    Written only when missing: S3 (and moto) send an `s3:TestEvent` message to the queue each time
    the configuration is put, which a restart should not repeat.
    """
    current = s3.get_bucket_notification_configuration(Bucket=bucket)
    for qc in current.get("QueueConfigurations", []):
        if (
            qc.get("QueueArn") == queue_arn
            and "s3:ObjectCreated:*" in qc.get("Events", [])
            and not qc.get("Filter")
        ):
            return
    queue_configs = [qc for qc in current.get("QueueConfigurations", []) if qc.get("Id") != NOTIFICATION_ID]
    queue_configs.append({"Id": NOTIFICATION_ID, "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]})
    config: dict[str, Any] = {"QueueConfigurations": queue_configs}
    for other in ("TopicConfigurations", "LambdaFunctionConfigurations", "EventBridgeConfiguration"):
        if other in current:
            config[other] = current[other]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)


def ensure_jobs_table(dynamodb: Any, name: str) -> None:
    try:
        dynamodb.describe_table(TableName=name)
    except ClientError as exc:
        if _error_code(exc) != "ResourceNotFoundException":
            raise
        try:
            dynamodb.create_table(
                TableName=name,
                AttributeDefinitions=[
                    {"AttributeName": "PK", "AttributeType": "S"},
                    {"AttributeName": "SK", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "PK", "KeyType": "HASH"},
                    {"AttributeName": "SK", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as create_exc:
            if _error_code(create_exc) != "ResourceInUseException":  # created concurrently
                raise
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"}
        )


def ensure_aws_resources(settings: Settings | None = None) -> AwsResources:
    """Create (or confirm) every AWS resource the platform uses. Safe to call repeatedly."""
    settings = settings or get_settings()
    s3 = aws_client("s3", settings)
    ensure_bucket(s3, settings.raw_bucket, settings.aws_region)
    ensure_bucket(s3, settings.results_bucket, settings.aws_region)

    queue_url = queue_arn = None
    if settings.ingest_queue:
        queue_url, queue_arn = ensure_queue(
            aws_client("sqs", settings), settings.ingest_queue, settings.raw_bucket
        )
        ensure_bucket_notifications(s3, settings.raw_bucket, queue_arn)

    ensure_jobs_table(aws_client("dynamodb", settings), settings.jobs_table)
    topic_arn = aws_client("sns", settings).create_topic(Name=settings.notify_topic)["TopicArn"]
    return AwsResources(queue_url=queue_url, queue_arn=queue_arn, topic_arn=topic_arn)
