"""Golden resolution end to end: from canonical.entities in PostgreSQL to golden ids committed there.

`python -m bench.resolution_bench --part pipeline --records N --delta D` (or this module's main) starts
its own embedded PostgreSQL (bench/.data/golden-pg, fresh each run), applies the migrations and loads N
labelled company records (bench/resolution_data.py, seed 7) into canonical.entities through the real
loader (`load_records`, one file per source; not timed). Then, each in its own process so that its peak
RSS is its own, it times `resources.golden.run.resolve_store` (what the asset runs):

1. a full resolution (the active model: the shipped one, as on a first run), per phase;
2. a second full run with no change: golden ids changed must be 0;
3. a delta of D records (edits of revenue and names, and new twins of existing companies in another
   system), loaded through `load_records`, then an incremental run timed from the end of that load to
   the ids committed; which golden entities changed, against the ones the delta's records touch;
4. a full run on the same data after it: the incremental run's result must be the full run's (0 ids
   changed).

Accuracy: pairwise precision and recall of the membership after run 1 against the generator's truth.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

# The ingest bench's server settings (2 cores, 24 GiB; durable defaults): the 1M-entity table fits.
from bench.ingest_bench import PG_SETTINGS

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / ".data" / "golden-pg"
DB = "canonical"
PREPARED_STORE = BENCH_DIR / ".data" / "golden-prepared.duckdb"
PREPARED_STORE_ENV = "GOLDEN_BENCH_PREPARED_STORE"
T0 = datetime(2026, 1, 5, tzinfo=UTC)
SOURCES = ("crm", "erp", "legacy")
FIELDS = ("industry", "revenue", "employees", "country", "email", "website", "phone", "address")


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def _log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


# --- the data, as the sources export it ---------------------------------------------------------------


def _source_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A generated row as its source system's export holds it (the shipped definitions' field names)."""
    source_id = str(row["canonical_id"]).split("_", 1)[1]
    rec: dict[str, Any] = {"id": source_id, "name": row["name"]}
    for k in FIELDS:
        v = row.get(k)
        if v is not None and not (isinstance(v, float) and v != v):
            rec[k] = v
    parent = row.get("parent_canonical_id")
    if isinstance(parent, str) and parent:
        rec["parent_id"] = parent.split("_", 1)[1]
    return rec


def _load_files(url: str, by_source: Mapping[str, list[dict[str, Any]]], tag: str, at: datetime) -> float:
    """Each source's records as one file through `load_records`, committed; returns the wall seconds."""
    from resources.canonical.coded import coding
    from resources.canonical.mapping import map_record
    from resources.ingest.loader import load_records
    from resources.ingest.registry import FileObject, register_files
    from resources.sources.catalogue import get_sources

    t = time.perf_counter()
    with psycopg.connect(url) as conn:
        for source, records in by_source.items():
            if not records:
                continue
            compiled = get_sources().source(source)
            coded = coding(compiled)
            [row] = register_files(
                conn,
                [FileObject(f"{source}-data/{tag}.json", f"{tag}-{source}", len(records), at)],
                via="bench",
            )
            conn.commit()
            mapped = (map_record(compiled, r, coded=coded) for r in records)
            with conn.transaction():
                out = load_records(
                    conn,
                    mapped,
                    file_id=row.file_id,
                    attempt=1,
                    source_key=f"{source}-data/{tag}.json",
                    run_id=f"bench-{tag}",
                    transformation_version=compiled.transformation_version,
                    file_at=lambda: at,
                )
            _log(f"  {source}: {out.received:,} received, {out.inserted:,} inserted, {out.updated:,} updated")
    return time.perf_counter() - t


def _delta(
    data: Any, n: int, seed: int = 11
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str], dict[str, int]]:
    """n records: 40 % revenue edits, 20 % name edits of existing records, 40 % new twins of existing
    companies in a system that does not hold them yet. Returns the files, the new records' truth and
    the counts of each kind."""
    rng = random.Random(seed)
    rows = data.to_dict("records")
    by_entity: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_entity[str(r["entity_id"])].append(r)
    files: dict[str, list[dict[str, Any]]] = {s: [] for s in SOURCES}
    truth: dict[str, str] = {}
    picked = rng.sample(range(len(rows)), n)
    kinds = {"revenue_edits": 0, "name_edits": 0, "new_twins": 0}
    # Past every id the generator gives (it counts up from 500000, 600000, 700000 per source).
    next_id = {"crm": 50_000_000, "erp": 60_000_000, "legacy": 70_000_000}
    for i, idx in enumerate(picked):
        r = dict(rows[idx])
        source = str(r["source_system"])
        share = i / n
        if share < 0.4:
            revenue = r.get("revenue")
            r["revenue"] = round(
                (revenue if revenue == revenue and revenue else 1e6) * rng.uniform(0.8, 1.25), 2
            )
            kinds["revenue_edits"] += 1
        elif share < 0.6:
            name = str(r["name"])
            r["name"] = name.upper() if rng.random() < 0.5 else name.replace(" ", "  ", 1) + " "
            kinds["name_edits"] += 1
        else:
            held = {str(x["source_system"]) for x in by_entity[str(r["entity_id"])]}
            free = [s for s in SOURCES if s not in held] or [s for s in SOURCES if s != source]
            source = rng.choice(free)
            next_id[source] += 1
            sid = (
                f"CUST-{next_id[source]}"
                if source == "crm"
                else (f"ERP-{next_id[source]}" if source == "erp" else str(next_id[source]))
            )
            r["canonical_id"] = f"{source}_{sid}"
            r["source_system"] = source
            r["name"] = str(r["name"]).title()
            r["parent_canonical_id"] = None
            truth[r["canonical_id"]] = str(r["entity_id"])
            kinds["new_twins"] += 1
        files[source].append(_source_record(r))
    return files, truth, kinds


# --- measuring ---------------------------------------------------------------------------------------


def _membership(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT canonical_id, golden_id FROM golden.members").fetchall())


def _changed_ids(before: Mapping[str, str], after: Mapping[str, str]) -> set[str]:
    """Golden ids whose set of members differs (created and retired ones included)."""
    groups_before: dict[str, set[str]] = defaultdict(set)
    groups_after: dict[str, set[str]] = defaultdict(set)
    for c, g in before.items():
        groups_before[g].add(c)
    for c, g in after.items():
        groups_after[g].add(c)
    return {
        g for g in groups_before.keys() | groups_after.keys() if groups_before.get(g) != groups_after.get(g)
    }


def _timed_run(url: str, mode: str) -> dict[str, Any]:
    """One resolve_store in a child process: its own peak RSS."""
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "bench.golden_pipeline_bench", "--step", mode, "--url", url],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the {mode} run failed:\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - t
    return result


def step(url: str, mode: str) -> dict[str, Any]:
    """The measured run itself (in the child): imports, then resolve_store from reading PostgreSQL to
    the commit."""
    from bench.resolution_bench import _rss_gb
    from resources.golden.run import NotResolved, resolve_store
    from resources.resolution.config import ResolutionConfig
    from resources.resolution.resolve import resolve  # noqa: F401 - imported before the clock starts

    rss_imports = _rss_gb()
    # GOLDEN_BENCH_PROFILE=DIR: each run's cProfile statistics into DIR/<mode>-<time>.prof.
    profile_dir = os.environ.get("GOLDEN_BENCH_PROFILE")
    profiler = cProfile.Profile() if profile_dir else None
    with psycopg.connect(url) as conn:
        t = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        done = resolve_store(
            conn,
            ResolutionConfig(),
            run_id=f"bench-{mode}-{time.time_ns()}",
            mode=mode,  # type: ignore[arg-type]
            prepared_store=Path(kept) if (kept := os.environ.get(PREPARED_STORE_ENV)) else None,
        )
        if profiler is not None:
            profiler.disable()
        total = time.perf_counter() - t
    if profiler is not None and profile_dir:
        profiler.dump_stats(str(Path(profile_dir) / f"{mode}-{time.time_ns()}.prof"))
    if isinstance(done, NotResolved):
        raise RuntimeError(done.reason)
    s = done.summary
    return {
        "mode": done.mode,
        "total_s": total,
        "timings": done.timings,
        "entities": done.entities,
        "entities_scored": done.entities_scored,
        "entities_written": s.entities,
        "pairs": s.pairs,
        "ids_created": s.ids_created,
        "ids_retired": s.ids_retired,
        "members_moved": s.members_moved,
        "records_written": s.records_written,
        "model_version": done.model_version,
        "prepared_store": done.prepared_store,
        "rss_after_imports_gb": rss_imports,
        "rss_gb": _rss_gb(),
        "load": _load(),
    }


def part_pipeline(
    records: int, delta: int, *, splink: bool = True, prepared_store: bool = True
) -> dict[str, Any]:
    from bench.resolution_bench import _accuracy
    from bench.resolution_data import generate
    from pipeline_defs.devstack.postgres import LocalPostgres
    from pipeline_defs.devstack.processes import free_port
    from resources.schema.migrate import apply_migrations

    result: dict[str, Any] = {
        "records": records,
        "delta": delta,
        "load_at_start": _load(),
        "prepared_store": prepared_store,
    }
    # The runs keep a prepared store (what the asset does by default), fresh for this bench: the full
    # runs write it, the incremental run starts from it.
    PREPARED_STORE.unlink(missing_ok=True)
    if prepared_store:
        os.environ[PREPARED_STORE_ENV] = str(PREPARED_STORE)
    else:
        os.environ.pop(PREPARED_STORE_ENV, None)
    data = generate(records, seed=7).records
    truth = dict(zip(data["canonical_id"], data["entity_id"].astype(str), strict=True))
    by_source: dict[str, list[dict[str, Any]]] = {s: [] for s in SOURCES}
    for row in data.to_dict("records"):
        by_source[str(row["source_system"])].append(_source_record(row))
    if DATA_DIR.exists():
        shutil.rmtree(DATA_DIR)
    server = LocalPostgres(DATA_DIR, port=free_port(), settings=PG_SETTINGS)
    server.start()
    try:
        server.ensure_database(DB)
        url = server.url(DB)
        apply_migrations(url)
        _log(f"loading {len(data):,} records through load_records")
        result["setup_load_s"] = _load_files(url, by_source, "initial", T0)
        del by_source
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")  # what autovacuum does on a live server after a load
            result["entities"] = conn.execute("SELECT count(*) FROM canonical.entities").fetchone()[0]  # type: ignore[index]

        _log("run 1: full")
        result["full"] = first = _timed_run(url, "full")
        after_first = _membership(url)
        result["accuracy"] = _accuracy(after_first, {c: truth[c] for c in after_first})
        _log(f"  {first['total_s']:.1f} s, peak RSS {first['rss_gb']:.2f} GB")

        _log("run 2: full, no change")
        result["full_again"] = again = _timed_run(url, "full")
        after_again = _membership(url)
        again["golden_ids_changed"] = len(_changed_ids(after_first, after_again))
        again["membership_identical"] = after_again == after_first
        _log(f"  {again['total_s']:.1f} s, {again['golden_ids_changed']} ids changed")

        files, new_truth, kinds = _delta(data, delta)
        del data
        delta_ids = {f"{s}_{r['id']}" for s, rs in files.items() for r in rs}
        _log(f"delta: {kinds}")
        loaded_s = _load_files(url, files, "delta", T0 + timedelta(days=1))
        end_of_load = time.perf_counter()
        inc = _timed_run(url, "incremental")
        inc["from_end_of_load_s"] = time.perf_counter() - end_of_load
        inc["delta_load_s"] = loaded_s
        inc["delta_kinds"] = kinds
        after_inc = _membership(url)
        changed = _changed_ids(after_again, after_inc)
        # The delta's golden entities: those its records were in and are in now, and what those held
        # before or hold now (a split's new part, a merge's retired id).
        was = {after_again[c] for c in delta_ids if c in after_again}
        now = {after_inc[c] for c in delta_ids}
        touched = was | now
        touched |= {after_inc[c] for c, g in after_again.items() if g in was and c in after_inc}
        touched |= {after_again[c] for c, g in after_inc.items() if g in now and c in after_again}
        inc["golden_ids_changed"] = len(changed)
        inc["delta_golden_ids"] = len(touched)
        inc["changed_outside_delta_golden_ids"] = len(changed - touched)
        _log(
            f"  incremental {inc['total_s']:.1f} s in the run, {inc['from_end_of_load_s']:.1f} s from the end of "
            f"the load; {len(changed)} ids changed, {len(changed - touched)} outside the delta's"
        )
        result["incremental"] = inc
        truth.update(new_truth)
        result["accuracy_after_delta"] = _accuracy(after_inc, {c: truth[c] for c in after_inc})

        _log("run 4: full after the incremental run")
        result["full_after_incremental"] = check = _timed_run(url, "full")
        check["golden_ids_changed"] = len(_changed_ids(after_inc, _membership(url)))
        _log(f"  {check['total_s']:.1f} s, {check['golden_ids_changed']} ids changed")
    finally:
        server.stop()
    if splink:
        from bench.resolution_bench import _run

        _log("Splink alone on the same data")
        result["splink"] = _run("splink", "--records", str(records))
    result["load_at_end"] = _load()
    return result


def write_section(result: Mapping[str, Any]) -> list[str]:
    """bench/resolution_results.md's section for this part."""
    full, again, inc = result["full"], result["full_again"], result["incremental"]
    check = result["full_after_incremental"]
    phases = list(dict.fromkeys([*full["timings"], *inc["timings"]]))
    lines = [
        f"## End to end from PostgreSQL at {result['entities']:,} entities: golden ids committed",
        "",
        "`python -m bench.resolution_bench --part pipeline` (bench/golden_pipeline_bench.py): the entities",
        "loaded through `load_records` into the project's embedded PostgreSQL; each run is",
        "`resources.golden.run.resolve_store` (what canonical/golden_entities runs) in its own process: from",
        "reading canonical.entities to the golden ids committed, scored with the shipped model. Load average",
        f"at the start {result['load_at_start']}, at the end {result['load_at_end']}.",
        "",
        "| run | total s | peak RSS GB | entities scored | ids created | ids retired | members moved | records rebuilt | golden ids changed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in (
        ("full", full),
        ("full, no change", again),
        (
            f"incremental after {result['delta']:,} records (from the end of their load: {inc['from_end_of_load_s']:.1f} s)",
            inc,
        ),
        ("full after the incremental run", check),
    ):
        lines.append(
            f"| {label} | {r['total_s']:.1f} | {r['rss_gb']:.2f} | {r['entities_scored']:,} | {r['ids_created']:,} "
            f"| {r['ids_retired']:,} | {r['members_moved']:,} | {r['records_written']:,} "
            f"| {r.get('golden_ids_changed', '–')} |"
        )
    lines += [
        "",
        f"Incremental: {inc['golden_ids_changed']:,} golden ids changed, {inc['delta_golden_ids']:,} golden entities "
        f"held a delta record before or after (or took in one that did); changed outside them: "
        f"{inc['changed_outside_delta_golden_ids']}. Delta: {inc['delta_kinds']}.",
        "",
        "| phase | full s | no change s | incremental s |",
        "|---|---:|---:|---:|",
    ]
    for p in phases:
        cells = [r["timings"].get(p) for r in (full, again, inc)]
        lines.append(f"| {p} | " + " | ".join("–" if c is None else f"{c:.2f}" for c in cells) + " |")
    acc = result["accuracy"]
    lines += [
        "",
        f"Accuracy of the committed membership: precision {acc['precision']:.4f}, recall {acc['recall']:.4f}, "
        f"entities clustered exactly {acc['entities_exactly_clustered']:.4f} "
        f"({acc['true_pairs']:,} true pairs, {acc['predicted_pairs']:,} predicted).",
    ]
    spl = result.get("splink")
    if spl:
        sa = spl["accuracy"]
        lines.append(
            f"Splink alone on the same data in the same run (from a DataFrame, no PostgreSQL): "
            f"{spl['total_s']:.1f} s (train {spl['timings']['train']:.1f}, predict {spl['timings']['predict']:.1f}, "
            f"cluster {spl['timings']['cluster']:.1f}), peak RSS {spl['rss_gb']:.2f} GB, precision "
            f"{sa['precision']:.4f}, recall {sa['recall']:.4f}."
        )
    lines.append("")
    return lines


SECTION_HEAD = "## End to end from PostgreSQL"


def replace_section(path: Path, result: Mapping[str, Any]) -> None:
    """Put this part's section into an existing report, in place of the one there (or at the end)."""
    lines = path.read_text().splitlines() if path.exists() else []
    start = next((i for i, x in enumerate(lines) if x.startswith(SECTION_HEAD)), None)
    if start is None:
        kept, rest = lines, []
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        kept, rest = lines[:start], lines[end:]
    if kept and kept[-1] != "":
        kept.append("")
    path.write_text("\n".join([*kept, *write_section(result), *rest]).rstrip("\n") + "\n")


def _main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step", choices=["full", "incremental", "auto"])
    ap.add_argument("--url")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--delta", type=int, default=10_000)
    ap.add_argument("--no-splink", action="store_true")
    ap.add_argument("--no-prepared-store", action="store_true")
    args = ap.parse_args()
    if args.step:
        print(json.dumps(step(args.url, args.step)))
    else:
        print(
            json.dumps(
                part_pipeline(
                    args.records,
                    args.delta,
                    splink=not args.no_splink,
                    prepared_store=not args.no_prepared_store,
                )
            )
        )


if __name__ == "__main__":
    _main()
