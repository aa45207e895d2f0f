"""Source definitions a test overrides, as a deployment does with SOURCE_DEFINITIONS_PATH (a mapping fix)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from resources.settings import get_settings
from resources.sources.catalogue import SHIPPED, get_sources


class Redefinitions:
    """Shipped definitions rewritten into a folder SOURCE_DEFINITIONS_PATH names; the process's cached
    sources are read again after each change."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch):
        self.folder = folder
        self.monkeypatch = monkeypatch

    def fields(self, source: str, **fields: Any) -> str:
        """`source`'s shipped definition with these `fields` replaced; returns its transformation version."""
        document = json.loads((SHIPPED / f"{source}.json").read_text())
        document["fields"].update(fields)
        (self.folder / f"{source}.json").write_text(json.dumps(document))
        self.monkeypatch.setenv("SOURCE_DEFINITIONS_PATH", str(self.folder))
        get_settings.cache_clear()
        get_sources.cache_clear()
        return get_sources().source(source).transformation_version

    def revenue_scale(self, source: str, scale: str) -> str:
        """Revenue read as before, multiplied by `scale`."""
        shipped = json.loads((SHIPPED / f"{source}.json").read_text())["fields"]["revenue"]
        return self.fields(source, revenue={**shipped, "scale": scale})


@contextmanager
def redefinitions(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Redefinitions]:
    folder.mkdir()
    try:
        yield Redefinitions(folder, monkeypatch)
    finally:
        get_settings.cache_clear()
        get_sources.cache_clear()
