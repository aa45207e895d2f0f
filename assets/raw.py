"""The raw bucket's files, upstream of everything: an external asset the landing sensor observes.

Dagster does not materialize it (files arrive by upload); each observation records, per source system,
how many files the registry holds in each status and how old the newest one is, so the asset page
shows what arrived and the lineage graph starts where the data does.
"""

from dagster import AssetKey, AssetSpec

RAW_FILES = AssetKey(["raw", "files"])
OWNERS = ["team:data-platform"]

raw_files = AssetSpec(
    RAW_FILES,
    description="JSON, NDJSON and gzipped exports landing in the raw bucket under crm-data/, erp-data/ and "
    "legacy-data/. Observed by landing_sensor: files per source and status, newest file's age.",
    group_name="raw",
    kinds={"s3"},
    owners=OWNERS,
    tags={"layer": "raw"},
)
