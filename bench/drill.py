"""The ordering drill (`make drill`): many exports of the same ids, uploaded in a burst, loaded by
overlapping ingest runs on the real local platform; the store must end on the newest export.

What it does:
1. starts its own platform with `pipeline dev`'s code (embedded PostgreSQL, moto, `dagster dev` with the
   queued run coordinator at 2 concurrent runs, the landing sensor), in `.local/drill` on its own ports,
   with INGEST_MAX_FILES_PER_RUN small so that several runs are in flight at once;
2. writes N CRM exports of the same M customer ids: export i sets every customer's annual_revenue to
   i × 1000, lists the ids ascending when i is even and descending when it is odd (concurrent merges
   meet in opposite orders), and states its own `metadata.exportDate` (i minutes after a base time), as
   the real CRM export does. With `--order-by upload` the files carry no export date and are uploaded
   1.1 s apart, so S3 LastModified orders them;
3. uploads them in order, in a burst, and waits until every file has an outcome.

It passes only with 0 failed files, 0 entities off the newest export's values and 0 version-history
steps backwards in source order; it also reports how many runs were in flight at once (from Dagster's
run records) and how many were loading at once (a drill where no two runs overlapped proves nothing and
fails). Results go to bench/drill_results.md (appended).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from pipeline_defs.devstack.postgres import libpq_url
from pipeline_defs.devstack.stack import DevStack
from resources.clients.aws import aws_client
from resources.settings import PROJECT_ROOT, Settings

PG_PORT, UI_PORT, API_PORT = 55432, 3390, 8390
BASE = datetime(2026, 1, 1, tzinfo=UTC)
RESULTS = PROJECT_ROOT / "bench" / "drill_results.md"

# Every version of every entity, current one last, with the source position that produced it.
BACKWARD_STEPS = """
WITH versions AS (
    SELECT canonical_id, version, source_changed_at, source_file_at, source_file_id FROM canonical.entity_history
    UNION ALL
    SELECT canonical_id, version, source_changed_at, source_file_at, source_file_id FROM canonical.entities)
SELECT count(*) FROM (
    SELECT (source_changed_at, source_file_at, source_file_id)
           < lag((source_changed_at, source_file_at, source_file_id)) OVER w AS back
    FROM versions WINDOW w AS (PARTITION BY canonical_id ORDER BY version)) x
WHERE back
"""


def log(msg: str) -> None:
    print(f"[drill {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def export(i: int, ids: int, with_date: bool) -> bytes:
    order = range(ids) if i % 2 == 0 else range(ids - 1, -1, -1)
    records = [
        {
            "customer_id": f"DRILL-{n}",
            "company_name": f"Drill Customer {n}",
            "annual_revenue": i * 1000,
            "employee_count": 10 + n % 500,
            "industry": ("Retail", "Energy", "Health")[n % 3],
            "country": "Canada",
        }
        for n in order
    ]
    doc: dict[str, Any] = {"records": records}
    if with_date:
        doc["metadata"] = {
            "exportId": f"drill-{i:04d}",
            "recordCount": ids,
            "exportDate": (BASE + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
        }
    return json.dumps(doc, separators=(",", ":")).encode()


def settings_for(local_dir: Path, tag: str, batch_files: int) -> Settings:
    os.environ["API_URL"] = f"http://127.0.0.1:{API_PORT}"
    return Settings(
        DATABASE_URL=f"postgresql://pipeline_writer:pipeline_writer@127.0.0.1:{PG_PORT}/canonical",
        READONLY_DATABASE_URL=f"postgresql://pipeline_reader:pipeline_reader@127.0.0.1:{PG_PORT}/canonical",
        DAGSTER_URL=f"http://127.0.0.1:{UI_PORT}",
        PIPELINE_LOCAL_DIR=local_dir,
        # Own names: a moto server already running (`make dev`) is reused, and must not mix buckets.
        RAW_BUCKET=f"drill-raw-{tag}",
        RESULTS_BUCKET=f"drill-results-{tag}",
        JOBS_TABLE=f"drill-jobs-{tag}",
        NOTIFY_TOPIC=f"drill-notices-{tag}",
        INGEST_QUEUE=f"drill-raw-events-{tag}",
        INGEST_MAX_FILES_PER_RUN=batch_files,
        PIPELINE_ENV="drill",
    )


def wait_for_outcomes(stack: DevStack, n: int, timeout: float) -> float:
    t0 = time.monotonic()
    last = ""
    while True:
        stack._check_dagster_alive()
        with psycopg.connect(stack.settings.database_url) as conn:
            rows = conn.execute("SELECT status, count(*) FROM ingest.files GROUP BY 1 ORDER BY 1").fetchall()
        counts = dict(rows)
        done = counts.get("loaded", 0) + counts.get("failed", 0) + counts.get("skipped", 0)
        line = ", ".join(f"{c} {s}" for s, c in rows) or "none registered yet"
        if line != last:
            log(f"{done}/{n} files done: {line}")
            last = line
        if done >= n:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"drill: timed out after {timeout:.0f}s with {line}")
        time.sleep(1)


def verdict(url: str, dagster_url: str, n: int, ids: int) -> dict[str, Any]:
    newest = n * 1000  # export n (numbered from 1) is the newest
    with psycopg.connect(url) as conn:

        def one(sql: str) -> Any:
            return conn.execute(sql).fetchone()[0]  # type: ignore[index]

        runs = conn.execute(
            """SELECT run_id, min(started_at), max(finished_at), count(*) FROM ingest.files
               WHERE status = 'loaded' GROUP BY run_id ORDER BY 2"""
        ).fetchall()
        out = {
            "files": one("SELECT count(*) FROM ingest.files"),
            "failed": one("SELECT count(*) FROM ingest.files WHERE status <> 'loaded'"),
            "entities": one("SELECT count(*) FROM canonical.entities"),
            "off_newest": one(f"SELECT count(*) FROM canonical.entities WHERE revenue <> {newest}"),
            "backward_steps": one(BACKWARD_STEPS),
            "history_rows": one("SELECT count(*) FROM canonical.entity_history"),
            "superseded": one("SELECT coalesce(sum(superseded), 0) FROM ingest.files"),
            "moved_back": one("SELECT coalesce(sum(moved_back), 0) FROM ingest.files"),
            "runs": len(runs),
        }
    # Dagster's own record of the ingest runs: how many were in flight at once.
    with psycopg.connect(dagster_url) as conn:
        run_windows = conn.execute(
            "SELECT start_time, end_time FROM runs WHERE pipeline_name = 'ingest_job' AND start_time IS NOT NULL"
        ).fetchall()
    out["peak_runs_in_flight"] = _peak(run_windows)
    # Most runs loading at one moment (from their files' first start to their last finish).
    out["peak_concurrent_loads"] = _peak([(s, f) for _, s, f, _ in runs])
    out["passed"] = (
        out["failed"] == 0
        and out["files"] == n
        and out["entities"] == ids
        and out["off_newest"] == 0
        and out["backward_steps"] == 0
        and out["moved_back"] == 0
        and out["peak_runs_in_flight"] >= 2
    )
    return out


def _peak(windows: list[tuple[Any, Any]]) -> int:
    events = sorted(
        [(s, 1) for s, _ in windows] + [(e, -1) for _, e in windows if e is not None],
        key=lambda x: (x[0], x[1]),
    )
    depth = peak = 0
    for _, d in events:
        depth += d
        peak = max(peak, depth)
    return peak


def run(args: argparse.Namespace) -> dict[str, Any]:
    local_dir = PROJECT_ROOT / ".local" / "drill"
    # A fresh cluster and Dagster home every time: Dagster remembers run keys (batch ids) across drills.
    shutil.rmtree(local_dir, ignore_errors=True)
    local_dir.mkdir(parents=True)
    tag = str(int(time.time()))
    stack = DevStack(
        settings_for(local_dir, tag, args.batch_files),
        samples=False,
        echo=lambda m: log(m.strip()) if m.strip() else None,
    )
    with_date = args.order_by == "export-date"
    log(f"writing {args.files} exports × {args.ids:,} ids")
    bodies = [export(i, args.ids, with_date) for i in range(1, args.files + 1)]
    try:
        stack.start()
        if stack.location_error:
            raise SystemExit(f"drill: the code location did not load: {stack.location_error}")
        s3 = aws_client("s3", stack.settings)
        log(
            f"uploading {len(bodies)} files ({sum(map(len, bodies)) / 1e6:.0f} MB) in a burst, "
            f"{args.batch_files} file(s) per run, ordered by {args.order_by}"
        )
        t0 = time.monotonic()
        for i, body in enumerate(bodies, start=1):
            s3.put_object(
                Bucket=stack.settings.raw_bucket, Key=f"crm-data/drill/export-{i:04d}.json", Body=body
            )
            if not with_date:
                time.sleep(1.1)  # LastModified has one-second resolution
        uploaded = time.monotonic() - t0
        seconds = wait_for_outcomes(stack, args.files, args.timeout)
        result = verdict(
            stack.settings.database_url, libpq_url(stack.settings.dagster_database_url), args.files, args.ids
        )
        result.update(upload_seconds=round(uploaded, 1), seconds_to_last_outcome=round(seconds, 1))
        return result
    finally:
        stack.stop()


def report(args: argparse.Namespace, r: dict[str, Any]) -> str:
    head = (
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M} UTC | {args.files} × {args.ids:,} | {args.order_by} | "
        f"{args.batch_files} | {r['runs']} | {r['peak_runs_in_flight']} | {r['peak_concurrent_loads']} | "
        f"{r['failed']} | {r['off_newest']} | "
        f"{r['backward_steps']} | {r['superseded']:,} | {r['history_rows']:,} | "
        f"{r['seconds_to_last_outcome']} | {'**pass**' if r['passed'] else '**FAIL**'} |"
    )
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Ordering drill results (`make drill`)\n\n"
            "| when | files × ids | ordered by | files per run | runs | peak runs in flight | peak concurrent loads | "
            "failed files | entities off the newest export | history steps backwards | superseded records | "
            "history rows | seconds to last outcome | result |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
        )
    with RESULTS.open("a") as f:
        f.write(head + "\n")
    return head


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.drill", description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--ids", type=int, default=100_000)
    p.add_argument("--batch-files", type=int, default=2, help="INGEST_MAX_FILES_PER_RUN (default 2)")
    p.add_argument("--order-by", choices=["export-date", "upload"], default="export-date")
    p.add_argument("--timeout", type=float, default=1800)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    log(json.dumps(result))
    log(report(args, result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
