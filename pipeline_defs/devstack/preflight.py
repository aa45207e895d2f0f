"""What `pipeline dev` checks before it starts anything: no other `pipeline dev` in this checkout, and
every port it needs free (or held by a server of its own it will reuse)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from pipeline_defs.devstack.endpoints import DEFAULT_MOTO_ENDPOINT, moto_here, url_host_port
from pipeline_defs.devstack.errors import DevStackError
from pipeline_defs.devstack.moto_server import probe
from pipeline_defs.devstack.postgres import pg_host_port
from pipeline_defs.devstack.postgres_setup import embedded_server
from pipeline_defs.devstack.processes import port_open
from pipeline_defs.devstack.state import dev_stack_file, pid_alive
from resources.settings import Settings


def refuse_second_instance(local_dir: Path) -> None:
    path = dev_stack_file(local_dir)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        pid = int(json.loads(path.read_text())["pid"])
        if pid != os.getpid() and pid_alive(pid):
            raise DevStackError(f"`pipeline dev` is already running in this checkout (pid {pid})")


def check_ports(settings: Settings, local_dir: Path, ui: tuple[str, int], api: tuple[str, int]) -> None:
    """Fail before starting anything when a port we need is taken."""
    pg = embedded_server(settings, local_dir)
    if pg is not None:
        host, port = pg_host_port(settings.database_url)
        if not pg.running() and port_open(host, port):
            raise DevStackError(
                f"port {port} is taken by another server (not the embedded PostgreSQL in {pg.data_dir}); "
                "stop it, or set DATABASE_URL (and ADMIN_/READONLY_/DAGSTER_DATABASE_URL) to use a server of "
                "your own on another host"
            )
    if moto_here(settings):
        host, port = url_host_port(DEFAULT_MOTO_ENDPOINT, 4566)
        if probe(host, port) == "other":
            raise DevStackError(
                f"port {port} is taken by something that is not a moto server; free it or set "
                "AWS_ENDPOINT_URL to an S3/SQS/DynamoDB/SNS endpoint of your own"
            )
    elif settings.aws_endpoint_url:
        url = settings.aws_endpoint_url
        host, port = url_host_port(url, 443 if url.startswith("https") else 80)
        if not port_open(host, port):
            raise DevStackError(f"nothing answers at AWS_ENDPOINT_URL={url}; start it or unset the variable")
    host, port = ui
    if port_open(host, port):
        raise DevStackError(
            f"port {port} (Dagster UI) is taken — a previous `pipeline dev` still running? "
            f"Free it or set DAGSTER_URL=http://{host}:<port>"
        )
    host, port = api
    if port_open(host, port):
        raise DevStackError(f"port {port} (REST API) is taken; free it or set API_URL=http://{host}:<port>")
