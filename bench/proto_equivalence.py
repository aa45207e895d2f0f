"""Check that the prototype loader (bench/loader_proto.py, 3-row chunks) leaves the same canonical state and
counts as resources/loader.py on files with in-file duplicates across chunks, changes that revert
(A -> B -> A), new ids repeated, refusals and a parent link: `python -m bench.proto_equivalence`.
Uses a throwaway embedded PostgreSQL under /tmp (fsync off)."""
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench import loader_proto as proto
from pipeline_defs.devstack.postgres import LocalPostgres
from pipeline_defs.devstack.processes import free_port
from resources import loader as real
from resources.canonical.mapping import map_record
from resources.migrate import apply_migrations

proto.CHUNK_ROWS = 3

def rec(i, **kw):
    r = {"customer_id": f"C{i}", "company_name": f"Co {i}", "annual_revenue": 1000 * i, "employee_count": i}
    r.update(kw)
    return r

files = [
    [rec(i) for i in range(1, 11)],
    [rec(1, x="B"), rec(2), rec(3, x="C"), rec(4), rec(11), rec(12, x=1),
     rec(1), rec(3, x="D"), rec(11), rec(12, x=2), rec(4, x="E"), rec(5, x="F"), {"bad": 1},
     rec(5), rec(6, x="G"), rec(6, x="G"), rec(13, parent_id="C1"), rec(13, parent_id="C2")],
    [rec(1, x="B"), rec(1, x="B2"), rec(1), rec(1, x="B")],
]

def load(url, mod, records, file_id):
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO ingest.files (s3_key, etag, status) VALUES (%s, %s, 'loading')", (f"k{file_id}", f"e{file_id}"))
        conn.commit()
        with conn.transaction():
            r = mod.load_records(conn, (map_record("crm", x) for x in records), file_id=file_id, attempt=1,
                                 source_key=f"k{file_id}", run_id="r",
                                 file_at=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    d = r.as_dict()
    d.pop("seconds")
    d.pop("records_per_second")
    return d

def state(url):
    with psycopg.connect(url) as conn:
        e = conn.execute("SELECT canonical_id, version, attributes, entity_type, metadata - 'file_id' - 'source_key', updated_at = created_at FROM canonical.entities ORDER BY 1").fetchall()
        h = conn.execute("SELECT canonical_id, version, attributes FROM canonical.entity_history ORDER BY 1, 2").fetchall()
        rel = conn.execute("SELECT parent_canonical_id, child_canonical_id, effective_to IS NULL FROM canonical.entity_relationships ORDER BY 1,2").fetchall()
    return e, h, rel

tmp = Path(tempfile.mkdtemp(prefix="proto-eq-"))
pg = LocalPostgres(tmp, port=free_port(), settings={"fsync": "off"})
pg.start()
try:
    urls = {}
    for db in ("a", "b"):
        with psycopg.connect(pg.admin_url, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {db}")
            c.execute(f"CREATE DATABASE {db}")
        urls[db] = pg.url(db)
        apply_migrations(urls[db])
    ok = True
    for n, f in enumerate(files, 1):
        ra, rb = load(urls["a"], real, f, n), load(urls["b"], proto, f, n)
        print(n, "real ", ra)
        print(n, "proto", rb)
        ok &= ra == rb
        sa, sb = state(urls["a"]), state(urls["b"])
        for name, x, y in zip(("entities", "history", "relationships"), sa, sb, strict=True):
            if x != y:
                ok = False
                print("DIFF", name)
                print("  real ", x)
                print("  proto", y)
    print("SAME" if ok else "DIFFERENT")
    raise SystemExit(0 if ok else 1)
finally:
    pg.stop(mode="immediate")
    shutil.rmtree(tmp, ignore_errors=True)
