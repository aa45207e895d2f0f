"""The canonical model: how source records become canonical entities. Pure Python, dagster-free."""
