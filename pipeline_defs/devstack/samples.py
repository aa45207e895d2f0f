"""The repository's samples on the dev stack: `samples/<source>-data/*` uploaded to the raw bucket, then
a bounded wait until the landing sensor and the ingest runs have recorded an outcome for each, and a
table of what became of them. Re-uploaded samples have the same bytes, hence the same ETags, so a
second start does not ingest them again."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import psycopg

from pipeline_defs.cli_format import format_files
from resources.contract import DONE_STATUSES
from resources.settings import Settings
from resources.sources.catalogue import get_sources

# (object key, ETag) of an uploaded sample; `ingest.files` knows a file by both.
Upload = tuple[str, str]


def sample_files(root: Path) -> list[tuple[Path, str]]:
    """(path, object key) for every file under samples/<source>-data/."""
    out = []
    for prefix in get_sources().prefixes:
        folder = root / "samples" / prefix.rstrip("/")
        if folder.is_dir():
            for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
                out.append((path, prefix + path.relative_to(folder).as_posix()))
    return out


def upload_samples(settings: Settings, root: Path, echo: Callable[[str], None]) -> list[Upload]:
    from resources.clients.aws import aws_client

    files = sample_files(root)
    if not files:
        echo("• samples: none found under samples/<source>-data/")
        return []
    s3 = aws_client("s3", settings)
    uploaded = []
    for path, key in files:
        etag = s3.put_object(Bucket=settings.raw_bucket, Key=key, Body=path.read_bytes())["ETag"]
        uploaded.append((key, etag.strip('"')))
    echo(
        f"• samples: uploaded {len(files)} file(s) to s3://{settings.raw_bucket}/ "
        f"({', '.join(sorted({k.split('/')[0] for k, _ in uploaded}))})"
    )
    return uploaded


def _file_states(database_url: str, uploaded: list[Upload]) -> dict[Upload, tuple[int, str, datetime]]:
    keys = [k for k, _ in uploaded]
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT s3_key, etag, file_id, status, discovered_at FROM ingest.files WHERE s3_key = ANY(%s)",
                (keys,),
            ).fetchall()
    except psycopg.Error:
        return {}
    return {(k, e): (fid, st, at) for k, e, fid, st, at in rows}


def wait_for_ingest(
    settings: Settings,
    uploaded: list[Upload],
    *,
    wait_seconds: float,
    started_at: datetime,
    ui_url: str,
    check_alive: Callable[[], None],
    echo: Callable[[str], None],
) -> None:
    """Report progress until every upload has an outcome or `wait_seconds` passed, then what became of
    them. `check_alive` raises when the Dagster side is gone (nothing would ever arrive)."""
    from resources.ingest.registry import get_files

    if not uploaded:
        return
    wanted = set(uploaded)
    echo(f"• ingest: waiting up to {wait_seconds:.0f}s for the landing sensor and ingest runs")
    t0 = time.monotonic()
    last_line, last_print = "", 0.0
    states: dict[Upload, tuple[int, str, datetime]] = {}
    while True:
        check_alive()
        states = {k: v for k, v in _file_states(settings.database_url, uploaded).items() if k in wanted}
        counts: dict[str, int] = {}
        for key in wanted:
            status = states[key][1] if key in states else "not seen yet"
            counts[status] = counts.get(status, 0) + 1
        done = sum(n for st, n in counts.items() if st in DONE_STATUSES)
        elapsed = time.monotonic() - t0
        line = f"  {done}/{len(wanted)} done — " + ", ".join(f"{n} {st}" for st, n in sorted(counts.items()))
        if done == len(wanted):
            echo(line + f" ({elapsed:.0f}s)")
            break
        if line != last_line or elapsed - last_print >= 15:
            echo(line + f" ({elapsed:.0f}s)")
            last_line, last_print = line, elapsed
        if elapsed >= wait_seconds:
            echo(
                f"  ! not all samples were ingested within {wait_seconds:.0f}s; they may still "
                f"arrive — watch the runs at {ui_url}/runs or `pipeline files`"
            )
            break
        time.sleep(2)
    if not states:
        return
    earlier = [k for k, (_, _, at) in states.items() if at < started_at]
    if earlier:
        echo(
            f"  {len(earlier)} of them were recorded by an earlier start (same key and ETag): "
            "not ingested again"
        )
    with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
        rows = get_files(conn, [fid for fid, _, _ in states.values()])
    echo("")
    echo(format_files(rows))
