"""What a stopped stack leaves behind, put right when the next one starts (or restarts Dagster).

No worker of the local run launcher outlives its `dagster dev`, so a run a previous stack left STARTING,
STARTED or CANCELING will never end by itself: it is failed (canceled, if it was canceling). Files left
`loading` are failed by the ingest registry's liveness rule (their loaders' sessions are gone) and the
landing sensor retries them. Dagster is imported only by the subprocess that rewrites the runs
(`python -m pipeline_defs.devstack.recovery`), so `pipeline dev` itself stays dagster-free.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg

from resources.clients.postgres import scalar
from resources.ingest.registry import fail_lost_loaders

LEFTOVER_STATUSES = ("STARTING", "STARTED", "CANCELING")
MESSAGE = (
    "pipeline dev: this run was in progress when the previous local stack stopped; no worker of the "
    "local run launcher survives a restart, so it is marked as ended"
)


@dataclass(frozen=True)
class Recovered:
    runs: list[dict[str, str]]  # run_id, job, status before
    files: list[str]  # keys failed because their loader was gone

    def lines(self) -> list[str]:
        out = []
        if self.runs:
            out.append(
                f"{len(self.runs)} run(s) a previous stack left in progress, marked ended: "
                + ", ".join(f"{r['job']} {r['run_id'][:8]} ({r['status'].lower()})" for r in self.runs)
            )
        if self.files:
            out.append(
                f"{len(self.files)} file(s) left loading (their loaders are gone; nothing of them landed), "
                "failed and retried automatically: "
                + ", ".join(self.files[:5])
                + (" …" if len(self.files) > 5 else "")
            )
        return out


def leftover_runs_exist(dagster_db_url: str) -> bool:
    """Cheap check before starting a Dagster process: any run stuck in progress in the run storage."""
    try:
        with psycopg.connect(dagster_db_url, connect_timeout=10) as conn:
            if scalar(conn, "SELECT to_regclass('public.runs')") is None:
                return False  # a fresh Dagster database: nothing ran yet
            return bool(
                scalar(
                    conn,
                    "SELECT EXISTS (SELECT 1 FROM runs WHERE status = ANY(%s))",
                    (list(LEFTOVER_STATUSES),),
                )
            )
    except psycopg.Error:
        return False  # Dagster reports its own storage problems when it starts


def end_leftover_runs(env: dict[str, str], cwd: Path) -> list[dict[str, str]]:
    """Mark every run left in progress as ended, through Dagster's own instance API (a subprocess)."""
    out = subprocess.run(
        [sys.executable, "-m", "pipeline_defs.devstack.recovery"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"could not mark the previous stack's runs as ended: {out.stderr.strip()[-2000:]}")
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def fail_files_without_loader(database_url: str) -> list[str]:
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        lost = fail_lost_loaders(conn)
    return [f.s3_key for f in lost]


def recover(dagster_db_url: str, database_url: str, env: dict[str, str], cwd: Path) -> Recovered:
    runs = end_leftover_runs(env, cwd) if leftover_runs_exist(dagster_db_url) else []
    return Recovered(runs=runs, files=fail_files_without_loader(database_url))


def _main() -> None:
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    statuses = [DagsterRunStatus[s] for s in LEFTOVER_STATUSES]
    ended: list[dict[str, str]] = []
    with DagsterInstance.get() as instance:
        for run in instance.get_runs(filters=RunsFilter(statuses=statuses)):
            if run.status == DagsterRunStatus.CANCELING:
                instance.report_run_canceled(run, message=MESSAGE)
            else:
                instance.report_run_failed(run, message=MESSAGE)
            ended.append({"run_id": run.run_id, "job": run.job_name, "status": run.status.value})
    print(json.dumps(ended))


if __name__ == "__main__":
    _main()
