"""What an entity is to the segment operations: a source record, or a golden entity (`entity_scope`).

Source scope reads canonical.entities: one row per source record, so a company three systems know counts
three times. Golden scope reads one row per golden entity of the latest resolution (schema golden,
migration 0014), with the columns the segment operations read from canonical.entities, so the same
whitelisted fragments (params.GROUP_BY_SQL / METRIC_SQL, over `e`) work on either:

- name, industry, country, revenue, employees: the golden record's (survivorship, golden.entities);
  revenue_per_employee is computed from the golden revenue and employees as migration 0007 computes it;
- entity_type, region, lifetime_value, total_spent: the golden record has no such field; they are the
  lead member's, the member the golden name came from (its lineage), so they describe one real record;
- canonical_id: the lead member's id (unique per golden entity: a record belongs to one);
- source_system: the systems that know the company, '+'-joined in name order ('crm+erp'); `systems`
  the same as an array;
- golden_id and member_count: the golden entity and how many of its records count in this answer.

A canonical record no resolution has seen yet (not in golden.members) is a golden entity of its own:
golden_id NULL, member_count 1, its own values. Golden scope is never emptier than the store.

Deleted records: unless include_deleted, deleted members are left out before anything is counted, so a
golden entity whose members are all deleted is left out (the golden record itself is built from its
live members whenever it has one: resources/golden/survivorship.py), and member_count counts only
live members. With include_deleted every member counts. Either way the members counted over all golden
rows are exactly the records source scope counts.

The golden record's values are those of the latest resolution: a record changed since then shows its
new values at source scope at once, at golden scope after the next resolution.
"""

from __future__ import annotations

import functools

from resources.sources.catalogue import get_sources

# Unless include_deleted: deleted records are left out of both parts (the source scope's own filter).
LIVE_MEMBERS = "WHERE x.status <> 'deleted'"
LIVE_SINGLETONS = "AND e.status <> 'deleted'"

# Resolved golden entities: their counted members aggregated per golden id (a merge join of the two
# canonical_id indexes, then one hash aggregate), the golden record joined by its key, the lead member by
# its key. Unresolved records: an anti join on the same indexes. `{systems}` is built from the source
# definitions' names (lower-case letters, digits and _: checked when they load), never from a caller.
_GOLDEN_ROWS = """(
    SELECT r.golden_id, r.member_count, r.systems, array_to_string(r.systems, '+') AS source_system,
           coalesce(lead.canonical_id, r.first_member) AS canonical_id,
           g.name, g.industry, g.country, g.revenue, g.employees,
           round(g.revenue / NULLIF(g.employees, 0), 2) AS revenue_per_employee,
           lead.entity_type, lead.region, lead.lifetime_value, lead.total_spent
    FROM (SELECT m.golden_id, count(*) AS member_count,
                 array_remove(ARRAY[{systems}], NULL) AS systems,
                 min(x.canonical_id COLLATE "C") COLLATE "default" AS first_member
          FROM golden.members m
          JOIN canonical.entities x ON x.canonical_id = m.canonical_id
          {live_members}
          GROUP BY m.golden_id) r
    JOIN golden.entities g ON g.golden_id = r.golden_id
    LEFT JOIN canonical.entities lead ON lead.canonical_id = coalesce(g.lineage ->> 'name', r.first_member)
    UNION ALL
    SELECT NULL, 1, ARRAY[e.source_system], e.source_system, e.canonical_id,
           e.name, e.industry, e.country, e.revenue, e.employees, e.revenue_per_employee,
           e.entity_type, e.region, e.lifetime_value, e.total_spent
    FROM canonical.entities e
    WHERE NOT EXISTS (SELECT FROM golden.members m WHERE m.canonical_id = e.canonical_id) {live_singletons}
) e"""


@functools.lru_cache(maxsize=8)
def golden_rows(systems: tuple[str, ...], *, include_deleted: bool) -> str:
    """The golden entities as a relation `e` (see the module doc) for these source systems."""
    flags = ", ".join(f"CASE WHEN bool_or(x.source_system = '{s}') THEN '{s}' END" for s in sorted(systems))
    return _GOLDEN_ROWS.format(
        systems=flags,
        live_members="" if include_deleted else LIVE_MEMBERS,
        live_singletons="" if include_deleted else LIVE_SINGLETONS,
    )


def golden_entities(*, include_deleted: bool) -> str:
    """golden_rows for the source systems in effect."""
    return golden_rows(get_sources().names, include_deleted=include_deleted)
