"""analytics_job: one catalogue operation, by name and parameters, as a Dagster run.

Its config is typed: `request` is a discriminated union with one member per catalogue operation, each
generated from the parameter model the REST API validates with (names, types, defaults, allowed
values, descriptions), so the launchpad offers an operation selector with that operation's fields, and
Dagster refuses a value outside a whitelist before the run starts. One job rather than one per
operation: the REST API, the DynamoDB job mirror and the run history all follow one job.

The op validates the request against the catalogue's model again (bounds and patterns; a bad config
fails the run at once with the validation message, and is not retried); runs the operation as the
read-only role; retries only transient database errors, with exponential backoff and jitter; and stores
the result inline on the job item or, when large (over 1,000 rows, or too large for the item beside the
job's other attributes), as JSON and CSV in the results bucket. The REST API serves a completed job's
answer from what is stored here; nothing runs the query again.
"""

import io
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

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
from pydantic import Field, create_model

from resources.analytics.catalogue import CATALOGUE, Operation, validate_parameters
from resources.analytics.errors import AnalyticsError, TransientDatabaseError
from resources.analytics.values import parquet_value
from resources.clients.jobs_store import attribute_bytes
from resources.clients.results_store import OTHER_ATTRIBUTES_BYTES, result_keys, result_metadata, store_result
from resources.contract import ANALYTICS_JOB, ANALYTICS_OP, JSON_TEXT_PARAMETERS, analytics_request
from resources.dagster_resources import JobTrackingResource, PostgresResource


def operation_config(op: Operation) -> type[Config]:
    """The Dagster config of one operation's request, from its parameter model's fields."""
    fields: dict[str, Any] = {"operation": (Literal[op.name], Field(op.name, description=op.description))}
    for name, info in op.params_model.model_fields.items():
        if name in JSON_TEXT_PARAMETERS.get(op.name, ()):
            fields[name] = (str, Field("[]", description=f"{info.description} (a JSON list)"))
        else:
            # Type, default and description only: bounds and patterns are the op's to check (a violation
            # then fails the run at once with the model's message instead of being retried).
            fields[name] = (info.annotation, Field(info.default, description=info.description))
    title = "".join(part.title() for part in op.name.split("_"))
    return create_model(f"{title}Request", __base__=Config, __doc__=op.description, **fields)


REQUEST_CONFIGS: dict[str, type[Config]] = {name: operation_config(op) for name, op in CATALOGUE.items()}
if TYPE_CHECKING:  # one of the generated request classes: a union built at run time, Any to the checker
    OperationRequest = Any
else:
    OperationRequest = Annotated[Union[tuple(REQUEST_CONFIGS.values())], Field(discriminator="operation")]  # noqa: UP007 - a runtime tuple of classes


class AnalyticsConfig(Config):
    request: OperationRequest = Field(
        description="The operation and its parameters: pick one; GET /analytics/operations documents the same"
    )
    timeout_seconds: float | None = Field(
        default=None, description="Statement timeout; default: the operation's."
    )
    max_rows: int = Field(
        default=100_000, ge=1, le=1_000_000, description="Row cap; the result says if it cut."
    )


class TransientAnalyticsError(Exception):
    """Raised for errors worth retrying; the op's RetryPolicy takes it from there."""


@op(
    name=ANALYTICS_OP,
    description="Runs one analytics catalogue operation under the read-only role and stores its result "
    "(inline on the job item up to 1,000 rows that fit in it, else JSON + CSV in the results bucket).",
    retry_policy=RetryPolicy(max_retries=3, delay=1.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS),
    tags={"kind": "analytics"},
)
def run_analytics(
    context: OpExecutionContext,
    config: AnalyticsConfig,
    readonly_postgres: PostgresResource,
    job_tracking: JobTrackingResource,
) -> dict:
    operation = config.request.operation
    try:
        params = validate_parameters(operation, config.request.model_dump(exclude={"operation"}))
    except AnalyticsError as exc:
        raise Failure(
            description=exc.message,
            metadata={"error": MetadataValue.json(exc.as_dict())},
            allow_retries=False,
        ) from None
    try:
        result = readonly_postgres.run_operation(
            operation, params, timeout_s=config.timeout_seconds, max_rows=config.max_rows
        )
    except TransientDatabaseError as exc:
        context.log.warning(f"transient database error, will retry: {exc.message}")
        raise TransientAnalyticsError(exc.message) from exc
    except AnalyticsError as exc:
        raise Failure(
            description=exc.message,
            metadata={"error": MetadataValue.json(exc.as_dict())},
            allow_retries=False,
        ) from None
    # The run-status sensors write the parameters from this run's config onto the same item: count them.
    besides = OTHER_ATTRIBUTES_BYTES + attribute_bytes(
        "parameters", analytics_request(context.run.run_config)[1]
    )
    summary = store_result(
        job_tracking.s3,
        job_tracking.results_bucket,
        context.run_id,
        result.columns,
        result.rows,
        truncated=result.truncated,
        operation=operation,
        extra={"executionTimeMs": round(result.elapsed_s * 1000, 1)},
        item_bytes_besides=besides,
    )
    summary["parquet"] = write_parquet(job_tracking, context.run_id, result.columns, result.rows, operation)
    job_tracking.jobs_store().record_result(context.run_id, summary)
    where = f"s3://{summary['bucket']}/{summary['s3']['json']}" if summary["storage"] == "s3" else "inline"
    context.add_output_metadata(
        {
            "operation": operation,
            "row_count": result.row_count,
            "truncated": result.truncated,
            "elapsed_ms": round(result.elapsed_s * 1000, 1),
            "result": where,
            "parameters": MetadataValue.json(result.parameters),
        }
    )
    return {k: v for k, v in summary.items() if k != "rows"}


def write_parquet(
    job_tracking: JobTrackingResource,
    run_id: str,
    columns: list[str],
    rows: list[tuple[Any, ...]],
    operation: str,
) -> str:
    """The result as Parquet beside its JSON and CSV, for every job (GET /analytics/jobs/{id}/result?format=
    parquet). pandas stays on the Dagster side: the API only presigns the object."""
    import pandas as pd

    frame = pd.DataFrame([[parquet_value(v) for v in row] for row in rows], columns=columns)
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    key = result_keys(run_id)["parquet"]
    job_tracking.s3.put_object(
        Bucket=job_tracking.results_bucket,
        Key=key,
        Body=buf.getvalue(),
        ContentType="application/vnd.apache.parquet",
        Metadata=result_metadata(operation, len(rows)),
    )
    return key


@job(
    name=ANALYTICS_JOB,
    description="Runs an analytics operation by name with parameters (see the op config). Launched by the REST "
    "API's POST /analytics/jobs or from the Launchpad; status and result are mirrored to DynamoDB.",
    tags={"pipeline/kind": "analytics"},
)
def analytics_job() -> None:
    run_analytics()
