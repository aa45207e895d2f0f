"""The hand-over `pipeline dev` prints once the platform runs: where each part is, and what to try."""

from __future__ import annotations

from pathlib import Path

from pipeline_defs.devstack.processes import display_path
from resources.settings import Settings


def summary_lines(
    settings: Settings,
    *,
    ui_url: str,
    api_url: str,
    pg_data_dir: Path | None,
    moto_here: bool,
    dagster_log: str,
) -> list[str]:
    """The URLs table and the first commands to try; `pg_data_dir` is None for an external PostgreSQL,
    `dagster_log` says where Dagster's output goes."""
    from resources.clients.postgres import redact

    s = settings
    pg_label = f"embedded, data in {display_path(pg_data_dir)}" if pg_data_dir is not None else "external"
    aws_label = "moto, in memory" if moto_here else "AWS_ENDPOINT_URL"
    rows = [
        ("Dagster UI", ui_url),
        ("REST API", f"{api_url}  (OpenAPI: {api_url}/docs)"),
        ("PostgreSQL", f"{redact(s.database_url)}  ({pg_label})"),
        ("  read-only", redact(s.readonly_database_url)),
        ("AWS endpoint", f"{s.aws_endpoint_url}  ({aws_label}, region {s.aws_region})"),
        ("Raw bucket", f"s3://{s.raw_bucket}/{{crm,erp,legacy}}-data/"),
        ("Results bucket", f"s3://{s.results_bucket}/"),
        ("Queue / table / topic", f"{s.ingest_queue or '-'} / {s.jobs_table} / {s.notify_topic}"),
        ("Dagster log", dagster_log),
    ]
    width = max(len(k) for k, _ in rows)
    return [
        "",
        "The platform is running:",
        *(f"  {k.ljust(width)}  {v}" for k, v in rows),
        "",
        "Try, in another terminal of this checkout (the CLI finds this stack by itself):",
        "  .venv/bin/pipeline upload my.json --source crm     # lands at crm-data/my.json",
        "  .venv/bin/pipeline files                            # what arrived, what became of it",
        "  .venv/bin/pipeline db url                           # connection string for psql/your tools",
        f"  curl '{api_url}/analytics?operation=customer_analysis&metric=revenue&group_by=industry'",
        "  .venv/bin/python -c \"import psycopg; print(psycopg.connect('$(.venv/bin/pipeline db url)')"
        ".execute('select count(*) from canonical.entities').fetchone())\"",
        "",
        "Press Ctrl-C to stop everything.",
    ]
