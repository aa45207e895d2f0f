"""REST API benchmark: `python -m bench.api_bench [--entities 100000] [--clients 50] [--duration 60]`.

1. Starts the analytics bench's PostgreSQL cluster for N entities (`bench.analytics_bench.loaded_cluster`:
   bench/.data/analytics-<N>/, generated with the real mapping and reused while the generator matches), a
   moto server with the platform's buckets and table, and the REST app under uvicorn on loopback
   (`uvicorn --factory api.app:create_app`, the same command `make dev` runs; no access log).
2. Cached, per tier (memory tier on; DynamoDB tier alone with `API_MEMORY_CACHE_BYTES=0`): one request
   fills the cache, then
   - saturation (closed loop): `--clients` concurrent clients (one keep-alive connection each) send
     `GET /analytics?operation=customer_analysis&metric=revenue&group_by=industry` back to back for
     `--duration` seconds: the throughput. Its latency is a queueing figure — with N clients always waiting,
     p50 ≈ N / throughput (Little's law) — so no latency target is judged on it;
   - latency (open loop): requests sent on a fixed timetable at `--open-rate-memory` / `--open-rate-dynamodb`
     per second for `--open-duration` seconds, each timed from its *scheduled* send time, so a slow answer
     delays nobody's clock (no coordinated omission) and any queueing shows in the figures. The latency
     targets are judged here.
   Every answer must be 200 with `X-Cache: HIT` and the same rows.
3. Uncached (closed loop): `Cache-Control: no-cache`, so every request runs the query under the read-only
   role and writes the cache item again (`X-Cache: MISS`).
4. Writes bench/api_results.md (or `--output`): requests/s, p50/p90/p99/max latency, errors, and the CPU each
   process used per request (the load generator, uvicorn, moto, PostgreSQL), measured from /proc.

Targets (issues 4 and 14): cached p99 ≤ 50 ms (memory tier) and ≤ 100 ms (DynamoDB tier alone) at the offered
rate; ≥ 300 requests/s cached throughput on 2 cores; cached at least 10× faster than uncached; zero errors.
The load generator runs on the same two cores as everything else; its share of the CPU is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.analytics_bench import DATA_DIR, loaded_cluster
from bench.cpu import machine_busy_seconds, process_cpu_seconds
from pipeline_defs.devstack.environment import child_env
from pipeline_defs.devstack.moto_server import MotoServer
from pipeline_defs.devstack.processes import die_with_parent, free_port, http_ok
from pipeline_defs.devstack.provisioning import ensure_aws_resources
from resources.settings import Settings

RESULTS_PATH = Path(__file__).resolve().parent / "api_results.md"
QUERY = {"operation": "customer_analysis", "metric": "revenue", "group_by": "industry"}
TARGET_P99_MS = {"memory": 50.0, "dynamodb": 100.0}  # per tier, at the open-loop offered rate
TARGET_RPS = 300.0
TARGET_SPEEDUP = 10.0
Want = tuple[str, tuple[str | None, ...]]  # the X-Cache answer, and the X-Cache-Tier values accepted


# --------------------------------------------------------------------------------------------------
# CPU accounting


@dataclass
class CpuMeter:
    """CPU seconds spent by each named process (and its children) between start() and stop()."""

    pids: dict[str, tuple[int, bool]]
    _start: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)

    def _sample(self) -> dict[str, float]:
        sample = {
            name: process_cpu_seconds(pid, with_children=tree) for name, (pid, tree) in self.pids.items()
        }
        sample["machine"] = machine_busy_seconds()
        return sample

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> None:
        end = self._sample()
        self.used = {k: end[k] - self._start[k] for k in end}
        self.used["other"] = max(0.0, self.used.pop("machine") - sum(self.used.values()))


# --------------------------------------------------------------------------------------------------
# Servers


@contextmanager
def uvicorn_server(
    settings: Settings, log_path: Path, workers: int, extra_env: dict[str, str]
) -> Iterator[tuple[str, int]]:
    """The REST app under uvicorn on a free loopback port; yields (base URL, pid)."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "api.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--workers",
        str(workers),
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            env=child_env(settings, extra_env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while not http_ok(f"{base}/analytics/operations"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not start; see {log_path}")
                time.sleep(0.2)
            yield base, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


# --------------------------------------------------------------------------------------------------
# Load


@dataclass
class Phase:
    name: str
    clients: int  # closed loop: concurrent clients; open loop: connections available
    wall_s: float
    latencies_ms: list[float]
    errors: Counter[str]
    cpu_s: dict[str, float]
    offered_rps: float | None = None  # open loop only: the timetable's rate

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def rps(self) -> float:
        return self.ok / self.wall_s

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))] if data else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "clients": self.clients,
            "offered_rps": self.offered_rps,
            "wall_s": round(self.wall_s, 2),
            "ok": self.ok,
            "errors": dict(self.errors),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.pct(0.50), 2),
            "p90_ms": round(self.pct(0.90), 2),
            "p99_ms": round(self.pct(0.99), 2),
            "max_ms": round(max(self.latencies_ms, default=0), 2),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 2) if self.latencies_ms else None,
            "cpu_s": {k: round(v, 2) for k, v in self.cpu_s.items()},
        }


async def _timed_get(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    want: Want,
    expected: Any,
    t0: float,
    lat: list[float],
    errors: Counter[str],
) -> None:
    """One request; its latency (from `t0`) counts only when the answer is the expected one."""
    want_cache, want_tiers = want
    try:
        async with http.get(url, headers=headers) as resp:
            body = await resp.read()
    except aiohttp.ClientError as exc:
        errors[type(exc).__name__] += 1
        return
    elapsed = (time.perf_counter() - t0) * 1000
    if resp.status != 200:
        errors[f"HTTP {resp.status}"] += 1
    elif resp.headers.get("x-cache") != want_cache or resp.headers.get("x-cache-tier") not in want_tiers:
        errors[f"X-Cache {resp.headers.get('x-cache')} {resp.headers.get('x-cache-tier')}"] += 1
    elif json.loads(body)["data"] != expected:
        errors["different rows"] += 1
    else:
        lat.append(elapsed)


async def _client(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    want: Want,
    expected: Any,
    until: float,
    lat: list[float],
    errors: Counter[str],
) -> None:
    while time.perf_counter() < until:
        await _timed_get(http, url, headers, want, expected, time.perf_counter(), lat, errors)


async def _timetable(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    want: Want,
    expected: Any,
    rate: float,
    start: float,
    until: float,
    lat: list[float],
    errors: Counter[str],
) -> None:
    """Open loop: request i is due at start + i/rate whatever happened to the earlier ones, and is timed from
    that due time — a stall anywhere (server, network, this process) shows as latency instead of quietly
    sending fewer requests."""
    tasks: set[asyncio.Task[None]] = set()
    i = 0
    while (due := start + i / rate) < until:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(_timed_get(http, url, headers, want, expected, due, lat, errors))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
    if tasks:
        await asyncio.wait(tasks)


async def _load(
    base: str,
    clients: int,
    duration: float,
    headers: dict[str, str],
    want: Want,
    expected: Any,
    meter: CpuMeter,
    rate: float | None = None,
) -> tuple[float, list[float], Counter[str]]:
    url = f"{base}/analytics?" + "&".join(f"{k}={v}" for k, v in QUERY.items())
    lat: list[float] = []
    errors: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def touch() -> None:
            async with http.get(f"{base}/analytics/operations") as resp:
                await resp.read()

        # Open the connections before the clock starts: the figure is about answers, not TCP handshakes.
        await asyncio.gather(*(touch() for _ in range(clients)))
        meter.start()
        t0 = time.perf_counter()
        until = t0 + duration
        if rate is None:
            await asyncio.gather(
                *(_client(http, url, headers, want, expected, until, lat, errors) for _ in range(clients))
            )
        else:
            await _timetable(http, url, headers, want, expected, rate, t0, until, lat, errors)
        wall = time.perf_counter() - t0
        meter.stop()
    return wall, lat, errors


def run_phase(
    name: str,
    base: str,
    clients: int,
    duration: float,
    headers: dict[str, str],
    want: Want,
    expected: Any,
    pids: dict[str, tuple[int, bool]],
    rate: float | None = None,
) -> Phase:
    """Closed loop with `clients` clients, or with `rate`, an open loop at that many requests/s over at most
    `clients` connections (a request finding them all busy waits for one, and that wait is latency)."""
    meter = CpuMeter({**pids, "load generator": (os.getpid(), False)})
    how = f"{clients} clients" if rate is None else f"{rate:g} req/s offered"
    print(f"{name}: {how} for {duration:.0f} s …", flush=True)
    wall, lat, errors = asyncio.run(_load(base, clients, duration, headers, want, expected, meter, rate))
    phase = Phase(name, clients, wall, lat, errors, meter.used, rate)
    s = phase.summary()
    print(
        f"  {s['rps']} req/s  p50 {s['p50_ms']} ms  p99 {s['p99_ms']} ms  errors {s['errors'] or 0}  "
        f"cpu {s['cpu_s']}",
        flush=True,
    )
    return phase


# --------------------------------------------------------------------------------------------------
# Report


TIERS = {"memory": ("cached, memory tier", None), "dynamodb": ("cached, DynamoDB tier", 0)}
PHASES = ("memory", "dynamodb", "uncached")


def _row(s: dict[str, Any]) -> str:
    return (
        f"{s['ok']:,} | {s['rps']} | {s['p50_ms']} | {s['p90_ms']} | {s['p99_ms']} | {s['max_ms']} | "
        f"{sum(s['errors'].values())}"
    )


def _verdict(ok: bool, shown: str) -> str:
    return f"{'met' if ok else '**missed**'}: {shown}"


def targets(phases: dict[str, Phase]) -> list[tuple[str, bool]]:
    """Each API target and whether it was met, for the phases that ran."""
    out: list[tuple[str, bool]] = []
    s = {k: p.summary() for k, p in phases.items()}
    for tier in TIERS:
        if f"{tier} open" in s:
            out.append(
                (f"{tier} p99 at the offered rate", s[f"{tier} open"]["p99_ms"] <= TARGET_P99_MS[tier])
            )
    if "memory" in s:
        out.append(("memory throughput", s["memory"]["rps"] >= TARGET_RPS))
        if "uncached" in s:
            out.append(
                ("cached 10x uncached", s["uncached"]["p50_ms"] >= TARGET_SPEEDUP * s["memory"]["p50_ms"])
            )
    out.append(("zero errors", not any(p.errors for p in phases.values())))
    return out


def report(n: int, phases: dict[str, Phase], workers: int, duration: float, open_duration: float) -> str:
    s = {k: p.summary() for k, p in phases.items()}
    clients = next((p.clients for k, p in phases.items() if not k.endswith(" open")), 0)
    query = "&".join(f"{k}={v}" for k, v in QUERY.items())
    lines = [
        "# REST API benchmark",
        "",
        f"`make bench-api` (`python -m bench.api_bench`), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. uvicorn ({workers} "
        f"worker) on loopback, {n:,} entities (the analytics bench's generated data), moto server for DynamoDB "
        f"and S3, embedded PostgreSQL 18; the load generator (aiohttp) shares the same two cores. Request: "
        f"`GET /analytics?{query}`.",
        "",
        (
            "- **cached, memory tier**: the default configuration; after the first answer a request is a data "
            "version check (the cache key) and an in-process lookup."
        ),
        (
            "- **cached, DynamoDB tier**: `API_MEMORY_CACHE_BYTES=0`, so every request also reads the DynamoDB "
            "item (here from moto server, whose own CPU is counted: on AWS that work is DynamoDB's, not this "
            "machine's) — what a cold Lambda container or another worker sees first."
        ),
        (
            "- **uncached**: `Cache-Control: no-cache`, so every request runs the query under the read-only role "
            "and writes the cache item again."
        ),
        "",
        "## Latency: open loop at a fixed offered rate (the latency targets are judged here)",
        "",
        (
            f"Requests are sent on a timetable (request *i* at *t₀ + i/rate*, over up to {clients} keep-alive "
            f"connections) for {open_duration:.0f} s, whatever the earlier answers did, and each is timed from its "
            "scheduled send time: a stall delays the clock of every request due meanwhile, so queueing is in the "
            "figures rather than hidden by a client that waits before sending its next request."
        ),
        "",
        "| phase | offered req/s | answered | req/s | p50 ms | p90 ms | p99 ms | max ms | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for tier, (name, _) in TIERS.items():
        if (o := s.get(f"{tier} open")) is not None:
            lines.append(f"| {name} | {o['offered_rps']:g} | " + _row(o) + " |")
    for tier, (name, _) in TIERS.items():
        if (o := s.get(f"{tier} open")) is not None and o["rps"] < 0.95 * o["offered_rps"]:
            lines.append(
                f"\n{name}: answered {o['rps']} of {o['offered_rps']:g} req/s offered — the machine could "
                "not keep up, so the queue grew for the whole phase and its latencies are that queue's."
            )
    lines += [
        "",
        "## Throughput: closed loop (saturation)",
        "",
        (
            f"{clients} clients, each with one keep-alive connection, send requests back to back for "
            f"{duration:.0f} s per phase. The server is never idle, so this measures how many answers per second "
            f"two shared cores give; its latencies are queueing: with {clients} requests always in flight, "
            f"p50 ≈ {clients} / throughput (Little's law), whatever one answer costs. They are shown, and judged "
            "against no latency target."
        ),
        "",
        "| phase | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in PHASES:
        if (c := s.get(key)) is not None:
            lines.append(f"| {c['name']} | " + _row(c) + " |")
    lines += [
        "",
        "## Targets",
        "",
        "| target | memory tier (default) | DynamoDB tier only |",
        "|---|---|---|",
    ]
    cells = []
    for tier in TIERS:
        o = s.get(f"{tier} open")
        cells.append(
            _verdict(
                o["p99_ms"] <= TARGET_P99_MS[tier],
                f"p99 {o['p99_ms']} ms at {o['offered_rps']:g} req/s (target ≤ {TARGET_P99_MS[tier]:.0f} ms)",
            )
            if o
            else "not run"
        )
    lines.append(f"| cached p99 at the offered rate | {cells[0]} | {cells[1]} |")
    if "memory" in s:
        m = s["memory"]
        d = s.get("dynamodb")
        rps = f"{m['rps']} req/s"
        lines.append(
            f"| cached ≥ {TARGET_RPS:.0f} requests/s (closed loop) | {_verdict(m['rps'] >= TARGET_RPS, rps)} | "
            + (f"({d['rps']} req/s)" if d else "")
            + " |"
        )
        if (u := s.get("uncached")) is not None:

            def speedup(c: dict[str, Any]) -> str:
                return f"{u['p50_ms'] / c['p50_ms']:.0f}×" if c["p50_ms"] else "∞"

            lines.append(
                f"| cached ≥ {TARGET_SPEEDUP:.0f}× faster than uncached (closed-loop p50) | "
                f"{_verdict(u['p50_ms'] >= TARGET_SPEEDUP * m['p50_ms'], speedup(m))} | "
                + (speedup(d) if d else "")
                + " |"
            )
    errors = sum(sum(p.errors.values()) for p in phases.values())
    lines.append(f"| zero errors | {_verdict(not errors, f'{errors} in all phases')} | |")
    keys = list(next(iter(phases.values())).cpu_s) if phases else []
    lines += [
        "",
        (
            'CPU per answered request, in ms of one core, by process ("other": everything else on the '
            "machine in that time, e.g. other people's jobs; the last column is that as cores busy on average, "
            f"out of {os.cpu_count()}: latency measured while it is high is other people's queueing as much "
            "as ours):"
        ),
        "",
        "| phase | " + " | ".join(keys) + " | other, cores |",
        "|---|" + "---|" * (len(keys) + 1),
    ]
    for phase in phases.values():
        per = {k: v * 1000 / max(phase.ok, 1) for k, v in phase.cpu_s.items()}
        label = phase.name + (
            f", open loop {phase.offered_rps:g} req/s" if phase.offered_rps else ", closed loop"
        )
        others = phase.cpu_s.get("other", 0.0) / phase.wall_s if phase.wall_s else 0.0
        lines.append(
            f"| {label} | " + " | ".join(f"{per.get(k, 0.0):.2f}" for k in keys) + f" | {others:.2f} |"
        )
    for phase in phases.values():
        if phase.errors:
            lines.append(f"\nErrors in {phase.name}: {dict(phase.errors)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per closed-loop phase")
    ap.add_argument("--open-duration", type=float, default=60.0, help="seconds per open-loop phase")
    ap.add_argument("--open-rate-memory", type=float, default=300.0, help="offered req/s, memory tier")
    ap.add_argument(
        "--open-rate-dynamodb", type=float, default=100.0, help="offered req/s, DynamoDB tier alone"
    )
    ap.add_argument(
        "--phases",
        default="memory,memory-open,dynamodb,dynamodb-open,uncached",
        help="which phases to run (comma-separated; while iterating, e.g. memory-open,dynamodb-open)",
    )
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--output", type=Path, default=RESULTS_PATH, help="the report (- : print only)")
    args = ap.parse_args(argv)
    wanted = {w.strip() for w in args.phases.split(",") if w.strip()}
    known = {"memory", "memory-open", "dynamodb", "dynamodb-open", "uncached"}
    if not wanted <= known:
        ap.error(f"unknown phases {sorted(wanted - known)}; known: {sorted(known)}")

    phases: dict[str, Phase] = {}
    with loaded_cluster(args.entities) as cluster:
        moto = MotoServer(port=free_port(), log_path=DATA_DIR / "api-moto.log", die_with_parent=True).start()
        try:
            settings = Settings(
                DATABASE_URL=cluster.writer_url,
                READONLY_DATABASE_URL=cluster.reader_url,
                AWS_ENDPOINT_URL=moto.endpoint_url,
                AWS_REGION="us-east-1",
                PIPELINE_LOCAL_DIR=str(DATA_DIR / "api-local"),
            )
            ensure_aws_resources(settings)
            assert moto.pid is not None
            pg = {"moto": (moto.pid, False), "postgres": (cluster.postmaster_pid, True)}
            for tier, (name, memory_bytes) in TIERS.items():
                todo = [k for k in (tier, f"{tier}-open") if k in wanted]
                if tier == "dynamodb" and "uncached" in wanted:
                    todo.append("uncached")
                if not todo:
                    continue
                extra = {} if memory_bytes is None else {"API_MEMORY_CACHE_BYTES": str(memory_bytes)}
                with uvicorn_server(settings, DATA_DIR / "api-uvicorn.log", args.workers, extra) as (
                    base,
                    pid,
                ):
                    first = httpx.get(f"{base}/analytics", params=QUERY, timeout=60)
                    first.raise_for_status()
                    expected = first.json()["data"]
                    print(
                        f"{name}: first answer X-Cache {first.headers['x-cache']} "
                        f"{first.headers.get('x-cache-tier', '')}, {len(expected)} rows",
                        flush=True,
                    )
                    pids = {"uvicorn": (pid, True), **pg}
                    # With several workers, each one's first hit comes from DynamoDB.
                    tiers = ("memory", "dynamodb") if memory_bytes is None else ("dynamodb",)
                    rate = args.open_rate_memory if tier == "memory" else args.open_rate_dynamodb
                    for key in todo:
                        if key == "uncached":
                            phases[key] = run_phase(
                                "uncached",
                                base,
                                args.clients,
                                args.duration,
                                {"Cache-Control": "no-cache"},
                                ("MISS", (None,)),
                                expected,
                                pids,
                            )
                        elif key.endswith("-open"):
                            phases[f"{tier} open"] = run_phase(
                                name,
                                base,
                                args.clients,
                                args.open_duration,
                                {},
                                ("HIT", tiers),
                                expected,
                                pids,
                                rate=rate,
                            )
                        else:
                            phases[key] = run_phase(
                                name, base, args.clients, args.duration, {}, ("HIT", tiers), expected, pids
                            )
        finally:
            moto.stop()
    text = report(args.entities, phases, args.workers, args.duration, args.open_duration)
    print(text)
    if str(args.output) != "-":
        args.output.write_text(text)
        (DATA_DIR / "api_results.json").write_text(
            json.dumps({k: p.summary() for k, p in phases.items()}, indent=2)
        )
    results = targets(phases)
    for label, ok in results:
        print(f"{label}: {'met' if ok else 'MISSED'}")
    return 0 if all(ok for _, ok in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
