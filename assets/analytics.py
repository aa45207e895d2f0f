"""analytics_job: one catalogue operation, by name and parameters, as a Dagster run.

The op validates its config against the catalogue before any SQL runs (a bad config fails the run at
once with the validation message, and is not retried); runs the operation as the read-only role;
retries only transient database errors, with exponential backoff and jitter; and stores the result
inline on the job item or, when large, as JSON and CSV in the results bucket.
"""

from typing import Any

from dagster import (
    Backoff,
    Config,
    Failure,
    Jitter,
    MetadataValue,
    OpExecutionContext,
    RetryPolicy,
    job,
    op,
)
from pydantic import Field

from resources.analytics.catalogue import OPERATION_NAMES, validate_parameters
from resources.analytics.errors import AnalyticsError, TransientDatabaseError
from resources.analytics.runner import run_operation
from resources.contract import ANALYTICS_JOB, ANALYTICS_OP
from resources.dagster_resources import AwsResource, PostgresResource
from resources.results_store import store_result


class AnalyticsConfig(Config):
    operation: str = Field(description="Catalogue operation: " + ", ".join(OPERATION_NAMES))
    parameters: dict[str, Any] = Field(
        default={}, description="The operation's parameters (GET /analytics/operations lists each one's schema).")
    timeout_seconds: float | None = Field(default=None, description="Statement timeout; default: the operation's.")
    max_rows: int = Field(default=100_000, ge=1, le=1_000_000, description="Row cap; the result says if it cut.")


class TransientAnalyticsError(Exception):
    """Raised for errors worth retrying; the op's RetryPolicy takes it from there."""


@op(
    name=ANALYTICS_OP,
    description="Runs one analytics catalogue operation under the read-only role and stores its result "
    "(inline on the job item up to 1,000 rows, else JSON + CSV in the results bucket).",
    retry_policy=RetryPolicy(max_retries=3, delay=1.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS),
    tags={"kind": "analytics"},
)
def run_analytics(context: OpExecutionContext, config: AnalyticsConfig, readonly_postgres: PostgresResource,
                  aws: AwsResource) -> dict:
    try:
        params = validate_parameters(config.operation, config.parameters)
    except AnalyticsError as exc:
        raise Failure(description=exc.message, metadata={"error": MetadataValue.json(exc.as_dict())},
                      allow_retries=False) from None
    try:
        result = run_operation(readonly_postgres.database_url, config.operation, params,
                               timeout_s=config.timeout_seconds, max_rows=config.max_rows)
    except TransientDatabaseError as exc:
        context.log.warning(f"transient database error, will retry: {exc.message}")
        raise TransientAnalyticsError(exc.message) from exc
    except AnalyticsError as exc:
        raise Failure(description=exc.message, metadata={"error": MetadataValue.json(exc.as_dict())},
                      allow_retries=False) from None
    summary = store_result(aws.s3, aws.results_bucket, context.run_id, result.columns, result.rows,
                           truncated=result.truncated, operation=config.operation)
    aws.jobs_store().record_result(context.run_id, summary)
    where = (f"s3://{summary['bucket']}/{summary['s3']['json']}" if summary["storage"] == "s3" else "inline")
    context.add_output_metadata({
        "operation": config.operation, "row_count": result.row_count, "truncated": result.truncated,
        "elapsed_ms": round(result.elapsed_s * 1000, 1), "result": where,
        "parameters": MetadataValue.json(result.parameters),
    })
    return {k: v for k, v in summary.items() if k != "rows"}


@job(
    name=ANALYTICS_JOB,
    description="Runs an analytics operation by name with parameters (see the op config). Launched by the REST "
    "API's POST /analytics/jobs or from the Launchpad; status and result are mirrored to DynamoDB.",
    tags={"pipeline/kind": "analytics"},
)
def analytics_job() -> None:
    run_analytics()
