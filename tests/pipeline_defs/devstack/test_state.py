"""Other terminals find a running `pipeline dev` through its state file."""

from __future__ import annotations

import json
import os

from pipeline_defs import cli as cli_module


def test_cli_adopts_the_environment_of_a_running_dev_stack_without_overriding(tmp_path):
    state = {
        "pid": os.getppid(),
        "env": {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "RAW_BUCKET": "from-dev"},
    }
    (tmp_path / "dev-stack.json").write_text(json.dumps(state))
    environ = {"PIPELINE_LOCAL_DIR": str(tmp_path), "RAW_BUCKET": "explicit"}
    assert cli_module.adopt_running_dev_stack(environ)
    assert environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566" and environ["RAW_BUCKET"] == "explicit"

    state["pid"] = 2**22 + 12345  # above pid_max: certainly not running
    (tmp_path / "dev-stack.json").write_text(json.dumps(state))
    environ = {"PIPELINE_LOCAL_DIR": str(tmp_path)}
    assert not cli_module.adopt_running_dev_stack(environ)
    assert "AWS_ENDPOINT_URL" not in environ
