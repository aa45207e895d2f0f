"""The URL forms each PostgreSQL client of the dev stack needs."""

from __future__ import annotations

from pipeline_defs.devstack.postgres import dagster_storage_url, libpq_url, url_on_port


def test_dagster_storage_url_names_psycopg2_for_sqlalchemy_and_back():
    url = "postgresql://postgres:pw@127.0.0.1:5432/dagster"
    assert dagster_storage_url(url) == "postgresql+psycopg2://postgres:pw@127.0.0.1:5432/dagster"
    assert dagster_storage_url("postgresql+psycopg2://x@h/d") == "postgresql+psycopg2://x@h/d"
    assert libpq_url(dagster_storage_url(url)) == url


def test_url_on_port_keeps_credentials_and_database():
    url = "postgresql://pipeline_reader:pipeline_reader@127.0.0.1:5432/canonical"
    assert url_on_port(url, 5433) == "postgresql://pipeline_reader:pipeline_reader@127.0.0.1:5433/canonical"
    assert url_on_port("host=x port=1", 5433) == "host=x port=1"
