"""The REST app under uvicorn as the stack's child, with the same environment as Dagster."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pipeline_defs.devstack.errors import DevStackError
from pipeline_defs.devstack.processes import die_with_parent, display_path, http_ok, stop_group, tail


@dataclass
class ApiProcess:
    root: Path  # the working directory
    log_path: Path
    host: str
    port: int
    echo: Callable[[str], None]

    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, env: dict[str, str]) -> None:
        """Start uvicorn and wait until the app answers."""
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "api.app:create_app",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--no-access-log",
        ]
        self._log = out = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.echo(f"• REST API: starting uvicorn on {self.url} (log {display_path(self.log_path)})")
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        deadline = time.monotonic() + 60
        while not http_ok(f"{self.url}/analytics/operations"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise DevStackError(
                    f"the REST API did not start on {self.url}; see {display_path(self.log_path)}"
                    f":\n{tail(self.log_path)}"
                )
            time.sleep(0.3)

    def exited(self) -> bool:
        """It ended on its own (False before it started and after stop())."""
        return self.proc is not None and self.proc.poll() is not None

    def stop(self) -> None:
        if self.proc is not None:
            proc, self.proc = self.proc, None
            self.echo("• stopping the REST API …")
            stop_group(proc, signal.SIGTERM, timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
