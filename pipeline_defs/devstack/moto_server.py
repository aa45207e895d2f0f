"""A moto server (local AWS endpoint) as a child process, for `make dev` and the integration tests.

moto keeps every bucket, queue, table and topic in memory: a fresh server is empty, and
`pipeline_defs.devstack.provisioning.ensure_aws_resources` recreates what the platform needs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Literal, Self

from pipeline_defs.devstack.processes import DEFAULT_HOST, die_with_parent

DEFAULT_PORT = 4566


class MotoServerError(RuntimeError):
    """The server could not be started (port taken by something else, process exited, timeout)."""


def probe(host: str, port: int, timeout: float = 2.0) -> Literal["free", "moto", "other"]:
    """What listens on host:port: nothing, a moto server, or something else."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            # Nothing listening and the kernel picked `port` itself as our source port: a TCP
            # self-connection (possible when `port` is in the ephemeral range). The port is free.
            if sock.getsockname() == sock.getpeername():
                return "free"
    except OSError:
        return "free"
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/moto-api/config", timeout=timeout) as resp:
            body = json.loads(resp.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError):
        return "other"
    # moto's config endpoint answers with its feature switches, e.g. {"batch": ..., "lambda": ...}.
    return "moto" if isinstance(body, dict) and "batch" in body else "other"


class MotoServer:
    """`python -m moto.server` on host:port, in its own process group.

        with MotoServer(port=free_port()) as moto:
            settings = Settings(AWS_ENDPOINT_URL=moto.endpoint_url)

    With `reuse_existing=True`, a moto server already answering on the port is used as is (and not
    stopped by `stop()`); `reused` tells which happened. Anything else on the port is an error.
    With `die_with_parent=True` (Linux), the server also ends if this process is killed outright.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        log_path: Path | None = None,
        reuse_existing: bool = False,
        die_with_parent: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self.reuse_existing = reuse_existing
        self.die_with_parent = die_with_parent
        self.reused = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30) -> Self:
        if self.running():
            return self
        state = probe(self.host, self.port)
        if state == "moto":
            if self.reuse_existing:
                self.reused = True
                return self
            raise MotoServerError(f"a moto server is already running on {self.endpoint_url}; stop it first")
        if state == "other":
            raise MotoServerError(
                f"port {self.port} on {self.host} is taken by something that is not a moto server; "
                "free it or point AWS_ENDPOINT_URL elsewhere"
            )
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
            start_new_session=True,  # own process group: a terminal Ctrl-C reaches us, not it
            preexec_fn=die_with_parent if self.die_with_parent else None,  # noqa: PLW1509
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._close_log()
                self._proc = None
                hint = f" (see {self.log_path})" if self.log_path else ""
                raise MotoServerError(f"moto server exited with code {code} while starting{hint}")
            if probe(self.host, self.port, timeout=1) == "moto":
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise MotoServerError(
                    f"moto server did not answer on {self.endpoint_url} within {timeout:.0f}s"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 10) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
