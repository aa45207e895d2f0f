"""data_integrity_analysis: the same company recorded in more than one source system.

How pairs are found (linear in the pairs asked for, never a cross join):
- Probes are the entities of every system but the last (crm and erp), the highest revenue first (ties: canonical id): the duplicates
  that matter most come first, and `limit` bounds the work.
- For each probe and each later system in the order of their names (crm < erp < legacy; the systems are
  the source definitions', resources/sources/), the candidates whose name is at least min_similarity
  alike are looked up through that system's own trigram GIN index (`name % probe.name`, with
  pg_trgm.similarity_threshold set to min_similarity for this transaction; migration 0006, erp and
  legacy): the same rows the all-systems index would give once filtered by system, from posting lists a
  quarter to a third as long. A system without its own index is looked up through the all-systems one
  (entities_name_trgm), filtered by system: the same rows, a longer posting list. The best match is the candidate with the highest match score (then name
  similarity, then the smaller canonical id): of two "Medina Works", the one whose revenue and headcount
  also agree. A pair is looked for from its earlier system only, so it is reported once.
- Pairs are reported in probe order until `limit` pairs are found, from at most 4 × limit probes (so
  the work stays bounded when twins are rare).

Per pair: name_similarity (pg_trgm similarity), revenue_match and employees_match (1 - |a-b| / max(a,b),
NULL when either side lacks the figure), match_score (weighted 0.6 / 0.25 / 0.15, the weights of
missing figures left out), confidence (high ≥ 0.85, medium ≥ 0.7, else low) and the recommended action
(merge / review / keep_separate), the data quality of each record (metadata.data_quality, from the
mapping) and which record to keep as the survivor (higher data quality; on a tie the earlier system).
"""

from __future__ import annotations

import functools

import psycopg

from resources.analytics.params import DataIntegrityParams
from resources.analytics.result import Table, fetch
from resources.sources.catalogue import get_sources

HIGH, MEDIUM = 0.85, 0.7
# Probes examined at most per pair asked for: bounds the work when twins are rare (each probe is one
# trigram index lookup per later system, ~2-20 CPU-ms at 1M entities depending on how common the name's
# words are and on min_similarity).
PROBES_PER_PAIR = 4
W_NAME, W_REVENUE, W_EMPLOYEES = 0.6, 0.25, 0.15

# One target system's lookup for probe p: its candidates through that system's partial trigram index
# (`c.source_system = '<system>'` is a literal so the planner can prove the index's predicate), the best
# by match score, then name similarity, then the smaller canonical id. `{system}` only ever comes from a
# source definition's name (lower-case letters, digits and _: checked when it loads), never from a caller.
_BEST_IN = """
        (SELECT c.canonical_id AS b_id, c.source_system AS b_system, c.name AS b_name,
                (c.metadata ->> 'data_quality')::float8 AS b_quality, f.similarity, f.revenue_match,
                f.employees_match, sc.match_score
         FROM canonical.entities c
         CROSS JOIN LATERAL (
             SELECT similarity(c.name, p.name)::float8 AS similarity,
                    CASE WHEN p.revenue IS NOT NULL AND c.revenue IS NOT NULL THEN
                        CASE WHEN greatest(p.revenue, c.revenue) = 0 THEN 1.0::float8
                             ELSE 1 - (abs(p.revenue - c.revenue) / greatest(p.revenue, c.revenue))::float8 END
                    END AS revenue_match,
                    CASE WHEN p.employees IS NOT NULL AND c.employees IS NOT NULL THEN
                        CASE WHEN greatest(p.employees, c.employees) = 0 THEN 1.0::float8
                             ELSE 1 - abs(p.employees - c.employees)::float8 / greatest(p.employees, c.employees) END
                    END AS employees_match
         ) f
         CROSS JOIN LATERAL (
             SELECT (%(w_name)s * f.similarity + %(w_revenue)s * coalesce(f.revenue_match, 0)
                       + %(w_employees)s * coalesce(f.employees_match, 0))
                    / (%(w_name)s + CASE WHEN f.revenue_match IS NULL THEN 0 ELSE %(w_revenue)s END
                                  + CASE WHEN f.employees_match IS NULL THEN 0 ELSE %(w_employees)s END) AS match_score
         ) sc
         WHERE p.source_system COLLATE "C" < '{system}'
           AND c.source_system = '{system}'
           AND c.name %% p.name
           AND similarity(c.name, p.name) >= %(min_similarity)s
         ORDER BY sc.match_score DESC, f.similarity DESC, c.canonical_id COLLATE "C"
         LIMIT 1)"""

# The probes are picked from the canonical_id index, which carries source_system and revenue (migration
# 0007), in parallel workers, and only the picked rows are read from the heap (each by its key: the fences
# keep the planner from sorting the whole table for the outer order instead), because reading and sorting
# every CRM and ERP row from the heap would dominate a small limit (bench/analytics_results.md). Same
# probes: the same order and limit over a unique key.
_DATA_INTEGRITY = """
WITH pairs AS (
    SELECT p.canonical_id AS a_id, p.source_system AS a_system, p.name AS a_name, p.revenue AS a_revenue,
           (p.metadata ->> 'data_quality')::float8 AS a_quality, m.*
    FROM (SELECT x.* FROM (SELECT k.canonical_id FROM canonical.entities k
                           WHERE k.source_system IN ({probe_systems})
                           ORDER BY k.revenue DESC NULLS LAST, k.canonical_id COLLATE "C"
                           LIMIT %(max_probes)s) top
          CROSS JOIN LATERAL (SELECT * FROM canonical.entities y WHERE y.canonical_id = top.canonical_id OFFSET 0) x
          ORDER BY x.revenue DESC NULLS LAST, x.canonical_id COLLATE "C" OFFSET 0) p
    CROSS JOIN LATERAL ({lookups}
    ) m
    ORDER BY p.revenue DESC NULLS LAST, p.canonical_id COLLATE "C", m.b_system
    LIMIT %(limit)s
)
SELECT a_id, a_system, a_name, b_id, b_system, b_name,
       round(similarity::numeric, 3) AS name_similarity,
       round(revenue_match::numeric, 3) AS revenue_match,
       round(employees_match::numeric, 3) AS employees_match,
       round(match_score::numeric, 3) AS match_score,
       CASE WHEN match_score >= %(high)s THEN 'high' WHEN match_score >= %(medium)s THEN 'medium' ELSE 'low' END
           AS confidence,
       CASE WHEN match_score >= %(high)s THEN 'merge' WHEN match_score >= %(medium)s THEN 'review'
            ELSE 'keep_separate' END AS recommended_action,
       a_quality AS a_data_quality, b_quality AS b_data_quality,
       CASE WHEN coalesce(b_quality, 0) > coalesce(a_quality, 0) THEN b_id ELSE a_id END AS survivor_id
FROM pairs
ORDER BY a_revenue DESC NULLS LAST, a_id COLLATE "C", b_system
"""


@functools.lru_cache(maxsize=4)
def integrity_query(systems: tuple[str, ...]) -> str:
    """The statement for these systems (sorted names): probes from every one but the last, candidates from
    every one but the first (a pair is looked for from its earlier system only)."""
    ordered = sorted(systems)  # at least the three shipped ones: a deployment adds or replaces, never removes
    return _DATA_INTEGRITY.format(
        probe_systems=", ".join(f"'{s}'" for s in ordered[:-1]),
        lookups="\n        UNION ALL".join(_BEST_IN.format(system=s) for s in ordered[1:]),
    )


def data_integrity_analysis(conn: psycopg.Connection, p: DataIntegrityParams, *, max_rows: int) -> Table:
    with conn.cursor() as cur:
        # The % operator's threshold: lets the GIN index discard names below min_similarity.
        cur.execute("SELECT set_config('pg_trgm.similarity_threshold', %s, true)", (str(p.min_similarity),))
        cur.execute(
            integrity_query(get_sources().names),
            {
                "min_similarity": p.min_similarity,
                "limit": p.limit,
                "max_probes": p.limit * PROBES_PER_PAIR,
                "high": HIGH,
                "medium": MEDIUM,
                "w_name": W_NAME,
                "w_revenue": W_REVENUE,
                "w_employees": W_EMPLOYEES,
            },
        )
        return fetch(cur, max_rows)


data_integrity_analysis.__doc__ = __doc__


def __getattr__(name: str) -> str:
    # DATA_INTEGRITY: the statement for the sources in effect (tests EXPLAIN it).
    if name == "DATA_INTEGRITY":
        return integrity_query(get_sources().names)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
