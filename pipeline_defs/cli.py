"""`pipeline`: the command line for people running the platform.

    pipeline dev                          the whole platform locally (`make dev`)
    pipeline upload FILE --source crm     put a file where the landing sensor finds it
    pipeline files [--status failed]      what arrived and what became of it
    pipeline history KEY                  every attempt of a file and why it ended
    pipeline reprocess KEY                run a file again on purpose
    pipeline replay --source crm          a source's loaded files again, with today's definitions
    pipeline db migrate | db url          schema and connection strings

Every endpoint comes from the environment (resources/settings.py). While `pipeline dev` runs, other
terminals in the same checkout talk to its stack without exporting anything: it leaves its
environment in `.local/dev-stack.json`, which the CLI reads for any variable not set explicitly.

Expected failures (database down, bucket missing, unknown key) are one line on stderr and a non-zero
exit, never a traceback. Dagster is not imported here: the commands answer at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import psycopg
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from pipeline_defs.cli_format import format_attempts, format_files
from pipeline_defs.devstack.state import adopt_running_dev_stack
from resources.contract import FILE_STATUSES
from resources.settings import get_settings
from resources.sources.catalogue import get_sources

F = TypeVar("F", bound=Callable[..., Any])


# ---------------------------------------------------------------------------------------------------
# Errors: expected failures become one-line messages


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def friendly_errors(fn: F) -> F:
    """Turn expected failures (connections, missing resources) into click errors: one line, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from resources.clients.postgres import redact
        from resources.schema.migrate import MigrationError

        settings = get_settings()
        try:
            return fn(*args, **kwargs)
        except psycopg.errors.UndefinedTable as exc:
            raise click.ClickException(
                f"the schema is missing ({_first_line(exc)}): run `pipeline db migrate`"
            ) from exc
        except psycopg.OperationalError as exc:
            raise click.ClickException(
                f"cannot connect to PostgreSQL at {redact(settings.database_url)}: {_first_line(exc)} "
                "(is `make dev` running, or DATABASE_URL set?)"
            ) from exc
        except psycopg.Error as exc:
            raise click.ClickException(f"PostgreSQL error: {_first_line(exc)}") from exc
        except MigrationError as exc:
            raise click.ClickException(_first_line(exc)) from exc
        except EndpointConnectionError as exc:
            raise click.ClickException(
                f"cannot reach the AWS endpoint {settings.aws_endpoint_url or '(AWS)'}: {_first_line(exc)} "
                "(is `make dev` running, or AWS_ENDPOINT_URL set?)"
            ) from exc
        except NoCredentialsError as exc:
            raise click.ClickException(
                "no AWS credentials: set AWS_ENDPOINT_URL for the local stack, or configure AWS credentials"
            ) from exc
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code, message = err.get("Code", "?"), err.get("Message", "")
            if code in ("NoSuchBucket", "404") and exc.operation_name == "HeadBucket":
                raise click.ClickException(
                    f"bucket {settings.raw_bucket!r} does not exist at {settings.aws_endpoint_url or 'AWS'} "
                    "(is `make dev` running, or RAW_BUCKET set?)"
                ) from exc
            raise click.ClickException(f"AWS {exc.operation_name} failed: {code}: {message}") from exc
        except BotoCoreError as exc:
            raise click.ClickException(f"AWS error: {_first_line(exc)}") from exc
        except S3UploadFailedError as exc:
            raise click.ClickException(_first_line(exc)) from exc

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps the signature F promises


# ---------------------------------------------------------------------------------------------------
# Commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """canonical-pipeline: source-system JSON in S3 -> canonical PostgreSQL model -> analytics."""


class SourceChoice(click.Choice[str]):
    """The source definitions' names, read when an option is checked or its help shown, not when the
    CLI is imported (a bad definition is then one clear error of the command that needs it)."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(get_sources().names)

    @choices.setter
    def choices(self, _: object) -> None:
        pass


def object_key(source: str, file: Path, key: str | None) -> str:
    prefix = get_sources().upload_prefix(source)
    name = (key or file.name).lstrip("/")
    return name if name.startswith(prefix) else prefix + name


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--source", required=True, type=SourceChoice(), help="Source system.")
@click.option(
    "--key", "key", default=None, help="Object name under the source prefix (default: the file name)."
)
@friendly_errors
def upload(file: Path, source: str, key: str | None) -> None:
    """Upload FILE to the raw bucket, where the landing sensor picks it up."""
    from resources.clients.aws import aws_client

    settings = get_settings()
    s3 = aws_client("s3", settings)
    object_name = object_key(source, file, key)
    s3.head_bucket(Bucket=settings.raw_bucket)  # a missing bucket is one clear line, not a failed transfer
    s3.upload_file(str(file), settings.raw_bucket, object_name)
    etag = s3.head_object(Bucket=settings.raw_bucket, Key=object_name)["ETag"].strip('"')
    click.echo(
        f"uploaded s3://{settings.raw_bucket}/{object_name}  etag {etag}  ({file.stat().st_size} bytes)"
    )
    click.echo("follow it with: pipeline files --limit 5")


@cli.command()
@click.option("--status", type=click.Choice(FILE_STATUSES))
@click.option("--source", type=SourceChoice())
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@friendly_errors
def files(status: str | None, source: str | None, limit: int) -> None:
    """List recorded files, newest first (a file whose loader is gone is failed first, as the sensor would)."""
    from resources.ingest.registry import LOADER_LOST, fail_lost_loaders, list_files

    with psycopg.connect(get_settings().database_url, connect_timeout=5) as conn:
        for lost in fail_lost_loaders(conn):
            click.echo(f"{lost.s3_key}: failed ({LOADER_LOST}); the landing sensor retries it", err=True)
        conn.commit()
        rows = list_files(conn, status=status, source=source, limit=limit)
    if not rows:
        click.echo("no files recorded" + (" matching the filters" if status or source else " yet"))
        return
    click.echo(format_files(rows))


@cli.command()
@click.argument("key")
@friendly_errors
def history(key: str) -> None:
    """Every attempt of KEY's latest version: when, by which run, how it ended and why."""
    from resources.ingest.registry import attempts_of, latest_for_key

    with psycopg.connect(get_settings().database_url, connect_timeout=5) as conn:
        row = latest_for_key(conn, key)
        if row is None:
            raise click.ClickException(f"no file with key {key!r} has been recorded")
        attempts = attempts_of(conn, row.file_id)
    click.echo(
        f"{row.s3_key}  etag {row.etag}: {row.status} (attempt {row.attempt}"
        + (f", {row.failure_kind} failure" if row.failure_kind else "")
        + ")"
    )
    click.echo(format_attempts(attempts) if attempts else "no attempt has ended yet")


@cli.command()
@click.argument("key")
@friendly_errors
def reprocess(key: str) -> None:
    """Run the latest version of KEY again (next attempt)."""
    from resources.ingest.registry import ReprocessError, request_reprocess

    with psycopg.connect(get_settings().database_url, connect_timeout=5) as conn:
        try:
            with conn.transaction():
                row = request_reprocess(conn, key)
        except ReprocessError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{row.s3_key}: attempt {row.attempt} is {row.status}; the landing sensor will batch it")


@cli.command()
@click.argument("key")
@friendly_errors
def release(key: str) -> None:
    """Apply KEY's held snapshot: its next attempt retires what it lacks, whatever the share."""
    from resources.ingest.registry import ReprocessError, request_release

    with psycopg.connect(get_settings().database_url, connect_timeout=5) as conn:
        try:
            with conn.transaction():
                row = request_release(conn, key)
        except ReprocessError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{row.s3_key}: released; attempt {row.attempt} is {row.status} and will apply its retirements; "
        "the landing sensor will batch it"
    )


@cli.command()
@click.option("--source", required=True, type=SourceChoice(), help="Source system.")
@click.option(
    "--since",
    metavar="DATE",
    default=None,
    help="Only files whose time in the source's history (export date, else LastModified) is at or after "
    "DATE: 2026-03-01 (midnight UTC) or 2026-03-01T12:00:00+00:00.",
)
@friendly_errors
def replay(source: str, since: str | None) -> None:
    """Load SOURCE's loaded files again with the current source definitions (after a mapping fix), one at
    a time, oldest first in the source's history; only what comes out different is written."""
    import uuid

    from resources.clients.aws import aws_client
    from resources.ingest.replay import ReplayRefused, ReplayTotals, parse_since, plan_replay, replay_files

    after = parse_since(since)
    if isinstance(after, ReplayRefused):
        raise click.BadParameter(after.reason, param_hint="--since")
    settings = get_settings()
    # Stands where a Dagster run id stands: in the files' attempts and the entities' metadata.
    run_id = f"cli-replay-{uuid.uuid4().hex[:12]}"
    with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
        plan = plan_replay(conn, source, after)
        if isinstance(plan, ReplayRefused):
            raise click.ClickException(plan.reason)
        if not plan.files:
            click.echo(
                f"no loaded file of {source}" + (f" since {since}" if since else "") + ": nothing to replay"
            )
            return
        click.echo(
            f"replaying {len(plan.files)} loaded file(s) of {source} with transformation version "
            f"{plan.transformation_version} (run {run_id})"
        )
        s3 = aws_client("s3", settings)
        totals = ReplayTotals()
        steps = replay_files(conn, s3, settings.raw_bucket, plan, run_id, settings.ingest_change_time_fields)
        for step in steps:
            totals.add(step)
            click.echo(step.describe(), err=step.outcome.error is not None)
    click.echo(totals.describe(plan))
    if totals.failed:
        raise SystemExit(1)


@cli.group()
def db() -> None:
    """Schema migrations and connection strings."""


@db.command("migrate")
@friendly_errors
def db_migrate() -> None:
    """Apply pending schema migrations (as the owner, ADMIN_DATABASE_URL)."""
    from resources.clients.postgres import database_name, redact, with_database
    from resources.schema.migrate import apply_migrations, available_migrations

    settings = get_settings()
    owner_url = with_database(settings.admin_database_url, database_name(settings.database_url))
    try:
        applied = apply_migrations(owner_url)
    except psycopg.OperationalError as exc:
        raise click.ClickException(
            f"cannot connect as the owner to {redact(owner_url)}: {_first_line(exc)} (set ADMIN_DATABASE_URL)"
        ) from exc
    for version in applied:
        click.echo(f"applied {version}")
    if not applied:
        click.echo(f"schema up to date ({len(available_migrations())} migrations) at {redact(owner_url)}")


@db.command("url")
@click.option(
    "--readonly", is_flag=True, help="The read-only role's URL (analytics) instead of the writer's."
)
def db_url(readonly: bool) -> None:
    """Print the writer (or read-only) PostgreSQL URL."""
    settings = get_settings()
    click.echo(settings.readonly_database_url if readonly else settings.database_url)


@cli.command()
@click.option(
    "--wait",
    "wait_seconds",
    type=click.IntRange(0, 3600),
    default=180,
    show_default=True,
    help="How long to wait for the samples to be ingested before handing over.",
)
@click.option("--no-samples", is_flag=True, help="Do not upload samples/<source>-data/*.")
@click.option(
    "--follow-logs", is_flag=True, help="Stream Dagster's output here instead of .local/dagster.log."
)
@friendly_errors
def dev(wait_seconds: int, no_samples: bool, follow_logs: bool) -> None:
    """Run the platform locally: PostgreSQL, moto (S3/SQS/DynamoDB/SNS), Dagster UI + daemon."""
    from pipeline_defs.devstack.errors import DevStackError
    from pipeline_defs.devstack.stack import run_dev

    try:
        code = run_dev(
            get_settings(), wait_seconds=wait_seconds, samples=not no_samples, follow_logs=follow_logs
        )
    except DevStackError as exc:
        raise click.ClickException(str(exc)) from exc
    raise SystemExit(code)


def main() -> None:
    import sys

    from pydantic import ValidationError

    # Before any Settings are read: a `pipeline dev` running in this checkout provides the endpoints.
    if sys.argv[1:2] != ["dev"]:
        adopt_running_dev_stack()
    try:
        get_settings()
    except ValidationError as exc:
        bad = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        click.echo(f"Error: invalid environment: {bad}", err=True)
        raise SystemExit(2) from None
    cli(prog_name="pipeline")


if __name__ == "__main__":
    main()
