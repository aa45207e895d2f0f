"""What an entity is to the segment operations: a source record, or a golden entity (`entity_scope`).

Source scope reads canonical.entities: one row per source record, so a company three systems know counts
three times. Golden scope reads one row per golden entity of the latest resolution (schema golden,
migration 0014), with the columns the segment operations read from canonical.entities, so the same
whitelisted fragments (params.GROUP_BY_SQL / METRIC_SQL, over `e`) work on either:

- industry, country, revenue, employees: the golden record's (survivorship, golden.entities);
  revenue_per_employee and entity_type are computed from the golden revenue and employees by the rules
  ingest applies to a record (migration 0007; resources/canonical/mapping.py classify_entity_type);
- region, lifetime_value, total_spent: the golden record has no such field; they are the lead member's,
  the member the golden name came from (its lineage), so they describe one real record;
- canonical_id: the lead member's id (unique per golden entity: a record belongs to one);
- source_system: the systems that know the company, '+'-joined in name order ('crm+erp'); `systems`
  the same as an array (a canonical id begins with its system's name: resources/sources/definition.py);
- golden_id and member_count: the golden entity and how many of its records count in this answer.

A canonical record no resolution has seen yet (not in golden.members) is a golden entity of its own:
golden_id NULL, member_count 1, its own values. Golden scope is never emptier than the store.

Deleted records: unless include_deleted, deleted members do not count, so a golden entity whose members
are all deleted is left out (its golden record is built from its live members whenever it has one:
resources/golden/survivorship.py), and member_count counts only live members. With include_deleted
every member counts. Either way the members counted over all golden rows are exactly the records source
scope counts.

The golden record's values are those of the latest resolution: a record changed since then shows its
new values at source scope at once, at golden scope after the next resolution.

Cost at a million records (bench/analytics_results.md): the golden records are read whole (a sequential
scan of golden.entities), member counts come from the record, less the deleted members (found through the
partial index of deleted records, migration 0016); member systems (count_analysis, group_by source_system)
cost one aggregate over golden.members, and lead fields one join to canonical.entities. Each is in the
statement only when the operation reads it. Unresolved records are an anti join of two canonical_id
indexes, their columns read from the covering index.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from resources.sources.catalogue import get_sources

# The mapping's entity classes (resources/canonical/mapping.py classify_entity_type, which analytics may
# not import: ARCHITECTURE.md), applied to the golden revenue and employees; a test pins them equal.
LARGE_REVENUE, LARGE_EMPLOYEES = 10_000_000, 1000
MEDIUM_REVENUE, MEDIUM_EMPLOYEES = 1_000_000, 100

# The golden fields a segment operation may read that cost a join: which relation they come from.
LEAD_COLUMNS = ("region", "lifetime_value", "total_spent")
SYSTEM_COLUMNS = ("systems", "source_system")

# Members whose record is deleted, per golden entity: few, read through entities_deleted_idx.
_DELETED = """(SELECT m.golden_id, count(*) AS deleted
          FROM canonical.entities x JOIN golden.members m ON m.canonical_id = x.canonical_id
          WHERE x.status = 'deleted'
          GROUP BY m.golden_id)"""
_LIVE_MEMBER = """NOT EXISTS (SELECT FROM canonical.entities x
                                  WHERE x.canonical_id = m.canonical_id AND x.status = 'deleted')"""


@dataclass(frozen=True)
class Needs:
    """The costly columns an operation reads: member systems, lead-member fields."""

    systems: bool = False
    lead: bool = False


def needs_of(*fragments: str) -> Needs:
    """What SQL fragments over `e` read of the costly columns."""
    text = " ".join(fragments)
    return Needs(
        systems=any(f"e.{c}" in text for c in SYSTEM_COLUMNS),
        lead=any(f"e.{c}" in text for c in LEAD_COLUMNS),
    )


def _entity_type(revenue: str, employees: str) -> str:
    return (
        f"CASE WHEN {revenue} > {LARGE_REVENUE} OR {employees} > {LARGE_EMPLOYEES} THEN 'large_enterprise' "
        f"WHEN {revenue} > {MEDIUM_REVENUE} OR {employees} > {MEDIUM_EMPLOYEES} THEN 'medium_business' "
        "ELSE 'small_business' END"
    )


def _system_flags(systems: tuple[str, ...]) -> str:
    """Each system's name when a member's canonical id is one of its ids ('<system>_…'; a system whose
    name is another's plus '_…' is told apart), in name order."""
    flags = []
    for s in sorted(systems):
        longer = [t for t in systems if t != s and t.startswith(s + "_")]
        # starts_with, not LIKE: no % in a statement that also carries bound parameters.
        test = f"starts_with(m.canonical_id, '{s}_')" + "".join(
            f" AND NOT starts_with(m.canonical_id, '{t}_')" for t in longer
        )
        flags.append(f"CASE WHEN bool_or({test}) THEN '{s}' END")
    return f"array_remove(ARRAY[{', '.join(flags)}], NULL)"


@functools.lru_cache(maxsize=32)
def golden_rows(systems: tuple[str, ...], *, include_deleted: bool, needs: Needs) -> str:
    """The golden entities as a relation `e` (see the module doc) for these source systems, with the
    costly columns only when `needs` says so. `systems` are source definitions' names (lower-case
    letters, digits and _: checked when they load), never a caller's text."""
    resolved_cols = [
        "g.golden_id",
        "g.member_count" if include_deleted else "g.member_count - coalesce(d.deleted, 0) AS member_count",
        # A golden record without a name (every member's blank) has no lineage for it: its first member.
        'coalesce(g.lineage ->> \'name\', (SELECT min(f.canonical_id COLLATE "C") COLLATE "default" '
        "FROM golden.members f WHERE f.golden_id = g.golden_id)) AS canonical_id",
        "g.industry",
        "g.country",
        "g.revenue",
        "g.employees",
        "round(g.revenue / NULLIF(g.employees, 0), 2) AS revenue_per_employee",
        _entity_type("g.revenue", "g.employees") + " AS entity_type",
    ]
    single_cols = [
        "NULL::text",
        "1::bigint",
        "e.canonical_id",
        "e.industry",
        "e.country",
        "e.revenue",
        "e.employees",
        "e.revenue_per_employee",
        "e.entity_type",
    ]
    joins = []
    if not include_deleted:
        joins.append(f"LEFT JOIN {_DELETED} d ON d.golden_id = g.golden_id")
    if needs.systems:
        live = "" if include_deleted else f"WHERE {_LIVE_MEMBER}"
        joins.append(
            f"JOIN (SELECT m.golden_id, {_system_flags(systems)} AS systems FROM golden.members m {live} "
            "GROUP BY m.golden_id) s ON s.golden_id = g.golden_id"
        )
        resolved_cols += ["s.systems", "array_to_string(s.systems, '+') AS source_system"]
        single_cols += ["ARRAY[e.source_system]", "e.source_system"]
    if needs.lead:
        joins.append("LEFT JOIN canonical.entities lead ON lead.canonical_id = g.lineage ->> 'name'")
        resolved_cols += [f"lead.{c}" for c in LEAD_COLUMNS]
        single_cols += [f"e.{c}" for c in LEAD_COLUMNS]
    live_golden = "" if include_deleted else " AND g.member_count > coalesce(d.deleted, 0)"
    live_single = "" if include_deleted else " AND e.status <> 'deleted'"
    return f"""(
    SELECT {", ".join(resolved_cols)}
    FROM golden.entities g
    {chr(10).join("    " + j for j in joins).strip()}
    WHERE g.status = 'active'{live_golden}
    UNION ALL
    SELECT {", ".join(single_cols)}
    FROM canonical.entities e
    WHERE NOT EXISTS (SELECT FROM golden.members m WHERE m.canonical_id = e.canonical_id){live_single}
) e"""


def golden_entities(*, include_deleted: bool, needs: Needs) -> str:
    """golden_rows for the source systems in effect."""
    return golden_rows(get_sources().names, include_deleted=include_deleted, needs=needs)
