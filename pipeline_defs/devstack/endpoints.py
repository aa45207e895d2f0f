"""Where the stack's services listen, and which of them the stack runs itself: PostgreSQL when
DATABASE_URL names this machine, moto when AWS_ENDPOINT_URL is unset or names moto's default address."""

from __future__ import annotations

from urllib.parse import urlsplit

from pipeline_defs.devstack.postgres import pg_host_port
from resources.settings import Settings

DEFAULT_MOTO_ENDPOINT = "http://127.0.0.1:4566"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def url_host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def same_endpoint(a: str, b: str) -> bool:
    (ha, pa), (hb, pb) = url_host_port(a, 80), url_host_port(b, 80)
    local = {"localhost", "127.0.0.1"}
    return pa == pb and (ha == hb or (ha in local and hb in local))


def embedded_postgres(settings: Settings) -> bool:
    host, _ = pg_host_port(settings.database_url)
    return host in LOCAL_HOSTS


def moto_here(settings: Settings) -> bool:
    return settings.aws_endpoint_url is None or same_endpoint(
        settings.aws_endpoint_url, DEFAULT_MOTO_ENDPOINT
    )
