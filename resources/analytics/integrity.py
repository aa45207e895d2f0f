"""data_integrity_analysis: the same company recorded more than once, as the entity resolution found it.

The candidate pairs are the latest resolution's scored pairs (golden.pairs, written by the golden asset:
README "Golden entities"), the most probable first (match probability, then match weight, then the two
canonical ids), at least min_similarity probable, at most `limit`: one range scan of the pairs' order
index (migration 0016), so the work is the pairs reported whatever the store's size. A pair is stored
once, its two ids in code-point order, so the earlier source system's record is `a` (canonical ids begin
with their system's name). Pairs of one system are reported too: a duplicate inside a source is a
duplicate.

Per pair, in the old answer's keys: the two records (id, system, name); name_similarity (pg_trgm
similarity of the two names, as before); revenue_match and employees_match (1 - |a-b| / max(a,b), NULL
when either side lacks the figure, as before); match_score, which was a weighted mix of those three and
is now the resolution's match probability (rounded to 3 places); confidence from it (high ≥ 0.85,
medium ≥ 0.7, else low); recommended_action from what the resolution did: merge when the two are in one
golden entity, review when the pair waits in the review queue (review band, no steward decision yet),
keep_separate otherwise; each record's data quality (metadata.data_quality) and survivor_id (higher data
quality, on a tie `a`). Then what the resolution adds: match_weight, match_probability, band (auto or
review), the golden id of each record, linked (same golden id), in_review, and evidence (each
comparison's match weight).

Before any resolution has run, the answer is no rows and a note saying so.
"""

from __future__ import annotations

import psycopg

from resources.analytics.params import DataIntegrityParams
from resources.analytics.result import Table, fetch
from resources.clients.postgres import scalar

HIGH, MEDIUM = 0.85, 0.7

NO_RESOLUTION = (
    "no entity resolution has run yet: the duplicate candidates are the resolution's scored pairs "
    "(canonical/golden_entities)"
)

RESOLVED = "SELECT EXISTS (SELECT FROM golden.runs WHERE finished_at IS NOT NULL)"

# The pairs come from the order index alone (a range on match_probability, in the index's order, stopped
# at the limit); the records, golden ids and review state are looked up by key for those pairs only.
DATA_INTEGRITY = """
WITH top AS (
    SELECT p.canonical_id_l, p.canonical_id_r, p.match_weight, p.match_probability, p.band, p.comparisons
    FROM golden.pairs p
    WHERE p.match_probability >= %(min_probability)s
    ORDER BY p.match_probability DESC, p.match_weight DESC,
             p.canonical_id_l COLLATE "C", p.canonical_id_r COLLATE "C"
    LIMIT %(limit)s
), pairs AS (
    SELECT t.*, a.source_system AS a_system, a.name AS a_name, b.source_system AS b_system, b.name AS b_name,
           (a.metadata ->> 'data_quality')::float8 AS a_quality, (b.metadata ->> 'data_quality')::float8 AS b_quality,
           ma.golden_id AS a_golden_id, mb.golden_id AS b_golden_id,
           ma.golden_id = mb.golden_id AS linked,
           t.band = 'review' AND NOT EXISTS (
               SELECT FROM golden.decisions d
               WHERE d.canonical_id_l = t.canonical_id_l AND d.canonical_id_r = t.canonical_id_r
           ) AS in_review,
           similarity(a.name, b.name)::float8 AS similarity,
           CASE WHEN a.revenue IS NOT NULL AND b.revenue IS NOT NULL THEN
               CASE WHEN greatest(a.revenue, b.revenue) = 0 THEN 1.0::float8
                    ELSE 1 - (abs(a.revenue - b.revenue) / greatest(a.revenue, b.revenue))::float8 END
           END AS revenue_match,
           CASE WHEN a.employees IS NOT NULL AND b.employees IS NOT NULL THEN
               CASE WHEN greatest(a.employees, b.employees) = 0 THEN 1.0::float8
                    ELSE 1 - abs(a.employees - b.employees)::float8 / greatest(a.employees, b.employees) END
           END AS employees_match
    FROM top t
    LEFT JOIN canonical.entities a ON a.canonical_id = t.canonical_id_l
    LEFT JOIN canonical.entities b ON b.canonical_id = t.canonical_id_r
    LEFT JOIN golden.members ma ON ma.canonical_id = t.canonical_id_l
    LEFT JOIN golden.members mb ON mb.canonical_id = t.canonical_id_r
)
SELECT canonical_id_l AS a_id, a_system, a_name, canonical_id_r AS b_id, b_system, b_name,
       round(similarity::numeric, 3) AS name_similarity,
       round(revenue_match::numeric, 3) AS revenue_match,
       round(employees_match::numeric, 3) AS employees_match,
       round(match_probability::numeric, 3) AS match_score,
       CASE WHEN match_probability >= %(high)s THEN 'high' WHEN match_probability >= %(medium)s THEN 'medium'
            ELSE 'low' END AS confidence,
       CASE WHEN coalesce(linked, false) THEN 'merge' WHEN in_review THEN 'review' ELSE 'keep_separate' END
           AS recommended_action,
       a_quality AS a_data_quality, b_quality AS b_data_quality,
       CASE WHEN coalesce(b_quality, 0) > coalesce(a_quality, 0) THEN canonical_id_r ELSE canonical_id_l END
           AS survivor_id,
       match_weight, match_probability, band, a_golden_id, b_golden_id, coalesce(linked, false) AS linked,
       in_review, comparisons AS evidence
FROM pairs
ORDER BY match_probability DESC, match_weight DESC, canonical_id_l COLLATE "C", canonical_id_r COLLATE "C"
"""


def data_integrity_analysis(conn: psycopg.Connection, p: DataIntegrityParams, *, max_rows: int) -> Table:
    with conn.cursor() as cur:
        if not scalar(cur, RESOLVED):
            cur.execute(DATA_INTEGRITY + " LIMIT 0", _bound(p))
            return fetch(cur, max_rows, notes=(NO_RESOLUTION,))
        cur.execute(DATA_INTEGRITY, _bound(p))
        return fetch(cur, max_rows)


def _bound(p: DataIntegrityParams) -> dict[str, float | int]:
    return {"min_probability": p.min_similarity, "limit": p.limit, "high": HIGH, "medium": MEDIUM}


data_integrity_analysis.__doc__ = __doc__
