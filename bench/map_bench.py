"""The client's per-record work of a load, without the database: `python -m bench.map_bench [--records N]`.

Parses the first N records of the ingest benchmark's changed file (bench/.data/, made by
`bench.datagen` when missing) into memory, then times, over those parsed records, the steps the
loader's producer thread runs on each (resources/ingest/runner.py `_mapped`, chunks.py `produce`):

- map:     `map_record` with the file's compiled coding
- shape:   the shape profiler watching the records, then its `finish`
- copy:    the COPY text row of each mapped record
- all:     the three together, as a load runs them

Parsing is left out (it is ijson's, the same before and after a change to the mapping). Each figure is
the best of `--repeat` passes (records per second of the client's CPU, one core). `--profile` prints a
cProfile of one "all" pass instead.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.datagen import ensure_files
from resources.canonical.coded import coding
from resources.canonical.mapping import map_record
from resources.canonical.model import CanonicalRecord
from resources.ingest.copy_text import entity_row
from resources.ingest.drift import profiler_for
from resources.ingest.parsing import iter_records
from resources.sources.catalogue import get_sources

DATA_DIR = Path(__file__).resolve().parent / ".data"
SOURCE = "crm"


def parsed(path: Path, n: int) -> list[Any]:
    return list(itertools.islice(iter_records(path.name, lambda: path.open("rb")), n))


def passes(records: list[Any]) -> dict[str, Callable[[], object]]:
    src = get_sources().source(SOURCE)

    def mapped(rs: Any) -> Iterator[Any]:
        coded = coding(src)
        for r in rs:
            yield map_record(src, r, json_types_only=True, coded=coded)

    def run_map() -> object:
        return sum(1 for _ in mapped(records))

    def run_shape() -> object:
        profiler = profiler_for(src)
        for _ in profiler.watch(records):
            pass
        return profiler.finish()

    def run_copy_rows(results: list[Any]) -> Callable[[], object]:
        def run() -> object:
            return sum(len(entity_row(i, r)) for i, r in enumerate(results) if isinstance(r, CanonicalRecord))

        return run

    def run_all() -> object:
        profiler = profiler_for(src)
        size = 0
        for i, r in enumerate(mapped(profiler.watch(records))):
            if isinstance(r, CanonicalRecord):
                size += len(entity_row(i, r))
        profiler.finish()
        return size

    results = list(mapped(records))
    return {"map": run_map, "shape": run_shape, "copy": run_copy_rows(results), "all": run_all}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.map_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=200_000, help="records parsed and timed (default 200,000)")
    p.add_argument("--repeat", type=int, default=3, help="passes per step; the best counts (default 3)")
    p.add_argument("--only", choices=["map", "shape", "copy", "all"], action="append")
    p.add_argument("--profile", action="store_true", help="print a cProfile of one 'all' pass")
    args = p.parse_args(argv)
    files = ensure_files(DATA_DIR, 1_000_000, 42, log=print)
    records = parsed(files.changed, args.records)
    steps = passes(records)
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(steps["all"])
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return 0
    for name in args.only or list(steps):
        best = min(_timed(steps[name]) for _ in range(args.repeat))
        print(f"{name:6} {len(records) / best:>10,.0f} rec/s  ({best:.3f} s for {len(records):,})")
    return 0


def _timed(fn: Callable[[], object]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


if __name__ == "__main__":
    raise SystemExit(main())
