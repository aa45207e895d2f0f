"""relationship_network: the hierarchy below an entity, with revenue rolled up.

Edges are the current `parent_of` links of canonical.entity_relationships (canonical ids, so a parent
that never arrived still appears, with found = false). The walk stops at max_depth and at cycles: a
link back to an entity already on the path is reported as a row with is_cycle = true and is neither
followed nor counted. Each child has at most one current parent, so every other node appears once.

Roll-up: subtree_revenue of a node is its own revenue plus that of every node below it in the walk
(within max_depth), descendants the number of those nodes. It is computed by spreading each node's
revenue over the ancestors on its path — O(nodes × depth), never nodes².
"""

from __future__ import annotations

import psycopg

from resources.analytics.params import RelationshipNetworkParams
from resources.analytics.result import Table, fetch

_WALK = """
WITH RECURSIVE root AS (
    /*roots*/
), tree AS (
    SELECT r.canonical_id, NULL::text AS parent_canonical_id, 0 AS depth,
           ARRAY[r.canonical_id] AS path, false AS is_cycle
    FROM root r WHERE r.canonical_id IS NOT NULL
    UNION ALL
    SELECT l.child_canonical_id, l.parent_canonical_id, t.depth + 1,
           t.path || l.child_canonical_id, l.child_canonical_id = ANY (t.path)
    FROM tree t
    JOIN canonical.entity_relationships l
      ON l.parent_canonical_id = t.canonical_id AND l.effective_to IS NULL AND l.relationship_type = 'parent_of'
    WHERE NOT t.is_cycle AND t.depth < %(max_depth)s
), nodes AS (
    SELECT t.*, e.name, e.source_system, e.revenue, e.entity_id IS NOT NULL AS found
    FROM tree t LEFT JOIN canonical.entities e ON e.canonical_id = t.canonical_id
), rollup AS (
    SELECT a.ancestor, sum(n.revenue) AS subtree_revenue, count(*) - 1 AS descendants
    FROM nodes n CROSS JOIN LATERAL unnest(n.path) AS a(ancestor)
    WHERE NOT n.is_cycle
    GROUP BY a.ancestor
)
SELECT n.depth, n.canonical_id, n.name, n.source_system, n.parent_canonical_id,
       array_to_string(n.path, ' > ') AS path, n.is_cycle, n.found, n.revenue,
       CASE WHEN NOT n.is_cycle THEN r.subtree_revenue END AS subtree_revenue,
       CASE WHEN NOT n.is_cycle THEN r.descendants END AS descendants
FROM nodes n
LEFT JOIN rollup r ON r.ancestor = n.canonical_id AND NOT n.is_cycle
ORDER BY n.path COLLATE "C"
"""
# The root asked for (a canonical id, or an entity_id uuid resolved to its canonical id).
RELATIONSHIP_NETWORK = _WALK.replace(
    "/*roots*/",
    """SELECT coalesce(
        (SELECT e.canonical_id FROM canonical.entities e WHERE e.entity_id = %(root_uuid)s::uuid),
        CASE WHEN %(root_uuid)s::uuid IS NULL THEN %(root)s::text END) AS canonical_id""",
)
# No root (the old API's form): every top of a hierarchy, a parent that has no parent itself. A separate
# statement, so that the planner keeps its one-root plan for the rooted form.
EVERY_HIERARCHY = _WALK.replace(
    "/*roots*/",
    """SELECT DISTINCT l.parent_canonical_id COLLATE "C" AS canonical_id
    FROM canonical.entity_relationships l
    WHERE l.effective_to IS NULL AND l.relationship_type = 'parent_of'
      AND NOT EXISTS (SELECT 1 FROM canonical.entity_relationships up
                      WHERE up.child_canonical_id = l.parent_canonical_id AND up.effective_to IS NULL
                        AND up.relationship_type = 'parent_of')
    ORDER BY 1 LIMIT %(max_roots)s""",
)


def relationship_network(conn: psycopg.Connection, p: RelationshipNetworkParams, *, max_rows: int) -> Table:
    """The root and its descendants down to max_depth, in tree order: depth, canonical id, name, source,
    parent, path, cycle flag, whether the entity exists, revenue, subtree revenue and descendant count.
    Without a root, every hierarchy (its top: a parent with no parent of its own; at most max_roots)."""
    with conn.cursor() as cur:
        if p.root_entity_id is None:
            cur.execute(EVERY_HIERARCHY, {"max_depth": p.max_depth, "max_roots": p.max_roots})
        else:
            cur.execute(
                RELATIONSHIP_NETWORK,
                {"root": p.root_entity_id, "root_uuid": p.root_uuid, "max_depth": p.max_depth},
            )
        return fetch(cur, max_rows)
