"""Freshness benchmark (`make bench-latency`): how long a small file takes from upload to queryable on
the real local platform (target: ≤ 6 s median, ≤ 10 s p95).

1. Starts the platform with `pipeline dev`'s own code (`DevStack`: embedded PostgreSQL, `dagster dev`
   with the dev instance's dagster.yaml, the landing sensor fed by the raw bucket's S3 events through
   SQS, the REST API), in `.local/latency` on its own ports, against a moto server of its own on a free
   port (never one another checkout's `make dev` may be using). Samples are not uploaded.
2. Waits until the landing sensor has ticked once (the first tick pays the code location's warm-up).
3. Spaced case: uploads `--files` small CRM exports (`--records` records each, distinct keys and ids)
   over real HTTP, `--spacing` seconds apart (±25 %, seeded), so runs do not just queue behind each other. Burst case:
   `--burst` files at once (they share runs).
4. "Queryable" = every record of the file is visible in `canonical.entities` to the read-only role
   (`pipeline_reader`, the role the REST API's analytics read with; its cache is keyed on the ingest data
   version, so a committed file is in the next answer). Polled every `--poll` seconds.
5. Per file, the phases from the platform's own records: the landing sensor tick that launched its run
   (Dagster's tick), its registration in `ingest.files`, the run's events in Dagster's event log
   (RUN_ENQUEUED → RUN_STARTING → RUN_START → STEP_START), the file's load start and
   commit (`ingest.files.started_at` / `finished_at`).
6. Writes bench/latency_results.md (appended, so before/after runs sit side by side): median, p95, max,
   the median of each phase, CPU seconds of the stack's processes and the machine's load.

Exit status 0 when the spaced case meets the target.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg

from bench.cpu import machine_busy_seconds, proc_table
from pipeline_defs.devstack.moto_server import MotoServer
from pipeline_defs.devstack.postgres import libpq_url
from pipeline_defs.devstack.processes import free_port
from pipeline_defs.devstack.stack import DevStack
from resources.clients.aws import aws_client
from resources.settings import PROJECT_ROOT, Settings

RESULTS = PROJECT_ROOT / "bench" / "latency_results.md"
PG_PORT, UI_PORT, API_PORT = 55452, 3392, 8392
TARGET_MEDIAN, TARGET_P95 = 6.0, 10.0
# Dagster's event types as stored (DagsterEventType values keep the old "pipeline" names).
RUN_EVENTS = {
    "PIPELINE_ENQUEUED": "RUN_ENQUEUED",
    "PIPELINE_STARTING": "RUN_STARTING",
    "PIPELINE_START": "RUN_START",
    "STEP_START": "STEP_START",
    "PIPELINE_SUCCESS": "RUN_SUCCESS",
}


def log(msg: str) -> None:
    print(f"[latency {time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Upload:
    key: str
    ids: list[str]  # canonical ids the file carries
    case: str
    run_id: str | None = None
    uploaded: float = 0.0  # epoch seconds, just before the PUT
    put_done: float = 0.0
    queryable: float | None = None
    phases: dict[str, float] = field(default_factory=dict)  # epoch seconds per milestone

    @property
    def latency(self) -> float | None:
        return None if self.queryable is None else self.queryable - self.uploaded


def export(tag: str, n: int, records: int) -> tuple[bytes, list[str]]:
    ids = [f"LAT-{tag}-{n}-{r}" for r in range(records)]
    body = {
        "records": [
            {
                "customer_id": i,
                "company_name": f"Latency Customer {i}",
                "annual_revenue": 1000 + r,
                "employee_count": 5 + r,
                "industry": "Retail",
                "country": "Canada",
            }
            for r, i in enumerate(ids)
        ]
    }
    return json.dumps(body).encode(), [f"crm_{i}" for i in ids]


def settings_for(local_dir: Path, endpoint: str) -> Settings:
    os.environ["API_URL"] = f"http://127.0.0.1:{API_PORT}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    return Settings(
        DATABASE_URL=f"postgresql://pipeline_writer:pipeline_writer@127.0.0.1:{PG_PORT}/canonical",
        READONLY_DATABASE_URL=f"postgresql://pipeline_reader:pipeline_reader@127.0.0.1:{PG_PORT}/canonical",
        DAGSTER_URL=f"http://127.0.0.1:{UI_PORT}",
        PIPELINE_LOCAL_DIR=local_dir,
        AWS_ENDPOINT_URL=endpoint,
        PIPELINE_ENV="latency",
    )


# --------------------------------------------------------------------------------------------------
# CPU of the stack's process trees (run workers come and go: reaped children count in cutime)


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid → (parent pid, CPU seconds of it and of the children it has reaped)."""
    return {pid: (parent, own + reaped) for pid, (parent, own, reaped) in proc_table().items()}


def tree_cpu_seconds(root: int | None) -> float:
    if root is None:
        return 0.0
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            total += table[pid][1]
        todo.extend(children.get(pid, []))
    return total


def stack_pids(stack: DevStack, moto: MotoServer) -> dict[str, int | None]:
    pg_pid = None
    if stack.pg is not None:  # the postmaster: the process whose command line names our data directory
        table = _proc_table()
        for pid in table:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(stack.pg.data_dir) in cmd and "postgres" in cmd:
                pg_pid = pid if pg_pid is None or pid < pg_pid else pg_pid
    return {"dagster": stack.dagster.pid if stack.dagster else None, "postgres": pg_pid, "moto": moto.pid}


# --------------------------------------------------------------------------------------------------
# Measuring


def wait_first_tick(dagster_url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(dagster_url) as conn:
            n = conn.execute(
                "SELECT count(*) FROM job_ticks WHERE type = 'SENSOR' AND tick_body LIKE '%landing_sensor%'"
            ).fetchone()[0]  # type: ignore[index]
        if n:
            return
        time.sleep(1)
    raise SystemExit("latency: the landing sensor never ticked")


def poll_until_queryable(reader_url: str, uploads: list[Upload], poll: float, timeout: float) -> None:
    pending = {u.key: u for u in uploads}
    want = {cid: u.key for u in uploads for cid in u.ids}
    seen: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    with psycopg.connect(reader_url, autocommit=True) as conn:
        while pending and time.monotonic() < deadline:
            ids = [cid for k in pending for cid in pending[k].ids]
            rows = conn.execute(
                "SELECT canonical_id FROM canonical.entities WHERE canonical_id = ANY(%s)", (ids,)
            ).fetchall()
            now = time.time()
            for (cid,) in rows:
                key = want[cid]
                seen[key] = seen.get(key, 0) + 1
            for key in [k for k in pending if seen.get(k, 0) >= len(pending[k].ids)]:
                pending.pop(key).queryable = now
            seen.clear()
            time.sleep(poll)
    if pending:
        log(f"! {len(pending)} file(s) not queryable within {timeout:.0f}s: {sorted(pending)[:5]}")


def upload_spaced(
    s3: Any,
    bucket: str,
    uploads: list[Upload],
    bodies: list[bytes],
    spacing: float,
    reader_url: str,
    poll: float,
    timeout: float,
) -> None:
    """Upload one file every `spacing` seconds while a poller thread watches the read-only view."""
    import threading

    poller = threading.Thread(
        target=poll_until_queryable, args=(reader_url, uploads, poll, timeout), daemon=True
    )
    started = False
    # Jittered (±25 %, seeded): spacing that is a multiple of the daemon's 5 s sensor loop would land every
    # upload at the same moment of the loop, and the sensor's wait would be the same for every file.
    rng = random.Random(len(uploads))
    for i, (u, body) in enumerate(zip(uploads, bodies, strict=True)):
        if i:
            gap = spacing * rng.uniform(0.75, 1.25)
            time.sleep(max(0.0, uploads[i - 1].uploaded + gap - time.time()))
        u.uploaded = time.time()
        s3.put_object(Bucket=bucket, Key=u.key, Body=body)
        u.put_done = time.time()
        if not started:
            poller.start()
            started = True
    poller.join()


def phases(canonical_url: str, dagster_url: str, uploads: list[Upload]) -> None:
    """Fill each upload's milestones from ingest.files and Dagster's run records, ticks and event log."""
    keys = [u.key for u in uploads]
    with psycopg.connect(canonical_url) as conn:
        files = {
            k: (d, q, s, f, r)
            for k, d, q, s, f, r in conn.execute(
                """SELECT s3_key, extract(epoch FROM discovered_at), extract(epoch FROM queued_at),
                      extract(epoch FROM started_at), extract(epoch FROM finished_at), run_id
               FROM ingest.files WHERE s3_key = ANY(%s)""",
                (keys,),
            ).fetchall()
        }
    run_ids = sorted({v[4] for v in files.values() if v[4]})
    events: dict[str, dict[str, float]] = {}
    ticks: dict[str, float] = {}
    with psycopg.connect(dagster_url) as conn:
        for run_id, etype, body in conn.execute(
            "SELECT run_id, dagster_event_type, event FROM event_logs WHERE run_id = ANY(%s) "
            "AND dagster_event_type = ANY(%s)",
            (run_ids, list(RUN_EVENTS)),
        ).fetchall():
            ts = float(json.loads(body)["timestamp"])
            events.setdefault(run_id, {}).setdefault(RUN_EVENTS[etype], ts)
        for (body,) in conn.execute(
            "SELECT tick_body FROM job_ticks WHERE type = 'SENSOR' AND tick_body LIKE "
            "'%landing_sensor%' AND status = 'SUCCESS' ORDER BY id DESC LIMIT 2000"
        ):
            tick = json.loads(body)
            for rid in tick.get("run_ids", []):
                ticks[rid] = float(tick["timestamp"])
    for u in uploads:
        if u.key not in files:
            continue
        discovered, queued, started, finished, run_id = files[u.key]
        p = u.phases
        u.run_id = run_id
        if run_id in ticks:
            p["tick_started"] = ticks[run_id]
        p["registered"] = float(discovered)
        if queued is not None:
            p["batched"] = float(queued)
        for etype, ts in events.get(run_id, {}).items():
            p[etype] = ts
        if started is not None:
            p["load_started"] = float(started)
        if finished is not None:
            p["committed"] = float(finished)


def tick_gaps(dagster_url: str, since: float) -> dict[str, float | None]:
    """Seconds between landing_sensor tick starts, and how long its ticks took, since `since`."""
    with psycopg.connect(dagster_url) as conn:
        bodies = [
            json.loads(b)
            for (b,) in conn.execute(
                "SELECT tick_body FROM job_ticks WHERE type = 'SENSOR' AND tick_body LIKE '%landing_sensor%' "
                "ORDER BY id"
            ).fetchall()
        ]
    starts = sorted(float(b["timestamp"]) for b in bodies if float(b["timestamp"]) >= since)
    gaps = [b - a for a, b in pairwise(starts)]
    took = [
        float(b["end_timestamp"]) - float(b["timestamp"])
        for b in bodies
        if float(b["timestamp"]) >= since and b.get("end_timestamp")
    ]
    return {
        "ticks": len(starts),
        "median_gap": statistics.median(gaps) if gaps else None,
        "max_gap": max(gaps) if gaps else None,
        "median_tick_seconds": statistics.median(took) if took else None,
    }


# The breakdown: each step's duration is (its milestone minus the previous one's).
STEPS = [
    ("upload → sensor tick starts", "tick_started"),
    ("tick → file registered", "registered"),
    ("registered → run created (tick ends)", "RUN_ENQUEUED"),
    ("run queued → launched (RUN_STARTING)", "RUN_STARTING"),
    ("launched → run worker up (RUN_START)", "RUN_START"),
    ("run worker → step started (STEP_START)", "STEP_START"),
    ("step → file load starts", "load_started"),
    ("load → commit", "committed"),
    ("commit → seen queryable", "queryable"),
]


def breakdown(u: Upload) -> dict[str, float]:
    marks = {**u.phases, "queryable": u.queryable}
    out: dict[str, float] = {}
    prev = u.uploaded
    for label, mark in STEPS:
        ts = marks.get(mark)
        if ts is None:
            continue
        out[label] = ts - prev
        prev = ts
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def summarize(case: str, uploads: list[Upload]) -> dict[str, Any]:
    lat = [u.latency for u in uploads if u.latency is not None]
    per_step: dict[str, list[float]] = {}
    for u in uploads:
        for k, v in breakdown(u).items():
            per_step.setdefault(k, []).append(v)
    return {
        "case": case,
        "files": len(uploads),
        "queryable": len(lat),
        "median": statistics.median(lat) if lat else None,
        "p95": pct(lat, 0.95) if lat else None,
        "max": max(lat) if lat else None,
        "min": min(lat) if lat else None,
        "steps": {k: statistics.median(v) for k, v in per_step.items()},
        "runs": len({u.run_id for u in uploads if u.run_id}),
        "per_file": [
            {"key": u.key, "latency": u.latency, **{k: round(v, 2) for k, v in breakdown(u).items()}}
            for u in uploads
        ],
    }


# --------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    local_dir = PROJECT_ROOT / ".local" / "latency"
    shutil.rmtree(local_dir, ignore_errors=True)  # fresh cluster and Dagster home: no run-key history
    local_dir.mkdir(parents=True)
    tag = str(int(time.time()))
    moto = MotoServer(port=free_port(), log_path=local_dir / "moto.log", die_with_parent=True).start()
    stack = DevStack(
        settings_for(local_dir, moto.endpoint_url),
        samples=False,
        echo=lambda m: log(m.strip()) if m.strip() else None,
    )
    result: dict[str, Any] = {"label": args.label, "tag": tag, "queue_wait": args.queue_wait}
    try:
        stack.start()
        if stack.location_error:
            raise SystemExit(f"latency: the code location did not load: {stack.location_error}")
        s = stack.settings
        dagster_url = libpq_url(s.dagster_database_url)
        if args.queue_wait is not None and stack.aws is not None and stack.aws.queue_url:
            from pipeline_defs.devstack.provisioning import set_queue_wait  # not on commits before it existed

            set_queue_wait(s, stack.aws.queue_url, args.queue_wait)
            log(f"ingest queue long-poll set to {args.queue_wait}s")
        wait_first_tick(dagster_url)
        time.sleep(args.settle)
        s3 = aws_client("s3", s)
        pids = stack_pids(stack, moto)
        cpu0 = {k: tree_cpu_seconds(p) for k, p in pids.items()}
        busy0, wall0, load0 = machine_busy_seconds(), time.monotonic(), os.getloadavg()
        cases: list[dict[str, Any]] = []
        if args.files:
            made = [export(tag, n, args.records) for n in range(args.files)]
            spaced = [
                Upload(f"crm-data/latency/{tag}/spaced-{n:03d}.json", ids, "spaced")
                for n, (_, ids) in enumerate(made)
            ]
            log(f"spaced: {args.files} files × {args.records} records, one every {args.spacing}s")
            upload_spaced(
                s3,
                s.raw_bucket,
                spaced,
                [b for b, _ in made],
                args.spacing,
                s.readonly_database_url,
                args.poll,
                args.timeout,
            )
            phases(s.database_url, dagster_url, spaced)
            cases.append(summarize("spaced", spaced))
        if args.burst:
            time.sleep(args.settle)
            made = [export(tag, 1000 + n, args.records) for n in range(args.burst)]
            burst = [
                Upload(f"crm-data/latency/{tag}/burst-{n:03d}.json", ids, "burst")
                for n, (_, ids) in enumerate(made)
            ]
            log(f"burst: {args.burst} files × {args.records} records at once")
            upload_spaced(
                s3,
                s.raw_bucket,
                burst,
                [b for b, _ in made],
                0.0,
                s.readonly_database_url,
                args.poll,
                args.timeout,
            )
            phases(s.database_url, dagster_url, burst)
            cases.append(summarize("burst", burst))
        wall = time.monotonic() - wall0
        result["tick_gaps"] = tick_gaps(dagster_url, time.time() - wall)
        cpu = {k: round(tree_cpu_seconds(p) - cpu0[k], 1) for k, p in pids.items()}
        result.update(
            cases=cases,
            wall_seconds=round(wall, 1),
            cpu_seconds=cpu,
            machine_cpu_seconds=round(machine_busy_seconds() - busy0, 1),
            load_before=[round(x, 2) for x in load0],
            load_after=[round(x, 2) for x in os.getloadavg()],
            commit=_git_commit(),
            when=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            settings={
                "files": args.files,
                "records": args.records,
                "spacing": args.spacing,
                "burst": args.burst,
            },
        )
        return result
    finally:
        stack.stop()
        moto.stop()


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "?"
    except OSError:
        return "?"


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def report(r: dict[str, Any]) -> str:
    cores = os.cpu_count()
    cpu = ", ".join(f"{k} {v}" for k, v in r["cpu_seconds"].items())
    lines = [
        f"### {r['when']}: {r['label']} (commit {r['commit']})",
        "",
        f"{r['settings']['files']} files × {r['settings']['records']} records, one every "
        f"{r['settings']['spacing']} s; burst of {r['settings']['burst']}. Machine: {cores} cores, "
        f"{platform.python_implementation()} {platform.python_version()}; load average before "
        f"{r['load_before']}, after {r['load_after']}; CPU over the {r['wall_seconds']} s measured: machine "
        f"{r['machine_cpu_seconds']} s (all processes), of which the stack's trees: {cpu}.",
        "",
        f"landing_sensor: {r['tick_gaps']['ticks']} ticks, median gap {_fmt(r['tick_gaps']['median_gap'])} s "
        f"(max {_fmt(r['tick_gaps']['max_gap'])} s), median tick {_fmt(r['tick_gaps']['median_tick_seconds'])} s"
        + (
            f"; ingest queue long-poll {r['queue_wait']} s (--queue-wait)"
            if r.get("queue_wait") is not None
            else ""
        )
        + ".",
        "",
        "| case | files | queryable | median | p95 | max | runs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in r["cases"]:
        lines.append(
            f"| {c['case']} | {c['files']} | {c['queryable']} | **{_fmt(c['median'])} s** | "
            f"**{_fmt(c['p95'])} s** | {_fmt(c['max'])} s | {c['runs']} |"
        )
    steps = [label for label, _ in STEPS]
    lines += [
        "",
        "Median of each phase (s):",
        "",
        "| case | " + " | ".join(steps) + " |",
        "|---|" + "---:|" * len(steps),
    ]
    for c in r["cases"]:
        lines.append(f"| {c['case']} | " + " | ".join(_fmt(c["steps"].get(s)) for s in steps) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.latency_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=20, help="spaced uploads (default 20)")
    p.add_argument("--records", type=int, default=3, help="records per file (default 3)")
    p.add_argument(
        "--spacing",
        type=float,
        default=15.0,
        help="seconds between spaced uploads (default 15: longer than a run on a busy 2-core machine, "
        "so files do not queue behind each other's runs)",
    )
    p.add_argument(
        "--burst", type=int, default=10, help="files uploaded at once afterwards (default 10; 0: none)"
    )
    p.add_argument("--poll", type=float, default=0.1, help="seconds between queryability polls")
    p.add_argument(
        "--settle", type=float, default=10.0, help="seconds to wait after the first tick and between cases"
    )
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument(
        "--queue-wait",
        type=int,
        default=None,
        help="override the dev ingest queue's ReceiveMessageWaitTimeSeconds (a lever to measure)",
    )
    p.add_argument("--label", default="", help="a note for the report (what is being measured)")
    p.add_argument("--output", type=Path, default=RESULTS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    text = report(result)
    raw = args.output.parent / ".data" / (args.output.stem + ".jsonl")  # bench/.data is git-ignored
    raw.parent.mkdir(parents=True, exist_ok=True)
    with raw.open("a") as f:
        f.write(json.dumps(result) + "\n")
    if not args.output.exists():
        args.output.write_text("# Freshness: upload → queryable (`make bench-latency`)\n\n")
    with args.output.open("a") as f:
        f.write("\n" + text)
    print(text)
    spaced = next((c for c in result["cases"] if c["case"] == "spaced"), None)
    met = bool(
        spaced
        and spaced["queryable"] == spaced["files"]
        and spaced["median"] <= TARGET_MEDIAN
        and spaced["p95"] <= TARGET_P95
    )
    log(f"target (median ≤ {TARGET_MEDIAN} s, p95 ≤ {TARGET_P95} s): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
