"""One benchmark scenario, run in its own process: `python -m bench.scenarios < spec.json`.

The parent (bench.ingest_bench) starts one child per scenario so that each peak RSS
(`getrusage(RUSAGE_SELF).ru_maxrss`) is that scenario's alone. The PostgreSQL backend serving the
child is a separate process and is NOT included; its own peak (VmHWM, mostly shared buffers it
touched) is reported apart, for information.

The result is one JSON line on stdout, prefixed with RESULT_MARKER; progress goes to stderr.

Scenarios:
- ``ours``:       `resources.ingest.runner.ingest_file` on a file registered in `ingest.files`, read
                  from the moto S3 server (`source: "s3"`) or, for the index study, from the local file
                  through a stub client (`source: "local"`). Timed from the call to its return: read →
                  parse → validate → map → COPY → merge → commit. Optional instrumentation splits the
                  time (see `Instrument`).
- ``per_record``: the old seed's way: one `INSERT … ON CONFLICT DO UPDATE` per record, one transaction.
- ``dlt``:        dlt's `merge` write disposition (primary key canonical_id) into its own tables.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from resources.ingest.merge_sql import ENTITY_UPDATE_SET

RESULT_MARKER = "BENCH_RESULT "
_TICKS = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"    [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (any user's: /proc/<pid>/stat is world-readable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def proc_peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def self_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def self_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --------------------------------------------------------------------------------------------------
# Instrumentation of the real path, without changing it: module-level names in resources.ingest.runner
# are wrapped (iter_records, map_record), and the connection's cursor_factory times each statement and
# the COPY block. Overhead: four perf_counter calls and one generator frame per record (< 1 %).
# The loader's producer (the calling thread: parse, map, format) and its worker (the connection: COPY,
# merge) run at the same time, so the worker's rows ("db: …") overlap the producer's and do not add up
# to the wall time; the loader's own phases are timed by wrapping _produce, _Merger.hand_over and
# _Merger.finish.


class Instrument:
    def __init__(self) -> None:
        self.parse = 0.0  # inside iter_records' generator: S3/file read + gunzip + ijson
        self.map = 0.0  # inside map_record
        self.statements: dict[str, float] = defaultdict(float)
        self.backend_cpu: dict[str, float] = defaultdict(float)
        self.copy_write = 0.0  # client blocked in Copy.write (sending to the server)
        self.copy_end = 0.0  # end of COPY: the server finishing the staging rows
        self.copy_block = 0.0  # the whole `with cur.copy(...)` block
        self.produce = 0.0  # the loader's producer, first record to last hand-over
        self.blocked = 0.0  # producer waiting to hand a chunk over (the worker still busy)
        self.tail = 0.0  # waiting for the worker after the last record
        self.backend_pid: int | None = None

    def backend_cpu_now(self) -> float:
        return proc_cpu_seconds(self.backend_pid) if self.backend_pid else 0.0

    def install(self, conn: psycopg.Connection) -> None:
        import resources.ingest.runner as runner

        real_iter, real_map, inst = runner.iter_records, runner.map_record, self

        def timed_iter_records(key: str, open_body: Any, *args: Any, **kw: Any) -> Iterator[Any]:
            it = real_iter(key, open_body, *args, **kw)
            clock = time.perf_counter
            while True:
                t = clock()
                try:
                    rec = next(it)
                except StopIteration:
                    inst.parse += clock() - t
                    return
                inst.parse += clock() - t
                yield rec

        def timed_map(source: str, record: Any, *args: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            out = real_map(source, record, *args, **kw)
            inst.map += time.perf_counter() - t
            return out

        runner.iter_records = timed_iter_records
        runner.map_record = timed_map
        self._time_loader_phases()
        self.backend_pid = conn.info.backend_pid
        conn.cursor_factory = _timed_cursor_class(self)

    def _time_loader_phases(self) -> None:
        from resources.ingest import loader
        from resources.ingest.chunks import ChunkWorker

        real_produce, real_hand_over, real_finish = loader.produce, ChunkWorker.hand_over, ChunkWorker.finish
        inst = self

        def produce(*args: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return real_produce(*args, **kw)
            finally:
                inst.produce += time.perf_counter() - t

        def hand_over(merger: Any, chunk: Any) -> None:
            t = time.perf_counter()
            try:
                real_hand_over(merger, chunk)
            finally:
                inst.blocked += time.perf_counter() - t

        def finish(merger: Any) -> None:
            t = time.perf_counter()
            try:
                real_finish(merger)
            finally:
                inst.tail += time.perf_counter() - t

        loader.produce = produce  # type: ignore[assignment]
        ChunkWorker.hand_over = hand_over  # type: ignore[method-assign]
        ChunkWorker.finish = finish  # type: ignore[method-assign]

    def breakdown(self, total: float) -> dict[str, float]:
        """Seconds per phase. The producer's rows, the tail and "after the records" add up to `total`;
        the "db: …" rows (the worker's COPY and statements, and the final merge when the file was merged
        whole) overlap the producer's."""
        format_python = self.produce - self.parse - self.map - self.blocked
        out = {
            "parse (read+ijson)": self.parse,
            "map+validate": self.map,
            "format COPY rows (loader Python)": max(format_python, 0.0),
            "producer blocked handing a chunk over": self.blocked,
            "tail: worker busy after the last record": self.tail,
            "after the records: final merge if whole, refusals, outcome, commit": max(
                total - self.produce - self.tail, 0.0
            ),
            "db: COPY staging (worker)": self.copy_block,
        }
        out.update({f"db: {k}": v for k, v in self.statements.items()})
        return {k: round(v, 3) for k, v in out.items()}


_LABELS = (
    ("UPDATE ingest.files SET status = 'loading'", "claim file"),
    ("CREATE TEMP TABLE staging", "staging DDL"),
    ("ANALYZE staging_entities", "ANALYZE staging"),
    ("DELETE FROM staging_entities s WHERE NOT EXISTS", "claim source order"),
    ("ANALYZE staging_keep", "claim source order"),
    ("DELETE FROM staging_entities", "drop in-file duplicates"),
    ("WITH merged AS", "merge entities (+history)"),
    ("INSERT INTO canonical.entities", "merge entities (+history)"),
    ("WITH incoming AS", "claim source order"),
    ("UPDATE canonical.entity_relationships", "relationships"),
    ("INSERT INTO canonical.entity_relationships", "relationships"),
    ("SELECT canonical.ensure_time_series_partitions", "time series"),
    ("INSERT INTO canonical.time_series_data", "time series"),
    ("UPDATE ingest.data_version", "data_version + file outcome"),
    ("UPDATE ingest.files SET status = 'loaded'", "data_version + file outcome"),
    ("COPY ingest.rejected_records", "COPY refused records"),
    ("COPY staging_metrics", "time series"),
    ("SELECT pg_advisory_xact_lock", "load lock"),
    ("SELECT xmin::text FROM staging_entities", "claim source order"),
    ("SELECT EXISTS (SELECT 1 FROM staging_entities s JOIN file_lost", "claim source order"),
    ("TRUNCATE staging_entities", "empty staging after a chunk"),
)


def _label(query: Any) -> str:
    text = " ".join(
        str(query if isinstance(query, str) else getattr(query, "as_string", lambda: query)()).split()
    )
    for prefix, label in _LABELS:
        if text.startswith(prefix):
            return label
    return text[:40]


class _TimedCopy:
    def __init__(self, copy: Any, inst: Instrument) -> None:
        self._copy, self._inst = copy, inst

    def write(self, data: Any) -> None:
        t = time.perf_counter()
        self._copy.write(data)
        self._inst.copy_write += time.perf_counter() - t

    def __getattr__(self, name: str) -> Any:
        return getattr(self._copy, name)


def _timed_cursor_class(inst: Instrument) -> type[psycopg.Cursor]:
    class TimedCursor(psycopg.Cursor):
        def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:  # type: ignore[override]
            label = _label(query)
            c0, t0 = inst.backend_cpu_now(), time.perf_counter()
            try:
                return super().execute(query, params, **kw)
            finally:
                inst.statements[label] += time.perf_counter() - t0
                inst.backend_cpu[label] += inst.backend_cpu_now() - c0

        @contextmanager
        def copy(self, statement: Any, params: Any = None, **kw: Any) -> Iterator[Any]:  # type: ignore[override]
            label = _label(statement)
            main = label.startswith("COPY staging_entities")
            c0, t0 = inst.backend_cpu_now(), time.perf_counter()
            with super().copy(statement, params, **kw) as cp:
                yield _TimedCopy(cp, inst) if main else cp
                t_end = time.perf_counter()
            t1 = time.perf_counter()
            if main:
                inst.copy_block += t1 - t0
                inst.copy_end += t1 - t_end
                inst.backend_cpu["COPY staging (whole block)"] += inst.backend_cpu_now() - c0
            else:
                inst.statements[label] += t1 - t0

    return TimedCursor


# --------------------------------------------------------------------------------------------------
# Scenarios


class _LocalS3:
    """Just enough of an S3 client for ingest_file: get_object on a local file (index study)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def get_object(self, Bucket: str, Key: str, IfMatch: str | None = None, Range: str | None = None) -> dict:
        body = open(self.path, "rb")  # noqa: SIM115 - the caller reads and drops it, as botocore's body
        if Range is not None:  # only the suffix form the loader asks for: "bytes=-N"
            body.seek(max(os.path.getsize(self.path) - int(Range.removeprefix("bytes=-")), 0))
        return {"Body": body}


def run_ours(spec: dict) -> dict:
    from resources.ingest.registry import FileObject, register_files
    from resources.ingest.runner import ingest_file

    if spec["source"] == "s3":
        from resources.clients.aws import aws_client
        from resources.settings import Settings

        settings = Settings(AWS_ENDPOINT_URL=spec["endpoint_url"], AWS_REGION="us-east-1")
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        s3 = aws_client("s3", settings)
    else:
        s3 = _LocalS3(spec["path"])
    bucket = spec.get("bucket", "bench-raw")
    with psycopg.connect(spec["writer_url"]) as conn:
        [row] = register_files(conn, [FileObject(spec["key"], spec["etag"], spec["size"])], via="bench")
        conn.commit()
        inst = Instrument() if spec.get("instrument", True) else None
        if inst:
            inst.install(conn)
        backend_pid = conn.info.backend_pid
        cpu0, bcpu0 = self_cpu_seconds(), proc_cpu_seconds(backend_pid)
        log(f"ours: ingest_file {spec['key']} (source {spec['source']})")
        t0 = time.perf_counter()
        outcome = ingest_file(conn, s3, bucket, row, run_id=f"bench-{spec['name']}")
        wall = time.perf_counter() - t0
        if not outcome.ok:
            raise RuntimeError(f"ingest failed: {outcome.error or outcome.skipped}")
        result = outcome.result
        assert result is not None
        out = {
            "wall_s": wall,
            "records": result.received,
            "self_cpu_s": self_cpu_seconds() - cpu0,
            "backend_cpu_s": proc_cpu_seconds(backend_pid) - bcpu0,
            "backend_peak_rss_mb": proc_peak_rss_mb(backend_pid),
            "counts": {
                k: getattr(result, k)
                for k in (
                    "received",
                    "inserted",
                    "updated",
                    "unchanged",
                    "rejected",
                    "duplicates",
                    "superseded",
                )
            },
            "loader_seconds": result.seconds,
        }
        if inst:
            out["breakdown"] = inst.breakdown(wall)
            out["backend_cpu_by_phase"] = {k: round(v, 2) for k, v in inst.backend_cpu.items()}
    return out


_UPSERT = (
    """
INSERT INTO canonical.entities AS e
    (entity_type, source_system, canonical_id, name, industry, revenue, employees, attributes, attributes_hash,
     metadata)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s::jsonb)
ON CONFLICT (canonical_id) DO UPDATE
    SET """
    + ENTITY_UPDATE_SET
    + """, version = e.version + 1, updated_at = now()
    WHERE e.attributes_hash IS DISTINCT FROM EXCLUDED.attributes_hash
"""
)


def _mapped_local(spec: dict) -> Iterator[Any]:
    from resources.canonical.mapping import map_record
    from resources.ingest.parsing import iter_records

    for rec in iter_records(spec["key"], lambda: open(spec["path"], "rb")):  # noqa: SIM115
        yield map_record("crm", rec)


def _metadata(spec: dict, rec: Any) -> dict:
    from resources.sources.catalogue import get_sources

    return {
        "source_key": spec["key"],
        "source_id": rec.source_id,
        "run_id": f"bench-{spec['name']}",
        "data_quality": rec.data_quality,
        "transformation_version": get_sources().source("crm").transformation_version,
    }


def run_per_record(spec: dict) -> dict:
    from resources.canonical.model import CanonicalRecord

    received = loaded = refused = 0
    with psycopg.connect(spec["writer_url"]) as conn:
        backend_pid = conn.info.backend_pid
        cpu0, bcpu0 = self_cpu_seconds(), proc_cpu_seconds(backend_pid)
        log(f"per-record upsert: {spec['path']}")
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            for rec in _mapped_local(spec):
                received += 1
                if not isinstance(rec, CanonicalRecord):
                    refused += 1  # the seed logged and skipped bad records
                    continue
                cur.execute(
                    _UPSERT,
                    (
                        rec.entity_type,
                        rec.source_system,
                        rec.canonical_id,
                        rec.name,
                        rec.industry,
                        rec.revenue,
                        rec.employees,
                        rec.attributes_json,
                        rec.attributes_hash,
                        json.dumps(_metadata(spec, rec)),
                    ),
                )
                loaded += cur.rowcount
                if received % 100_000 == 0:
                    log(f"  {received:,} records, {received / (time.perf_counter() - t0):,.0f}/s")
        conn.commit()
        wall = time.perf_counter() - t0
        return {
            "wall_s": wall,
            "records": received,
            "self_cpu_s": self_cpu_seconds() - cpu0,
            "backend_cpu_s": proc_cpu_seconds(backend_pid) - bcpu0,
            "backend_peak_rss_mb": proc_peak_rss_mb(backend_pid),
            "counts": {"received": received, "upserted": loaded, "rejected": refused},
        }


def run_dlt(spec: dict) -> dict:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    import dlt

    from resources.canonical.model import CanonicalRecord

    counts = {"received": 0, "rejected": 0}

    @dlt.resource(
        name="entities",
        write_disposition="merge",
        primary_key="canonical_id",
        columns={"attributes": {"data_type": "json"}, "metadata": {"data_type": "json"}},
    )
    def entities() -> Iterator[list[dict]]:
        page: list[dict] = []
        for rec in _mapped_local(spec):
            counts["received"] += 1
            if not isinstance(rec, CanonicalRecord):
                counts["rejected"] += 1
                continue
            page.append(
                {
                    "canonical_id": rec.canonical_id,
                    "entity_type": rec.entity_type,
                    "source_system": rec.source_system,
                    "name": rec.name,
                    "industry": rec.industry,
                    "revenue": rec.revenue,
                    "employees": rec.employees,
                    "attributes": rec.attributes,
                    "attributes_hash": rec.attributes_hash.hex(),
                    "metadata": _metadata(spec, rec),
                }
            )
            if len(page) >= 1000:
                yield page
                page = []
        if page:
            yield page

    pipeline = dlt.pipeline(
        # The reload names the first load's pipeline: dlt merges into the table that load made.
        pipeline_name=spec.get("pipeline", f"bench_{spec['name']}"),
        pipelines_dir=spec["pipelines_dir"],
        destination=dlt.destinations.postgres(credentials=spec["owner_url"]),
        dataset_name="dlt_bench",
    )
    cpu0 = self_cpu_seconds()
    log(f"dlt merge: {spec['path']}")
    t0 = time.perf_counter()
    info = pipeline.run(entities())
    wall = time.perf_counter() - t0
    info.raise_on_failed_jobs()
    with psycopg.connect(spec["owner_url"]) as conn:
        rows = conn.execute("SELECT count(*) FROM dlt_bench.entities").fetchone()[0]
    counts["rows_in_table"] = rows
    return {
        "wall_s": wall,
        "records": counts["received"],
        "self_cpu_s": self_cpu_seconds() - cpu0,
        "counts": counts,
        "dlt_version": dlt.__version__,
        "steps": {k: round(v, 2) for k, v in _dlt_steps(pipeline).items()},
    }


def _dlt_steps(pipeline: Any) -> dict[str, float]:
    try:
        trace = pipeline.last_trace
        return {
            s.step: (s.finished_at - s.started_at).total_seconds()
            for s in trace.steps
            if s.finished_at and s.started_at
        }
    except Exception:  # noqa: BLE001 - informative only
        return {}


def main() -> None:
    spec = json.loads(sys.stdin.read())
    runner = {"ours": run_ours, "per_record": run_per_record, "dlt": run_dlt}[spec["scenario"]]
    out = runner(spec)
    out["peak_rss_mb"] = self_peak_rss_mb()
    out["name"] = spec["name"]
    print(RESULT_MARKER + json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    main()
