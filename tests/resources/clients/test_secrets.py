"""Database URLs from Secrets Manager secrets: the API Lambda's cold start and the Dagster image."""

import json

from resources.clients.secrets import database_urls_from_secret_arns, url_from_secret

RDS_SECRET = {
    "engine": "postgres",
    "username": "pipeline_reader",
    "password": "p@ss w/rd:1",
    "host": "db.internal",
    "port": 5432,
    "dbname": "canonical",
}


def test_a_secret_becomes_a_tls_url_with_the_password_escaped():
    assert (
        url_from_secret(RDS_SECRET, "x")
        == "postgresql://pipeline_reader:p%40ss%20w%2Frd%3A1@db.internal:5432/canonical?sslmode=require"
    )


def test_the_lambda_reads_each_secret_once_through_the_proxy_and_keeps_explicit_urls():
    env = {
        "DATABASE_SECRET_ARN": "arn:w",
        "READONLY_DATABASE_SECRET_ARN": "arn:r",
        "DATABASE_PROXY_ENDPOINT": "proxy.example",
        "DATABASE_NAME": "canonical",
    }
    fetched: list[str] = []

    def get_secret(arn: str) -> str:
        fetched.append(arn)
        return json.dumps({**RDS_SECRET, "username": "writer" if arn == "arn:w" else "reader"})

    assert database_urls_from_secret_arns(env, get_secret) == ["DATABASE_URL", "READONLY_DATABASE_URL"]
    assert (
        env["DATABASE_URL"].startswith("postgresql://writer:")
        and "@proxy.example:5432/canonical" in env["DATABASE_URL"]
    )
    assert env["READONLY_DATABASE_URL"].startswith("postgresql://reader:")
    assert fetched == ["arn:w", "arn:r"]
    env2 = {"DATABASE_SECRET_ARN": "arn:w", "DATABASE_URL": "postgresql://explicit"}
    assert database_urls_from_secret_arns(env2, get_secret) == []
    assert env2["DATABASE_URL"] == "postgresql://explicit"
