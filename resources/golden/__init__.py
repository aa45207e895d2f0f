"""Golden entities: stable ids for resolved clusters (`ids`), their records (`survivorship`), the store
(`store`, the resolution's one writer) and what the REST app reads and records (`queries`). Dagster-free,
splink-free: the matching engine hands its output to `store.write_resolution`."""
