"""The state file a running `pipeline dev` leaves in its local directory, so that the `pipeline` commands
of other terminals (and a second `pipeline dev`) find it. Standard library and settings only: the CLI
imports it in every command."""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from pathlib import Path

from resources.settings import Settings

DEV_STACK_FILE = "dev-stack.json"


def dev_stack_file(local_dir: Path) -> Path:
    return local_dir / DEV_STACK_FILE


def write_dev_stack_file(local_dir: Path, env: dict[str, str]) -> None:
    """Leave this process's pid and the stack's environment for other terminals; readable by this user only."""
    path = dev_stack_file(local_dir)
    path.write_text(json.dumps({"pid": os.getpid(), "env": env}, indent=2))
    path.chmod(0o600)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def adopt_running_dev_stack(environ: MutableMapping[str, str] | None = None) -> bool:
    """Fill unset variables from a running `pipeline dev` in this checkout; True if one was found."""
    environ = os.environ if environ is None else environ
    local_dir = Path(environ.get("PIPELINE_LOCAL_DIR") or Settings.model_fields["local_dir"].default)
    path = dev_stack_file(local_dir)
    try:
        state = json.loads(path.read_text())
        pid = int(state["pid"])
        env = dict(state["env"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if pid == os.getpid() or not pid_alive(pid):
        return False
    for k, v in env.items():
        environ.setdefault(k, str(v))
    return True
