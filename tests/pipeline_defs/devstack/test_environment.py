"""The environment of the dev stack's children."""

from __future__ import annotations

from pipeline_defs.devstack.environment import child_env
from resources.settings import Settings


def test_child_env_carries_every_setting_and_the_extras(monkeypatch):
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    s = Settings(RAW_BUCKET="r", AWS_ENDPOINT_URL="http://127.0.0.1:4566")
    env = child_env(s, {"DAGSTER_HOME": "/x"})
    aliases = {f.alias for n, f in Settings.model_fields.items() if getattr(s, n) is not None}
    assert aliases <= set(env)
    assert env["RAW_BUCKET"] == "r" and env["DAGSTER_HOME"] == "/x" and env["SOMETHING_ELSE"] == "kept"
