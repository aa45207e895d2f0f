"""Ingest: files in the raw bucket → the canonical tables (parse, register, load). Dagster-free."""
