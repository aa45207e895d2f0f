"""Child processes of the dev stack: started in their own process group, ended with us, probed for
readiness; their logs and paths as messages show them. Standard library only."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_HOST = "127.0.0.1"


def _resolve_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _resolve_prctl()  # looked up in the parent: the forked child only makes the call


def die_with_parent() -> None:
    """A `preexec_fn`: on Linux the child gets SIGTERM when the process that started it dies, even
    by SIGKILL, so an abrupt end of `pipeline dev` leaves no server behind. A no-op elsewhere."""
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port nothing listens on right now (the usual small race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    """Something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    """A 2xx from `url` within 2 s (a readiness probe)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError):
        return False


def group_alive(pgid: int) -> bool:
    """Some process of the group still runs (zombies waiting for a reaper do not count)."""
    proc = Path("/proc")
    if proc.is_dir():
        for stat in proc.glob("[0-9]*/stat"):
            try:
                # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after it.
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
                return True
        return False
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def stop_group(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    """Signal a child's whole process group; SIGKILL what is left of it after `timeout`.

    The group is interrupted first even when its leader has already exited: run workers it left behind
    get the chance to end their runs and roll their transactions back before anything is killed."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.2)
        if proc.poll() is not None and not group_alive(proc.pid):
            break
    # Whatever is left in the group (workers of a run, a code server) goes now.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file ('' when it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def display_path(path: Path | None) -> str:
    """`path` as the user sees it in messages: relative to the working directory when it is under it."""
    if path is None:
        return "-"
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)
