"""Fixtures for every test, registered as plugins (no imports kept alive for their side effects):

- `tests.support.postgres`: `pg` (one embedded PostgreSQL per worker), `db` (its tables emptied);
- `tests.support.aws`: `moto_server` (one per worker), `aws_env`, `aws_settings`;
- `tests.support.stack`: `stack` (both, with this test's own AWS resource names).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resources.settings import get_settings

pytest_plugins = ["tests.support.postgres", "tests.support.aws", "tests.support.stack"]


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
