"""landing_sensor: notices new objects in the raw bucket and launches ingest runs in batches.

Discovery has two paths that feed one idempotent registry (`ingest.files`, unique on key + ETag):
1. the raw bucket's S3 event notifications, drained from an SQS queue (cheap, prompt);
2. a bounded listing pass in key order, resumed from the cursor, that reconciles anything the queue
   missed (notifications off, a lost message, files that predate the queue). It never relies on
   LastModified ordering, so many files in one second or keys arriving out of order are not missed.
Each tick is bounded in messages, pages and seconds, so a bucket of 100k objects never pushes a tick
past its timeout: the listing position is carried in the cursor.
The heavy work is left to runs: pending files are grouped into batches bounded by files and bytes,
each batch one run (run key = batch id). Nothing waits forever: runs that die before reaching their
files are detected and their files released (or failed after repeated launches); a `loading` file whose
loader's database session is gone (the registry's liveness rule, whatever the launcher or platform) is
failed, its run too once it has gone silent; and infrastructure failures are retried with backoff.
"""

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

import psycopg
from dagster import (
    AssetObservation,
    DagsterRunStatus,
    DefaultSensorStatus,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.ingest import ingest_job
from assets.raw import RAW_FILES
from resources.contract import BATCH_TAG, LANDING_SENSOR, ingest_run_config
from resources.dagster_resources import IngestTuningResource, PostgresResource, RawBucketResource
from resources.ingest import defaults as ingest_defaults
from resources.ingest.registry import (
    LOADER_LOST,
    FileObject,
    batches_in_flight,
    claim_batches,
    fail_lost_loaders,
    mark_failed,
    queued_files,
    register_files,
    release_to_pending,
    retry_due,
    runs_with_lost_loaders,
    source_summary,
)

MAX_LAUNCHES = 3
LANDING_MIN_INTERVAL_SECONDS = 1
_TERMINAL = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
_LIVE = {DagsterRunStatus.STARTING, DagsterRunStatus.STARTED}


@dataclass(frozen=True)
class TickLimits:
    tick_seconds: float = 30.0  # well under the daemon's 60 s sensor timeout
    queue_receives: int = 10  # SQS receive calls per tick, 10 messages each
    list_pages: int = 10  # listing pages per tick
    page_size: int = 1000
    reconcile_interval_seconds: float = ingest_defaults.RECONCILE_INTERVAL_SECONDS
    max_files_per_run: int = ingest_defaults.MAX_FILES_PER_RUN
    max_bytes_per_run: int = ingest_defaults.MAX_BYTES_PER_RUN
    max_runs_per_tick: int = 10
    max_batches_in_flight: int = 20
    lost_batch_seconds: float = 600.0  # a queued batch with no run after this long is re-batched
    # The raw-files asset is observed at least this often, and when files arrive or runs start at most
    # this often: its summary groups the whole registry, not a query for every 5-second tick of a backfill.
    observe_interval_seconds: float = 300.0
    observe_min_seconds: float = 30.0
    max_attempts: int = ingest_defaults.MAX_ATTEMPTS
    retry_backoff_seconds: float = ingest_defaults.RETRY_BACKOFF_SECONDS
    # A run whose loader is gone is failed once it has logged nothing for this long; runs that lost a
    # loader longer ago than the lookback are no longer looked at.
    dead_run_grace_seconds: float = 60.0
    lost_run_lookback_seconds: float = 3600.0

    @classmethod
    def from_tuning(cls, tuning: IngestTuningResource, *, queue_on: bool) -> "TickLimits":
        # Without the event queue the listing is the only way files are found: it runs continuously.
        return cls(
            max_files_per_run=tuning.max_files_per_run,
            max_bytes_per_run=tuning.max_bytes_per_run,
            reconcile_interval_seconds=tuning.reconcile_interval_seconds if queue_on else 0.0,
            max_attempts=tuning.max_attempts,
            retry_backoff_seconds=tuning.retry_backoff_seconds,
        )


@dataclass
class LandingCursor:
    list_after: str | None = None  # resume the listing pass after this key; None = start a pass
    last_pass_completed: float = 0.0  # epoch seconds
    passes: int = 0
    last_observed: float = 0.0  # epoch seconds of the last observation of the raw-files asset

    @classmethod
    def parse(cls, raw: str | None) -> "LandingCursor":
        if not raw:
            return cls()
        try:
            return cls(**json.loads(raw))
        except (ValueError, TypeError):
            return cls()  # an unreadable cursor costs one extra listing pass, nothing more

    def serialize(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def parse_s3_event(body: str, bucket: str) -> list[FileObject] | None:
    """FileObjects from one S3 event notification message; None when it is not one we understand."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if isinstance(doc, dict) and "Message" in doc and isinstance(doc["Message"], str):  # via SNS
        return parse_s3_event(doc["Message"], bucket)
    if not isinstance(doc, dict):
        return None
    if doc.get("Event") == "s3:TestEvent":
        return []
    out: list[FileObject] = []
    for rec in doc.get("Records", []) or []:
        try:
            if not str(rec.get("eventName", "")).startswith("ObjectCreated"):
                continue
            s3 = rec["s3"]
            if s3["bucket"]["name"] != bucket:
                continue
            obj = s3["object"]
            when = rec.get("eventTime")
            out.append(
                FileObject(
                    key=unquote_plus(obj["key"]),
                    etag=str(obj.get("eTag") or obj.get("etag") or ""),
                    size=int(obj.get("size", 0)),
                    last_modified=datetime.fromisoformat(when) if when else None,
                )
            )
        except (KeyError, TypeError, ValueError):
            return None
    return [o for o in out if o.etag]


def drain_queue(
    sqs: Any, queue_url: str, bucket: str, conn: psycopg.Connection, receives: int, deadline: float, log: Any
) -> tuple[int, int]:
    """Register the files announced on the queue; delete messages only after the registry commits."""
    messages = registered = 0
    for i in range(receives):
        if time.monotonic() > deadline:
            break
        kwargs: dict[str, Any] = {"QueueUrl": queue_url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 60}
        if i:
            kwargs["WaitTimeSeconds"] = 0  # messages came: drain what is there, never wait again
        # The first receive leaves WaitTimeSeconds out, so SQS applies the queue's own
        # ReceiveMessageWaitTimeSeconds: a queue set to long-poll (`make dev`'s: DEV_QUEUE_WAIT_SECONDS)
        # lets a tick with nothing to do wait there for the next upload and hand it on at once,
        # instead of it waiting for the next tick; a queue at the default 0 answers at once.
        resp = sqs.receive_message(**kwargs)
        batch = resp.get("Messages", [])
        if not batch:
            break
        objects: list[FileObject] = []
        for m in batch:
            parsed = parse_s3_event(m.get("Body", ""), bucket)
            if parsed is None:
                log.warning(
                    f"ignoring a message that is not an S3 event notification: {m.get('Body', '')[:200]}"
                )
            else:
                objects.extend(parsed)
        registered += len(register_files(conn, objects, via="queue"))
        conn.commit()
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
        messages += len(batch)
    return messages, registered


def list_pass(
    s3: Any, bucket: str, conn: psycopg.Connection, cursor: LandingCursor, limits: TickLimits, deadline: float
) -> tuple[int, int]:
    """Continue the listing pass from the cursor for a bounded number of pages."""
    listed = registered = 0
    for _ in range(limits.list_pages):
        if time.monotonic() > deadline:
            break
        kwargs: dict[str, Any] = {"Bucket": bucket, "MaxKeys": limits.page_size}
        if cursor.list_after:
            kwargs["StartAfter"] = cursor.list_after
        page = s3.list_objects_v2(**kwargs)
        contents = page.get("Contents", [])
        objects = [
            FileObject(o["Key"], o["ETag"], int(o.get("Size", 0)), o.get("LastModified")) for o in contents
        ]
        registered += len(register_files(conn, objects, via="listing"))
        conn.commit()
        listed += len(objects)
        if contents:
            cursor.list_after = contents[-1]["Key"]
        if not page.get("IsTruncated"):
            cursor.list_after = None
            cursor.last_pass_completed = time.time()
            cursor.passes += 1
            break
    return listed, registered


def recover_lost_work(
    context: SensorEvaluationContext, conn: psycopg.Connection, limits: TickLimits
) -> list[str]:
    """Nothing waits forever: loaders the database proves gone, batches whose run ended or never started,
    and infrastructure failures whose backoff has passed."""
    notes = [
        f"{f.s3_key}: failed ({LOADER_LOST}); it is retried automatically" for f in fail_lost_loaders(conn)
    ]
    conn.commit()
    notes.extend(_fail_runs_of_lost_loaders(context, conn, limits))
    notes.extend(_recover_queued(context, conn, limits))
    for f in retry_due(conn, max_attempts=limits.max_attempts, backoff_seconds=limits.retry_backoff_seconds):
        notes.append(
            f"{f.s3_key}: attempt {f.attempt} pending (automatic retry {f.retries} of "
            f"{limits.max_attempts - 1} after an infrastructure failure)"
        )
    conn.commit()
    return notes


def _fail_runs_of_lost_loaders(
    context: SensorEvaluationContext, conn: psycopg.Connection, limits: TickLimits
) -> list[str]:
    """A run that lost its loader and still shows as started is failed too, once it has been silent for
    `dead_run_grace_seconds`: a live run between a lost connection and its step's retry logs events,
    and whatever the launcher, a dead worker never will."""
    notes: list[str] = []
    now = time.time()
    for run_id in runs_with_lost_loaders(conn, within_seconds=limits.lost_run_lookback_seconds):
        record = context.instance.get_run_record_by_id(run_id)
        if record is None or record.dagster_run.status not in _LIVE:
            continue
        run = record.dagster_run
        events = context.instance.get_records_for_run(run_id, limit=1, ascending=False).records
        last = events[0].event_log_entry.timestamp if events else record.create_timestamp.timestamp()
        if now - last < limits.dead_run_grace_seconds:
            continue
        context.instance.report_run_failed(
            run,
            message=f"landing_sensor: the run's file loader ended without finishing (its database session "
            f"is gone) and the run has logged nothing for {now - last:.0f}s; its files are retried "
            "by themselves",
        )
        notes.append(f"run {run_id}: marked failed (its loader is gone)")
    return notes


def _recover_queued(
    context: SensorEvaluationContext, conn: psycopg.Connection, limits: TickLimits
) -> list[str]:
    """Queued files whose run ended (or never started) without reaching them: release or fail them."""
    notes: list[str] = []
    rows = queued_files(conn)
    if not rows:
        return notes
    # Each batch's newest run, in one query whatever the number of batches in flight: a query per batch
    # made every tick of a backlog slower, and with it every file's hand-over to its run.
    batch_ids = sorted({r.batch_id for r in rows if r.batch_id})
    batch_runs: dict[str, Any] = {}
    if batch_ids:
        for found in context.instance.get_runs(
            filters=RunsFilter(tags={BATCH_TAG: batch_ids})
        ):  # newest first
            batch_runs.setdefault(found.tags.get(BATCH_TAG, ""), found)
    for row in rows:
        run = batch_runs.get(row.batch_id or "")
        ended = run is not None and run.status in _TERMINAL
        lost = run is None and row.age_seconds > limits.lost_batch_seconds
        if not (ended or lost):
            continue
        if row.launches >= MAX_LAUNCHES:
            why = (
                f"run {run.run_id} ended ({run.status.value}) before this file finished; nothing of it landed"
                if run is not None
                else "its run was never launched"
            )
            why = f"{row.launches} ingest runs ended before reaching this file; last: {why}"
            mark_failed(conn, row.file_id, why, kind="infrastructure", from_status="queued")
            notes.append(f"{row.s3_key}: failed ({why})")
        else:
            release_to_pending(conn, row.file_id)
            notes.append(f"{row.s3_key}: released for a new batch")
    conn.commit()
    return notes


def run_requests(
    conn: psycopg.Connection, limits: TickLimits, max_refused_share: float
) -> Iterator[RunRequest]:
    room = min(limits.max_runs_per_tick, limits.max_batches_in_flight - batches_in_flight(conn))
    if room <= 0:
        return
    batches = claim_batches(
        conn, max_files=limits.max_files_per_run, max_bytes=limits.max_bytes_per_run, max_batches=room
    )
    conn.commit()
    for b in batches:
        yield RunRequest(
            run_key=b.batch_id,
            run_config=ingest_run_config([f.file_id for f in b.files], max_refused_share),
            tags={
                BATCH_TAG: b.batch_id,
                "ingest/files": str(len(b.files)),
                "ingest/first_key": b.files[0].s3_key[:200],
            },
        )


def landing_tick(
    context: SensorEvaluationContext,
    postgres: PostgresResource,
    raw_bucket: RawBucketResource,
    limits: TickLimits,
    max_refused_share: float,
) -> SensorResult:
    """One tick of landing_sensor: recover lost work, discover files (listing, then queue), launch batches
    and observe the raw-files asset, within `limits`."""
    started = time.monotonic()
    deadline = started + limits.tick_seconds
    cursor = LandingCursor.parse(context.cursor)
    notes: list[str] = []
    new_files = 0
    observations: list[AssetObservation] = []
    with postgres.connection() as conn:
        # Housekeeping first and the queue last: a file that arrives while the queue long-polls is handed
        # to a run with nothing but the claim between them.
        notes.extend(recover_lost_work(context, conn, limits))
        pass_due = cursor.list_after is not None or (
            time.time() - cursor.last_pass_completed >= limits.reconcile_interval_seconds
        )
        if pass_due and time.monotonic() < deadline:
            listed, registered = list_pass(raw_bucket.s3, raw_bucket.bucket, conn, cursor, limits, deadline)
            new_files += registered
            notes.append(
                f"listing: {listed} objects, {registered} new files"
                + (f", resumes after {cursor.list_after!r}" if cursor.list_after else ", pass complete")
            )
        if raw_bucket.event_queue:
            messages, registered = drain_queue(
                raw_bucket.sqs,
                raw_bucket.queue_url(),
                raw_bucket.bucket,
                conn,
                limits.queue_receives,
                deadline,
                context.log,
            )
            new_files += registered
            if messages:
                notes.append(f"queue: {messages} messages, {registered} new files")
        requests = list(run_requests(conn, limits, max_refused_share))
        since = time.time() - cursor.last_observed
        if since >= limits.observe_interval_seconds or (
            (new_files or requests) and since >= limits.observe_min_seconds
        ):
            observations.append(observe_raw_files(conn, raw_bucket.bucket))
            cursor.last_observed = time.time()
        conn.commit()
    if notes:
        context.log.info("; ".join(notes))
    if not requests:
        return SensorResult(
            skip_reason=SkipReason("; ".join(notes) or "no new files"),
            cursor=cursor.serialize(),
            asset_events=observations,
        )
    return SensorResult(run_requests=requests, cursor=cursor.serialize(), asset_events=observations)


def observe_raw_files(conn: psycopg.Connection, bucket: str) -> AssetObservation:
    """The raw-files asset as the registry sees it: files per source and status, the newest one's age."""
    summary = source_summary(conn)
    metadata: dict[str, Any] = {
        "bucket": bucket,
        "files": sum(s["files"] for s in summary.values()),
        "by_source": MetadataValue.json(summary),
    }
    for source, entry in summary.items():
        metadata[f"{source}_files"] = entry["files"]
        if entry["newest_file_age_hours"] is not None:
            metadata[f"{source}_newest_file_age_hours"] = entry["newest_file_age_hours"]
    return AssetObservation(asset_key=RAW_FILES, metadata=metadata)


@sensor(
    name=LANDING_SENSOR,
    job=ingest_job,
    # The daemon's sensor loop comes round every 5 s at best (dagster's MIN_INTERVAL_LOOP_TIME). A
    # minimum of 5 s measured from the previous tick's *start* is missed by a hair at every other loop,
    # so the sensor would tick every 10 s; 1 s lets it tick at every loop.
    minimum_interval_seconds=LANDING_MIN_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Watches the raw bucket (crm-data/, erp-data/, legacy-data/) through its S3 event queue and a "
        "bounded listing pass; records every object in ingest.files (key + ETag, so nothing is loaded twice) "
        "and launches ingest_job runs for batches of new files. Objects it will not process are recorded "
        "as skipped with the reason."
    ),
)
def landing_sensor(
    context: SensorEvaluationContext,
    postgres: PostgresResource,
    raw_bucket: RawBucketResource,
    ingest_tuning: IngestTuningResource,
) -> SensorResult:
    limits = TickLimits.from_tuning(ingest_tuning, queue_on=bool(raw_bucket.event_queue))
    return landing_tick(context, postgres, raw_bucket, limits, ingest_tuning.max_refused_share)
