"""Clients of the outside world (PostgreSQL, AWS, secrets) and the stores built on them. Dagster-free."""
