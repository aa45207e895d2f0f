"""Column schemas of the canonical tables, as the asset pages show them (`dagster/column_schema`).

Written out rather than read from the database at load time (the code location must load without
one); tests/assets/test_lineage.py compares them with the migrated tables, so they cannot drift.
"""

from dagster import TableColumn, TableSchema


def _schema(*columns: tuple[str, str, str]) -> TableSchema:
    return TableSchema(
        columns=[TableColumn(name, type_, description=description) for name, type_, description in columns]
    )


ENTITIES_SCHEMA = _schema(
    ("entity_id", "uuid", "Primary key (uuidv7)"),
    (
        "entity_type",
        "text",
        "large_enterprise | medium_business | small_business (from revenue and employees)",
    ),
    ("source_system", "text", "crm | erp | legacy"),
    ("canonical_id", "text", "<source>_<source record id>: one row per source record"),
    ("name", "text", "Company name, trimmed (trigram-indexed for fuzzy matching)"),
    (
        "industry",
        "text",
        "Canonical industry (the industry vocabulary); a value it lacks as the source gave it",
    ),
    ("revenue", "numeric", "Annual revenue"),
    ("employees", "bigint", "Employee count"),
    ("attributes", "jsonb", "Every field of the source record, canonical keys included"),
    ("attributes_hash", "bytea", "md5 of attributes: what the merge compares"),
    ("metadata", "jsonb", "Where the current version came from: file, run, source id"),
    ("created_at", "timestamptz", "First loaded"),
    ("updated_at", "timestamptz", "Last changed"),
    ("version", "integer", "1, then +1 per change (previous versions in canonical.entity_history)"),
    ("status", "text", "active | inactive | deleted: the source's status through the status vocabulary"),
    ("source_changed_at", "timestamptz", "The record's own change time (-infinity when it has none)"),
    ("source_file_at", "timestamptz", "The file's export date, else S3 LastModified"),
    ("source_file_id", "bigint", "ingest.files id of the file the current version came from"),
    ("region", "text", "attributes.region (generated, for analytics)"),
    ("country", "text", "attributes.country (generated, for analytics)"),
    ("lifetime_value", "numeric", "attributes.lifetime_value when a JSON number (generated, for analytics)"),
    ("total_spent", "numeric", "attributes.total_spent when a JSON number (generated, for analytics)"),
    ("revenue_per_employee", "numeric", "revenue / employees, 2 decimals (generated, for analytics)"),
    ("deleted_at", "timestamptz", "When its source stopped holding it (status deleted), else null"),
)
RELATIONSHIPS_SCHEMA = _schema(
    ("relationship_id", "bigint", "Primary key"),
    ("parent_canonical_id", "text", "The parent's canonical id (it may not have arrived yet)"),
    ("child_canonical_id", "text", "The child's canonical id"),
    ("relationship_type", "text", "parent_of"),
    ("properties", "jsonb", "Extra facts of the link"),
    ("effective_from", "timestamptz", "When the link was first seen"),
    ("effective_to", "timestamptz", "When a newer version of the child named another parent (null: current)"),
)
TIME_SERIES_SCHEMA = _schema(
    ("entity_canonical_id", "text", "The entity the point belongs to"),
    ("metric_type", "text", "e.g. monthly_revenue"),
    ("observed_at", "timestamptz", "The point's time (monthly partitions)"),
    ("value", "numeric", "The point's value"),
    ("source_key", "text", "The raw file that carried the point"),
    ("loaded_at", "timestamptz", "When it was loaded"),
)
