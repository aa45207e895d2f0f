"""The whole dev stack, without starting processes (`make dev` starts them)."""

from __future__ import annotations

import pytest

from pipeline_defs.devstack.errors import DevStackError
from pipeline_defs.devstack.stack import DevStack
from resources.settings import Settings


def test_a_port_taken_by_another_server_stops_pipeline_dev_before_it_starts_anything(
    tmp_path, http_404_server
):
    s = Settings(
        DATABASE_URL=f"postgresql://pipeline_writer:pipeline_writer@127.0.0.1:{http_404_server}/canonical",
        PIPELINE_LOCAL_DIR=str(tmp_path),
    )
    stack = DevStack(s, echo=lambda msg: None)
    with pytest.raises(DevStackError, match=f"port {http_404_server} is taken"):
        stack.start()
