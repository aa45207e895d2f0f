"""The environment the stack's children run in (`dagster dev`, uvicorn, the recovery subprocess), and
the part of it other terminals' `pipeline` commands adopt from the state file."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline_defs.devstack.endpoints import moto_here
from pipeline_defs.devstack.postgres import dagster_storage_url
from resources.settings import Settings


def child_env(settings: Settings, extra: dict[str, str]) -> dict[str, str]:
    """This process's environment + every Settings variable as resolved here + `extra`."""
    env = dict(os.environ)
    for name, info in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is not None and info.alias:
            env[info.alias] = str(value)
    env.update(extra)
    return env


def stack_env(settings: Settings, dagster_home: Path) -> dict[str, str]:
    """What the children need beyond the Settings variables: Dagster's storage and home, the region, and
    moto's dummy credentials when the stack runs moto."""
    extra = {
        "DAGSTER_DATABASE_URL": dagster_storage_url(settings.dagster_database_url),
        "DAGSTER_HOME": str(dagster_home),
        "AWS_REGION": settings.aws_region,
        "AWS_DEFAULT_REGION": settings.aws_region,
        "PYTHONUNBUFFERED": "1",
    }
    if moto_here(settings):
        extra["AWS_ACCESS_KEY_ID"] = os.environ.get("AWS_ACCESS_KEY_ID", "testing")
        extra["AWS_SECRET_ACCESS_KEY"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")
    return extra


def adoptable_env(settings: Settings, dagster_home: Path) -> dict[str, str]:
    """The variables the state file hands to other terminals: the Settings variables and the stack's
    extras, without the rest of this process's environment."""
    extra = stack_env(settings, dagster_home)
    env = {
        k: v
        for k, v in child_env(settings, extra).items()
        if k in {f.alias for f in Settings.model_fields.values()} | set(extra)
    }
    env.pop("PYTHONUNBUFFERED", None)
    return env
