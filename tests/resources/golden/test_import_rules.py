"""The golden modules' import rules: the REST app (and what it imports of resources/golden) loads neither
splink nor duckdb, nor dagster; the writer's modules stay dagster-free too."""

from __future__ import annotations

import subprocess
import sys

from resources.settings import PROJECT_ROOT


def loaded_by(*modules: str) -> set[str]:
    code = f"import sys\nimport {', '.join(modules)}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    return set(out.stdout.split())


def test_the_rest_app_loads_neither_splink_duckdb_nor_dagster():
    assert not loaded_by("api.app", "api.routes.golden", "resources.golden.queries") & {
        "splink",
        "duckdb",
        "dagster",
    }


def test_the_golden_store_loads_neither_dagster_nor_the_matching_engine():
    assert not loaded_by("resources.golden.store") & {"splink", "duckdb", "dagster", "pandas"}
