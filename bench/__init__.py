"""Ingest benchmark (`make bench`, `python -m bench.ingest_bench`). Not part of the shipped package."""
