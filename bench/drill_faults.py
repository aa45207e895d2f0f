"""The fault drill (`make drill-faults`): crashes in the middle of loads on the real local platform, and
nobody acting afterwards.

It starts its own `pipeline dev` (a subprocess in `.local/drill-faults`, on its own ports) and, for each
scenario, uploads a CRM export of `--records` customers with ids of its own, waits until the file is
`loading` and `--into` seconds more, then:
1. worker:    SIGKILL the run worker that loads it;
2. postgres:  restarts PostgreSQL in immediate mode (every session dies, the server recovers);
3. daemon:    SIGKILL the Dagster daemon (`dagster dev` dies with it; `pipeline dev` restarts it);
4. stack:     SIGKILL every process of the stack at once (pipeline dev, Dagster, the run worker, moto,
              PostgreSQL), then starts a fresh `pipeline dev`. moto keeps S3 in memory, so the drill puts
              the same objects back, as S3 itself would have kept them: same bytes, same ETags;
5. redelivery: sends the first file's S3 event notification again and uploads its same bytes again.

It passes only when every file ends `loaded` with exactly its records (each id once, version 1, no
history), no file stays open longer than `--bound` seconds after its fault (after the stack is back, for
the stack kill), and the redelivered file is recorded once. It reports each file's attempts and why they
ended (`ingest.file_attempts`). Results go to bench/drill_faults_results.md (appended).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from pipeline_defs.devstack.postgres import LocalPostgres
from resources.clients.aws import aws_client
from resources.settings import PROJECT_ROOT, Settings

PG_PORT, UI_PORT, API_PORT = 55442, 3391, 8391
LOCAL_DIR = PROJECT_ROOT / ".local" / "drill-faults"
RESULTS = PROJECT_ROOT / "bench" / "drill_faults_results.md"
SCENARIOS = ("worker", "postgres", "daemon", "stack", "redelivery")


def log(msg: str) -> None:
    print(f"[drill-faults {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def export(tag: str, records: int) -> bytes:
    rows = [
        {
            "customer_id": f"{tag}-{n}",
            "company_name": f"Fault Drill {tag} {n}",
            "annual_revenue": 1000 + n,
            "employee_count": 10 + n % 500,
            "industry": ("Retail", "Energy", "Health")[n % 3],
        }
        for n in range(records)
    ]
    return json.dumps({"records": rows}, separators=(",", ":")).encode()


def environment(tag: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"postgresql://pipeline_writer:pipeline_writer@127.0.0.1:{PG_PORT}/canonical",
        "READONLY_DATABASE_URL": f"postgresql://pipeline_reader:pipeline_reader@127.0.0.1:{PG_PORT}/canonical",
        "DAGSTER_URL": f"http://127.0.0.1:{UI_PORT}",
        "API_URL": f"http://127.0.0.1:{API_PORT}",
        "PIPELINE_LOCAL_DIR": str(LOCAL_DIR),
        # Own names: a moto server already running (`make dev`) is reused, and must not mix buckets.
        "RAW_BUCKET": f"faults-raw-{tag}",
        "RESULTS_BUCKET": f"faults-results-{tag}",
        "JOBS_TABLE": f"faults-jobs-{tag}",
        "NOTIFY_TOPIC": f"faults-notices-{tag}",
        "INGEST_QUEUE": f"faults-raw-events-{tag}",
        "PIPELINE_ENV": "drill",
        # The stack's own moto server (or one `make dev` already runs there, reused).
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }


# ---- processes ------------------------------------------------------------------------------------------


def _processes() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command line) of every process."""
    out: dict[int, tuple[int, str]] = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if stat[0] != "Z":
            out[int(d.name)] = (int(stat[1]), cmd)
    return out


def descendants(root: int) -> list[int]:
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def find(root: int, needle: str) -> list[int]:
    procs = _processes()
    return [p for p in descendants(root) if needle in procs.get(p, (0, ""))[1]]


@dataclass
class Stack:
    """A `pipeline dev` subprocess and what it prints."""

    env: dict[str, str]
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    back_at: float = 0.0  # monotonic time the platform said it was running

    def start(self, timeout: float = 600) -> None:
        self.lines = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline_defs.cli", "dev", "--no-samples"],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not any("The platform is running" in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    "drill-faults: `pipeline dev` did not come up:\n" + "\n".join(self.lines[-40:])
                )
            time.sleep(0.5)
        self.back_at = time.monotonic()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            self.lines.append(line)
            if line.strip().startswith(("recovered:", "!")) or "restarting" in line:
                log(f"  pipeline dev: {line.strip()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(180)
            except subprocess.TimeoutExpired:
                self.kill_all()
        self.proc = None

    def kill_all(self) -> int:
        """SIGKILL every process of the stack at once, PostgreSQL (not a child: pg_ctl daemonises it) too."""
        assert self.proc is not None
        pids = descendants(self.proc.pid)
        postmaster = LOCAL_DIR / "postgres" / "pgdata" / "postmaster.pid"
        if postmaster.exists():
            pids += descendants(int(postmaster.read_text().splitlines()[0]))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None
        deadline = time.monotonic() + 60  # gone, not merely signalled: the next start must find nothing
        while set(pids) & set(_processes()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return len(pids)


# ---- the scenarios ----------------------------------------------------------------------------------------


@dataclass
class Case:
    scenario: str
    key: str
    body: bytes
    ids: int
    fault_at: float = 0.0  # monotonic; for the stack kill, when the stack was back
    fault_seen_loading: bool = False
    loaded_after: float | None = None
    note: str = ""


def _status(url: str, key: str) -> str | None:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT status FROM ingest.files WHERE s3_key = %s ORDER BY file_id DESC LIMIT 1", (key,)
        ).fetchone()
    return row[0] if row else None


def _safe_status(url: str, key: str) -> str | None:
    try:
        return _status(url, key)
    except psycopg.Error:
        return None  # the server is restarting


def wait_loading(url: str, key: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while _safe_status(url, key) != "loading":
        if time.monotonic() > deadline:
            raise SystemExit(f"drill-faults: {key} never started loading")
        time.sleep(0.1)


def wait_loaded(url: str, key: str, since: float, bound: float) -> float | None:
    """Seconds from `since` until the file is loaded (None if not within `bound`, or it failed for good)."""
    deadline = since + bound
    while time.monotonic() < deadline:
        status = _safe_status(url, key)
        if status == "loaded":
            return time.monotonic() - since
        time.sleep(0.5)
    return None


def upload(settings: Settings, key: str, body: bytes) -> str:
    return str(aws_client("s3", settings).put_object(Bucket=settings.raw_bucket, Key=key, Body=body)["ETag"])


def kill(stack: Stack, needle: str, what: str) -> str:
    """SIGKILL the stack's processes whose command line holds `needle`."""
    assert stack.proc is not None
    pids = find(stack.proc.pid, needle)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return f"SIGKILL {what} {pids}"


def fault_mid_load(
    case: Case, stack: Stack, settings: Settings, into: float, fault: Callable[[], str]
) -> None:
    upload(settings, case.key, case.body)
    wait_loading(settings.database_url, case.key)
    time.sleep(into)
    case.fault_seen_loading = _safe_status(settings.database_url, case.key) == "loading"
    case.note = fault()
    case.fault_at = time.monotonic()
    if "[]" in case.note:
        raise SystemExit(f"drill-faults: {case.scenario}: found no process to kill")
    log(
        f"{case.scenario}: {case.note} (file was {'still loading' if case.fault_seen_loading else 'NOT loading'})"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    import shutil

    leftover = LocalPostgres(LOCAL_DIR / "postgres", port=PG_PORT)
    if leftover.running():  # a drill that was itself interrupted
        with contextlib.suppress(subprocess.SubprocessError):
            leftover.stop(mode="immediate")
    shutil.rmtree(LOCAL_DIR, ignore_errors=True)
    LOCAL_DIR.mkdir(parents=True)
    tag = str(int(time.time()))
    env = environment(tag)
    settings = Settings(
        **{k: v for k, v in env.items() if k in {f.alias for f in Settings.model_fields.values()}}
    )
    stack = Stack(env)
    wanted = [s for s in SCENARIOS if s in args.scenarios]
    cases = [
        Case(s, f"crm-data/faults/{i}-{s}.json", export(f"FD{i}", args.records), args.records)
        for i, s in enumerate(wanted, start=1)
        if s != "redelivery"
    ]
    log(f"{len(cases)} files × {args.records:,} records; scenarios: {', '.join(wanted)}")
    stack.start()
    db = settings.database_url
    try:
        for case in cases:
            if case.scenario == "worker":
                # The code server starts each run's worker as a multiprocessing child.
                fault_mid_load(
                    case,
                    stack,
                    settings,
                    args.into,
                    lambda: kill(stack, "multiprocessing.spawn", "run worker(s)"),
                )
            elif case.scenario == "postgres":

                def restart_postgres() -> str:
                    pg = LocalPostgres(LOCAL_DIR / "postgres", port=PG_PORT)
                    pg.stop(mode="immediate")
                    pg.start(timeout=120)
                    return "PostgreSQL restarted in immediate mode"

                fault_mid_load(case, stack, settings, args.into, restart_postgres)
            elif case.scenario == "daemon":
                fault_mid_load(
                    case, stack, settings, args.into, lambda: kill(stack, "dagster._daemon", "Dagster daemon")
                )
            elif case.scenario == "stack":

                def kill_stack() -> str:
                    t0 = time.monotonic()
                    n = stack.kill_all()
                    log(f"stack: {n} processes killed; starting a fresh `pipeline dev`")
                    stack.start()
                    for c in cases:  # S3 is durable; moto is not
                        upload(settings, c.key, c.body)
                    return (
                        f"SIGKILL of {n} processes, fresh `pipeline dev` back in {time.monotonic() - t0:.0f}s"
                    )

                fault_mid_load(case, stack, settings, args.into, kill_stack)
                case.fault_at = stack.back_at
            case.loaded_after = wait_loaded(db, case.key, case.fault_at, args.bound)
            log(
                f"{case.scenario}: "
                + (
                    f"loaded {case.loaded_after:.0f}s after the fault"
                    if case.loaded_after is not None
                    else f"NOT loaded within {args.bound:.0f}s"
                )
            )
        redelivered = redeliver(settings, cases[0]) if "redelivery" in wanted and cases else None
        return verdict(db, cases, redelivered, args, stack)
    finally:
        stack.stop()


def redeliver(settings: Settings, case: Case) -> dict[str, Any]:
    """The same object announced again (its event re-sent) and put again (same bytes): recorded once."""
    sqs = aws_client("sqs", settings)
    s3 = aws_client("s3", settings)
    head = s3.head_object(Bucket=settings.raw_bucket, Key=case.key)
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "eventTime": datetime.now(UTC).isoformat(),
                "s3": {
                    "bucket": {"name": settings.raw_bucket},
                    "object": {"key": case.key, "size": len(case.body), "eTag": head["ETag"].strip('"')},
                },
            }
        ]
    }
    queue_url = sqs.get_queue_url(QueueName=settings.ingest_queue)["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(event))
    upload(settings, case.key, case.body)
    time.sleep(20)  # several landing_sensor ticks
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT count(*), max(status) FROM ingest.files WHERE s3_key = %s", (case.key,)
        ).fetchone()
    assert rows is not None
    log(f"redelivery: {rows[0]} row(s) for {case.key} ({rows[1]})")
    return {"rows": rows[0], "status": rows[1]}


def verdict(
    url: str, cases: list[Case], redelivered: dict[str, Any] | None, args: argparse.Namespace, stack: Stack
) -> dict[str, Any]:
    out: dict[str, Any] = {"cases": []}
    ok = True
    with psycopg.connect(url) as conn:
        for i, case in enumerate(cases, start=1):
            prefix = f"crm_FD{i}-%"
            n, max_version = conn.execute(
                "SELECT count(*), coalesce(max(version), 0) FROM canonical.entities WHERE canonical_id LIKE %s",
                (prefix,),
            ).fetchone()  # type: ignore[misc]
            history = conn.execute(
                "SELECT count(*) FROM canonical.entity_history WHERE canonical_id LIKE %s", (prefix,)
            ).fetchone()[0]  # type: ignore[index]
            file = conn.execute(
                "SELECT file_id, status, attempt, inserted FROM ingest.files WHERE s3_key = %s", (case.key,)
            ).fetchall()
            attempts = conn.execute(
                """SELECT a.attempt, a.outcome, coalesce(a.failure_kind, ''), coalesce(a.reason, '')
                   FROM ingest.file_attempts a JOIN ingest.files f USING (file_id)
                   WHERE f.s3_key = %s ORDER BY a.file_attempt_id""",
                (case.key,),
            ).fetchall()
            passed = (
                len(file) == 1
                and file[0][1] == "loaded"
                and n == case.ids
                and max_version == 1
                and history == 0
                and case.loaded_after is not None
                and case.fault_seen_loading
            )
            ok &= passed
            out["cases"].append(
                {
                    "scenario": case.scenario,
                    "fault": case.note,
                    "mid_load": case.fault_seen_loading,
                    "status": file[0][1] if file else None,
                    "entities": n,
                    "expected": case.ids,
                    "max_version": max_version,
                    "history": history,
                    "seconds_to_loaded": round(case.loaded_after, 1)
                    if case.loaded_after is not None
                    else None,
                    "attempts": [f"{a}: {o}" + (f" ({k}: {r})" if k else "") for a, o, k, r in attempts],
                    "passed": passed,
                }
            )
    if redelivered is not None:
        out["redelivery"] = redelivered
        ok &= redelivered["rows"] == 1 and redelivered["status"] == "loaded"
    out["recovered_lines"] = [line.strip() for line in stack.lines if "recovered:" in line]
    out["passed"] = ok
    return out


def report(args: argparse.Namespace, r: dict[str, Any]) -> str:
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    rows = []
    for c in r["cases"]:
        rows.append(
            f"| {when} | {c['scenario']} | {c['fault']} | {'yes' if c['mid_load'] else 'NO'} | "
            f"{c['entities']:,}/{c['expected']:,} | {c['max_version']} | {c['history']} | "
            f"{c['seconds_to_loaded']} | {'; '.join(c['attempts'])} | "
            f"{'**pass**' if c['passed'] else '**FAIL**'} |"
        )
    if "redelivery" in r:
        red = r["redelivery"]
        rows.append(
            f"| {when} | redelivery | event re-sent + same bytes re-uploaded | - | - | - | - | - | "
            f"{red['rows']} row(s), {red['status']} | {'**pass**' if red['rows'] == 1 else '**FAIL**'} |"
        )
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Fault drill results (`make drill-faults`)\n\n"
            "| when | scenario | fault | mid-load | entities | max version | history rows | s to loaded | "
            "attempts | result |\n|---|---|---|---|---:|---:|---:|---:|---|---|\n"
        )
    with RESULTS.open("a") as f:
        f.write("\n".join(rows) + "\n")
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.drill_faults", description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=200_000, help="records per file (default 200,000)")
    p.add_argument(
        "--into", type=float, default=2.0, help="seconds into the load before the fault (default 2)"
    )
    p.add_argument(
        "--bound",
        type=float,
        default=120.0,
        help="longest a file may stay open after its fault or after the stack is back (default 120 s)",
    )
    p.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    log(json.dumps(result, indent=1))
    log(report(args, result))
    log("PASSED" if result["passed"] else "FAILED")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
