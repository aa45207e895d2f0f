"""MotoServer: the local AWS endpoint as a child process."""

from __future__ import annotations

import pytest

from pipeline_defs.devstack.moto_server import MotoServer, MotoServerError, probe
from pipeline_defs.devstack.processes import free_port

integration = pytest.mark.integration


@integration
def test_moto_server_refuses_a_port_taken_by_something_else(http_404_server):
    assert probe("127.0.0.1", http_404_server) == "other"
    with pytest.raises(MotoServerError, match="not a moto server"):
        MotoServer(port=http_404_server).start()


@integration
def test_moto_server_reuses_a_running_moto_only_when_asked_and_never_stops_it(moto_server):
    with pytest.raises(MotoServerError, match="already running"):
        MotoServer(port=moto_server.port).start()
    other = MotoServer(port=moto_server.port, reuse_existing=True)
    with other:
        assert other.reused and other.pid is None
    assert probe("127.0.0.1", moto_server.port) == "moto"


@integration
def test_moto_server_stops_and_frees_its_port(tmp_path):
    port = free_port()
    server = MotoServer(port=port, log_path=tmp_path / "moto.log").start()
    assert server.running() and probe("127.0.0.1", port) == "moto"
    server.stop()
    assert not server.running()
    assert probe("127.0.0.1", port) == "free"
