"""`dagster dev` (the Dagster UI + daemon) as the stack's child: its dagster.yaml, its start up to a
loaded code location, the checks that it still runs, what ended it when it died, how often it is
restarted, and its stop (interrupt first, kill what outlives the interrupt).

Dagster is only run as a subprocess: nothing here imports it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pipeline_defs.devstack.errors import DevStackError
from pipeline_defs.devstack.processes import die_with_parent, display_path, http_ok, stop_group, tail

# `dagster dev` dies with its daemon or webserver: restarted this often within the window, then the stack
# stops. Run workers it left get this long after an interrupt to end their runs before they are killed.
MAX_DAGSTER_RESTARTS = 3
DAGSTER_RESTART_WINDOW = 600.0
DAGSTER_LEFTOVER_GRACE = 20.0

DAGSTER_YAML = """\
# Written by `pipeline dev` at every start; edits here are overwritten.
storage:
  postgres:
    postgres_url:
      env: DAGSTER_DATABASE_URL

run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 2
    # Queued runs are looked at every second (default 5): a small file's run waits ~0.5 s, not ~2.5 s.
    dequeue_interval_seconds: 1

# Each sensor ticks in its own thread (as on ECS, infra/dagster.yaml): landing_sensor's tick, which
# long-polls the ingest queue, does not hold up the job-status sensors, nor they it.
sensors:
  use_threads: true
  num_workers: 4

run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  poll_interval_seconds: 30
  # The default run launcher cannot resume a run whose worker died: fail it instead.
  max_resume_run_attempts: 0

telemetry:
  enabled: false

nux:
  enabled: false
"""

_CODE_LOCATION_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
                       name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def write_dagster_yaml(dagster_home: Path) -> None:
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)


@dataclass
class RestartBudget:
    """`dagster dev` is restarted at most MAX_DAGSTER_RESTARTS times within DAGSTER_RESTART_WINDOW seconds."""

    times: list[float] = field(default_factory=list)

    def spend(self, now: float) -> bool:
        """Count a restart at `now`; False when the window holds no more of them."""
        self.times = [t for t in self.times if now - t < DAGSTER_RESTART_WINDOW]
        if len(self.times) >= MAX_DAGSTER_RESTARTS:
            return False
        self.times.append(now)
        return True

    def deaths(self) -> int:
        """How often `dagster dev` died within the window, the death being handled included."""
        return len(self.times) + 1


@dataclass
class DagsterProcess:
    root: Path  # the checkout: workspace.yaml, the working directory
    home: Path  # DAGSTER_HOME
    log_path: Path
    host: str
    port: int
    follow_logs: bool  # its output goes to this terminal rather than to log_path
    echo: Callable[[str], None]

    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: IO[bytes] | None = None

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, env: dict[str, str]) -> str | None:
        """Start `dagster dev` and wait until its code location has loaded; return its load error, if any."""
        cmd = [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-w",
            str(self.root / "workspace.yaml"),
            "-h",
            self.host,
            "-p",
            str(self.port),
        ]
        out: IO[bytes] | None = None
        if not self.follow_logs:
            # A restart after `dagster dev` died appends: the lines that say why stay in the log.
            mode = "ab" if self.starts else "wb"
            self._log = out = open(self.log_path, mode)  # noqa: SIM115 - closed in stop()
        self.starts += 1
        self.echo(
            f"• Dagster: starting UI + daemon (DAGSTER_HOME {display_path(self.home)}, "
            f"log {'here' if self.follow_logs else display_path(self.log_path)})"
        )
        t = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        deadline = time.monotonic() + 300
        while not http_ok(f"{self.ui_url}/server_info"):
            self.check_alive()
            if time.monotonic() > deadline:
                raise DevStackError(
                    f"the Dagster UI did not answer on {self.ui_url} within 300s{self.log_hint()}"
                )
            time.sleep(0.5)
        self.echo(f"  UI answering on {self.ui_url} after {time.monotonic() - t:.0f}s")
        return self._wait_code_location(deadline)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise DevStackError(f"`dagster dev` exited with code {self.proc.returncode}{self.log_hint()}")
        # The webserver failing to bind does not end `dagster dev`: catch it rather than wait for nothing.
        if not self.follow_logs and "address already in use" in tail(self.log_path, 200):
            raise DevStackError(f"the Dagster webserver could not bind {self.ui_url}{self.log_hint()}")

    def log_hint(self) -> str:
        if self.follow_logs:
            return ""
        return f"; last lines of {display_path(self.log_path)}:\n{tail(self.log_path)}"

    def exit_code(self) -> int | None:
        """`dagster dev`'s exit code once it has ended on its own; None while it runs."""
        assert self.proc is not None
        return self.proc.poll()

    def what_died(self, code: int) -> str:
        """Which of `dagster dev`'s processes ended it, as its log says."""
        log = "" if self.follow_logs else tail(self.log_path, 60)
        for name in ("dagster-daemon", "dagster-webserver"):
            if f"{name} process shut down unexpectedly" in log:
                return f"the Dagster {name.split('-')[1]} died, and `dagster dev` with it (exit code {code})"
        return f"`dagster dev` (Dagster UI + daemon) exited on its own with code {code}"

    def stop(self) -> None:
        """Interrupt `dagster dev` and whatever its process group still holds (run workers left by a dead
        daemon included), then kill what outlived the interrupt."""
        if self.proc is not None:
            proc, self.proc = self.proc, None
            self.echo(
                "• stopping Dagster …"
                if proc.poll() is None
                else "• interrupting what `dagster dev` left running (run workers) …"
            )
            stop_group(proc, signal.SIGINT, timeout=45 if proc.poll() is None else DAGSTER_LEFTOVER_GRACE)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _graphql(self, query: str) -> dict[str, Any] | None:
        req = urllib.request.Request(
            f"{self.ui_url}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _wait_code_location(self, deadline: float) -> str | None:
        while time.monotonic() < deadline:
            self.check_alive()
            data = self._graphql(_CODE_LOCATION_QUERY) or {}
            entries = ((data.get("data") or {}).get("workspaceOrError") or {}).get("locationEntries") or []
            if entries and all(e.get("loadStatus") == "LOADED" for e in entries):
                errors = [
                    f"{e['name']}: {(e['locationOrLoadError'] or {}).get('message', '').strip()}"
                    for e in entries
                    if (e.get("locationOrLoadError") or {}).get("__typename") == "PythonError"
                ]
                if errors:
                    self.echo("  ! the code location failed to load: " + errors[0].splitlines()[0])
                    self.echo(f"    fix it, then reload it in the UI ({self.ui_url}/locations)")
                    return errors[0]
                self.echo(
                    "  code location " + ", ".join(e["name"] for e in entries) + " loaded; daemon running "
                    "the sensors"
                )
                return None
            time.sleep(1)
        return "timed out loading the code location"
