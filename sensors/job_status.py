"""Mirror Dagster run status into DynamoDB job items, and send SNS notices.

Dagster's run status is the truth; the REST layer reads the mirror. Two paths write it, both
idempotent through JobsStore's never-backwards conditional updates:
- run-status sensors, prompt, one per status. They skip history on their first tick, advance past a
  run when the function raises, and take a few runs per tick, so on their own they can drift;
- job_status_reconciler, which walks runs by update time from its cursor and repairs any item that
  is missing or behind, so under a burst every job ends with the right status.
A notice is published only by the write that moved a job into a terminal status, so the two paths
do not notify twice.
"""

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_status_sensor,
    sensor,
)

from resources.clients.jobs_store import TERMINAL, JobStatus
from resources.clients.notices import JobNotice, publish
from resources.contract import ANALYTICS_JOB, INGEST_JOB, INGEST_OP, analytics_request, op_config
from resources.dagster_resources import JobTrackingResource, MetricsResource

MIRRORED_JOBS = (ANALYTICS_JOB, INGEST_JOB)

STATUS_MAP: dict[DagsterRunStatus, JobStatus] = {
    DagsterRunStatus.QUEUED: "queued",
    DagsterRunStatus.NOT_STARTED: "queued",
    DagsterRunStatus.MANAGED: "queued",
    DagsterRunStatus.STARTING: "running",
    DagsterRunStatus.STARTED: "running",
    DagsterRunStatus.CANCELING: "running",
    DagsterRunStatus.SUCCESS: "succeeded",
    DagsterRunStatus.FAILURE: "failed",
    DagsterRunStatus.CANCELED: "canceled",
}


def _failure_message(instance: DagsterInstance, run_id: str) -> str | None:
    """The first step failure's message (the useful one), else the run failure's."""
    records = instance.get_records_for_run(
        run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}, limit=20
    ).records
    messages: list[str] = []
    for rec in records:
        ev = rec.event_log_entry.dagster_event
        if ev is None:
            continue
        data = ev.event_specific_data
        err = getattr(data, "error", None)
        if err is not None and getattr(err, "message", None):
            messages.append(str(err.message).strip())
        elif ev.message:
            messages.append(ev.message)
    return messages[0][:2000] if messages else None


def _run_fields(run: DagsterRun, dagster_url: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"dagsterRunUrl": f"{dagster_url.rstrip('/')}/runs/{run.run_id}"}
    if run.job_name == ANALYTICS_JOB:
        fields["operation"], fields["parameters"] = analytics_request(run.run_config)
    else:
        cfg = op_config(run.run_config, INGEST_OP)
        fields["operation"] = "ingest"
        fields["parameters"] = {"file_ids": cfg.get("file_ids") or []}
    return fields


def mirror_run(
    instance: DagsterInstance,
    run: DagsterRun,
    job_tracking: JobTrackingResource,
    metrics: MetricsResource,
    dagster_url: str,
) -> str | None:
    """Write the run's status to its job item; publish a notice if this write finished the job.

    Returns a short note of what changed, or None when nothing did.
    """
    status = STATUS_MAP.get(run.status)
    if status is None or run.job_name not in MIRRORED_JOBS:
        return None
    job_type: Literal["analytics", "ingest"] = "analytics" if run.job_name == ANALYTICS_JOB else "ingest"
    fields = _run_fields(run, dagster_url)
    if status == "failed":
        fields["error"] = _failure_message(instance, run.run_id)
    store = job_tracking.jobs_store()
    transition = store.record_status(run.run_id, status, job_type=job_type, fields=fields)
    if not transition.applied:
        return None
    if status in TERMINAL and (job_type == "analytics" or status == "failed"):
        job = store.get(run.run_id) or {}
        result = job.get("result") or {}
        location = (
            result.get("s3", {}).get("json")
            if isinstance(result, dict) and result.get("s3")
            else ("inline" if result else None)
        )
        notice = JobNotice(
            job_id=run.run_id,
            job_type=job_type,
            status=status,
            operation=fields.get("operation"),
            row_count=job.get("rowCount"),
            result_location=location,
            error=fields.get("error"),
            dagster_run_url=fields["dagsterRunUrl"],
        )
        publish(job_tracking.sns, job_tracking.topic_arn(), notice)
    note = f"{run.run_id[:8]} {transition.previous_status or 'new'} → {status}"
    if status == "failed":
        # The CloudWatch alarm on failed runs watches this metric (infra monitoring stack).
        problem = metrics.put_count("FailedRuns", 1, {"JobType": job_type})
        note += f" ({problem})" if problem else ""
    return note


def _mirror_from_context(
    context: RunStatusSensorContext, job_tracking: JobTrackingResource, metrics: MetricsResource
) -> None:
    note = mirror_run(context.instance, context.dagster_run, job_tracking, metrics, job_tracking.dagster_url)
    if note:
        context.log.info(note)


def _status_sensor(status: DagsterRunStatus, name: str, description: str) -> Any:
    @run_status_sensor(
        run_status=status,
        name=name,
        description=description,
        minimum_interval_seconds=5,
        default_status=DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=False,
    )
    def _sensor(
        context: RunStatusSensorContext, job_tracking: JobTrackingResource, metrics: MetricsResource
    ) -> None:
        _mirror_from_context(context, job_tracking, metrics)

    return _sensor


job_started_mirror = _status_sensor(
    DagsterRunStatus.STARTED,
    "job_started_mirror",
    "Marks analytics and ingest jobs running in the DynamoDB jobs table as their runs start.",
)
job_succeeded_mirror = _status_sensor(
    DagsterRunStatus.SUCCESS,
    "job_succeeded_mirror",
    "Marks jobs succeeded in the DynamoDB jobs table and sends the SNS notice for analytics jobs.",
)
job_failed_mirror = _status_sensor(
    DagsterRunStatus.FAILURE,
    "job_failed_mirror",
    "Marks jobs failed (with the error) in the DynamoDB jobs table and sends the SNS failure notice.",
)
job_canceled_mirror = _status_sensor(
    DagsterRunStatus.CANCELED,
    "job_canceled_mirror",
    "Marks canceled jobs in the DynamoDB jobs table and sends the SNS notice for analytics jobs.",
)

# Runs whose update landed with a timestamp a little behind the cursor (another process's clock) are
# caught by re-checking this window each tick; the writes are idempotent, so a re-check costs one
# conditional DynamoDB write per run.
_LOOKBACK_SECONDS = 10.0


def _runs_updated_since(instance: DagsterInstance, ts: float, limit: int) -> list[Any]:
    """Runs updated at or after `ts`, oldest update first."""
    return list(
        instance.get_run_records(
            filters=RunsFilter(updated_after=datetime.fromtimestamp(ts, tz=UTC) - timedelta(microseconds=1)),
            limit=limit,
            order_by="update_timestamp",
            ascending=True,
        )
    )


@dataclass
class ReconcileCursor:
    ts: float = 0.0  # update time of the newest run mirrored
    seen: list[str] = field(default_factory=list)  # runs mirrored whose update time is exactly ts

    @classmethod
    def parse(cls, raw: str | None) -> "ReconcileCursor":
        try:
            return cls(**json.loads(raw)) if raw else cls()
        except (ValueError, TypeError):
            return cls()

    def serialize(self) -> str:
        return json.dumps({"ts": self.ts, "seen": self.seen})


def reconcile(
    context: SensorEvaluationContext,
    job_tracking: JobTrackingResource,
    metrics: MetricsResource,
    *,
    budget_seconds: float = 30.0,
    page: int = 200,
) -> SensorResult:
    deadline = time.monotonic() + budget_seconds
    cursor = ReconcileCursor.parse(context.cursor)
    notes: list[str] = []
    dagster_url = job_tracking.dagster_url

    def mirror(records: list[Any]) -> None:
        for rec in records:
            if rec.dagster_run.job_name in MIRRORED_JOBS:
                note = mirror_run(context.instance, rec.dagster_run, job_tracking, metrics, dagster_url)
                if note:
                    notes.append(note)

    if cursor.ts:
        mirror(
            [
                r
                for r in _runs_updated_since(context.instance, max(cursor.ts - _LOOKBACK_SECONDS, 0), page)
                if r.update_timestamp.timestamp() < cursor.ts
            ]
        )
    while time.monotonic() < deadline:
        # Many runs can share one update time (a burst, a coarse clock): page by (time, run id seen).
        records = _runs_updated_since(context.instance, cursor.ts, page + len(cursor.seen))
        seen = set(cursor.seen)
        fresh = [
            r
            for r in records
            if not (r.update_timestamp.timestamp() == cursor.ts and r.dagster_run.run_id in seen)
        ]
        if not fresh:
            break
        mirror(fresh)
        last = fresh[-1].update_timestamp.timestamp()
        at_last = [r.dagster_run.run_id for r in fresh if r.update_timestamp.timestamp() == last]
        cursor = ReconcileCursor(last, (cursor.seen if last == cursor.ts else []) + at_last)
        if len(records) < page + len(seen):
            break
    if notes:
        context.log.info(f"repaired {len(notes)} job item(s): " + "; ".join(notes[:20]))
    return SensorResult(
        skip_reason=None if notes else SkipReason("job items match run status"), cursor=cursor.serialize()
    )


@sensor(
    name="job_status_reconciler",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Compares recent analytics and ingest runs with their DynamoDB job items and repairs any that are "
        "missing or behind (run-status sensors can skip runs under a burst); sends any notice still owed."
    ),
)
def job_status_reconciler(
    context: SensorEvaluationContext, job_tracking: JobTrackingResource, metrics: MetricsResource
) -> SensorResult:
    return reconcile(context, job_tracking, metrics)
