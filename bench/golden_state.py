"""A resolution's state for the analytics bench, built in SQL from the entities the bench loaded.

Not the matching engine's answer (bench/resolution_bench.py measures that): a state of the same shape and
size, so golden-scope analytics and data_integrity_analysis are timed over what a resolution of a million
records leaves behind. Clusters: records whose names agree once lower-cased, stripped of punctuation and
of a trailing legal form (the generator's cross-system variants), at most three to a cluster; one record
in twenty is left out, as if it arrived after the resolution (a singleton at golden scope). Golden
records: the values of the member of the highest-priority source (crm, erp, legacy), its id as the
name's lineage. Pairs: pairs inside a cluster (auto band, probability 0.95-1; at most 70 % of `pairs`), then review-band pairs
between neighbouring clusters (probability 0.5-0.95) up to `pairs` in all.
"""

from __future__ import annotations

import time

import psycopg

RUN_ID = "bench-resolution-2"  # a new id when the state's recipe changes: it is built again
LEGAL_FORMS = "inc|llc|ltd|corp|corporation|limited|group|gmbh|ag|sa|bv|plc|l l c"

_STEPS: list[tuple[str, str]] = [
    (
        "clusters",
        f"""CREATE TEMPORARY TABLE bench_clusters AS
            SELECT canonical_id, source_system, name, industry, revenue, employees, country,
                   k || '#' || ((row_number() OVER (PARTITION BY k ORDER BY canonical_id COLLATE "C") - 1) / 3) AS key
            FROM (SELECT canonical_id, source_system, name, industry, revenue, employees, country,
                         regexp_replace(regexp_replace(lower(name), '[^a-z0-9 ]', '', 'g'),
                                        '\\s+({LEGAL_FORMS})$', '') AS k
                  FROM canonical.entities
                  WHERE abs(hashtext(canonical_id)) %% 20 <> 0) x""",
    ),
    (
        "ids",
        """CREATE TEMPORARY TABLE bench_ids AS
           SELECT key, row_number() OVER (ORDER BY key COLLATE "C") AS seq FROM (SELECT DISTINCT key FROM bench_clusters) k""",
    ),
    (
        "members",
        """INSERT INTO golden.members (canonical_id, golden_id, fingerprint, since_run_id)
           SELECT c.canonical_id, 'G' || i.seq, 'bench', %(run)s FROM bench_clusters c JOIN bench_ids i USING (key)""",
    ),
    (
        "records",
        """INSERT INTO golden.entities (golden_id, seq, status, member_count, name, industry, revenue, employees,
                                        country, lineage, rules_version, created_run_id, updated_run_id)
           SELECT DISTINCT ON (i.seq) 'G' || i.seq, i.seq, 'active',
                  count(*) OVER (PARTITION BY i.seq), c.name, c.industry, c.revenue, c.employees, c.country,
                  jsonb_build_object('name', c.canonical_id), 'bench', %(run)s, %(run)s
           FROM bench_clusters c JOIN bench_ids i USING (key)
           ORDER BY i.seq, array_position(ARRAY['crm', 'erp', 'legacy'], c.source_system), c.canonical_id""",
    ),
    (
        "auto pairs",
        """INSERT INTO golden.pairs (canonical_id_l, canonical_id_r, match_weight, match_probability, band,
                                     comparisons, run_id)
           SELECT l, r, ln(p / (1 - p)) / ln(2), p, 'auto', jsonb_build_object('name', 12.5, 'revenue', 6.0),
                  %(run)s
           FROM (SELECT a.canonical_id AS l, b.canonical_id AS r, 0.95 + random() * 0.0499 AS p
                 FROM bench_clusters a
                 JOIN bench_clusters b ON b.key = a.key AND a.canonical_id < b.canonical_id COLLATE "C"
                 LIMIT %(pairs)s * 7 / 10) x""",
    ),
    (
        "review pairs",
        """INSERT INTO golden.pairs (canonical_id_l, canonical_id_r, match_weight, match_probability, band,
                                     comparisons, run_id)
           SELECT least(l COLLATE "C", r COLLATE "C"), greatest(l COLLATE "C", r COLLATE "C"),
                  ln(p / (1 - p)) / ln(2), p, 'review', jsonb_build_object('name', 9.0, 'revenue', -1.5), %(run)s
           FROM (SELECT e.lineage ->> 'name' AS l,
                        lead(e.lineage ->> 'name') OVER (ORDER BY e.seq) AS r,
                        0.5 + random() * 0.45 AS p
                 FROM golden.entities e) n
           WHERE r IS NOT NULL
           LIMIT greatest(0, %(pairs)s - (SELECT count(*) FROM golden.pairs))
           ON CONFLICT DO NOTHING""",
    ),
    (
        "run",
        """INSERT INTO golden.runs (run_id, mode, model_version, started_at, finished_at, entities, clusters, pairs,
                                   review_pairs)
           SELECT %(run)s, 'full', 'bench', now(), now(), (SELECT count(*) FROM golden.members),
                  (SELECT count(*) FROM golden.entities), (SELECT count(*) FROM golden.pairs),
                  (SELECT count(*) FROM golden.pairs WHERE band = 'review')""",
    ),
    ("sequence", "SELECT setval('golden.golden_id_seq', (SELECT max(seq) FROM golden.entities))"),
]


def build_golden_state(owner_url: str, *, pairs: int = 300_000) -> dict[str, int]:
    """Write the state once (a database that holds the bench's run keeps it); returns its counts."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        done = conn.execute("SELECT EXISTS (SELECT FROM golden.runs WHERE run_id = %s)", (RUN_ID,)).fetchone()
        if not (done and done[0]):
            conn.execute("SET work_mem = '256MB'")
            with conn.transaction():
                conn.execute(
                    "TRUNCATE golden.members, golden.entities, golden.pairs, golden.runs, golden.history, "
                    "golden.decisions"
                )
                for label, statement in _STEPS:
                    t0 = time.perf_counter()
                    conn.execute(statement, {"run": RUN_ID, "pairs": pairs})
                    print(f"  golden state, {label}: {time.perf_counter() - t0:.1f} s", flush=True)
            # Statistics and the visibility map (index-only scans), as autovacuum would leave them.
            conn.execute("VACUUM ANALYZE golden.members, golden.entities, golden.pairs, golden.runs")
        row = conn.execute(
            """SELECT (SELECT count(*) FROM golden.members), (SELECT count(*) FROM golden.entities),
                      (SELECT count(*) FROM golden.pairs), (SELECT count(*) FROM golden.pairs WHERE band = 'review')"""
        ).fetchone()
    assert row is not None
    return {"members": row[0], "golden_entities": row[1], "pairs": row[2], "review_pairs": row[3]}
