"""The API's connection to RDS Proxy with IAM auth: URLs without a password and TLS that verifies the
server; a fresh token for every new connection."""

import boto3
from psycopg.conninfo import conninfo_to_dict

from resources.clients.db_iam import iam_auth_kwargs, iam_database_urls

ENV = {
    "DATABASE_PROXY_ENDPOINT": "canonical-prod-db-proxy.proxy-abc.eu-west-1.rds.amazonaws.com",
    "DATABASE_NAME": "canonical",
    "DATABASE_USER": "pipeline_writer_iam",
    "READONLY_DATABASE_USER": "pipeline_reader_iam",
}


def test_urls_name_the_proxy_and_role_carry_no_password_and_verify_the_server():
    urls = iam_database_urls(ENV)
    assert set(urls) == {"DATABASE_URL", "READONLY_DATABASE_URL"}
    reader = conninfo_to_dict(urls["READONLY_DATABASE_URL"])
    assert reader["host"] == ENV["DATABASE_PROXY_ENDPOINT"] and reader["user"] == "pipeline_reader_iam"
    assert "password" not in reader
    assert (reader["sslmode"], reader["sslrootcert"]) == ("verify-full", "system")


def test_every_new_connection_gets_a_fresh_token_for_its_role(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    rds = boto3.session.Session().client("rds", region_name="eu-west-1")
    signed = []
    sign = rds.generate_db_auth_token

    def counting(**kw):
        signed.append(kw)
        return sign(**kw)

    rds.generate_db_auth_token = counting
    kwargs = iam_auth_kwargs(iam_database_urls(ENV)["READONLY_DATABASE_URL"], rds, {"connect_timeout": 5})
    first, second = kwargs(), kwargs()
    assert second["password"].startswith(ENV["DATABASE_PROXY_ENDPOINT"])
    assert first["connect_timeout"] == 5
    token = first["password"]
    # An RDS IAM auth token: a presigned `connect` request for this host, port and user (signed locally).
    assert token.startswith(f"{ENV['DATABASE_PROXY_ENDPOINT']}:5432/?Action=connect")
    assert "DBUser=pipeline_reader_iam" in token and "X-Amz-Signature=" in token
    # Signed again for the second connection (a token is valid 15 minutes; a pool lives longer).
    assert len(signed) == 2 and signed[0] == {
        "DBHostname": ENV["DATABASE_PROXY_ENDPOINT"],
        "Port": 5432,
        "DBUsername": "pipeline_reader_iam",
    }


def test_the_api_signs_a_token_for_every_connection_it_opens_itself(monkeypatch):
    """Pools and the health check's direct connection alike: no path of the API connects without one."""
    from api.config import ApiSettings
    from api.state import AppState
    from resources.settings import Settings

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    urls = iam_database_urls(ENV)
    state = AppState(
        settings=Settings(
            DATABASE_URL=urls["DATABASE_URL"],
            READONLY_DATABASE_URL=urls["READONLY_DATABASE_URL"],
            AWS_REGION="eu-west-1",
        ),
        api=ApiSettings(DATABASE_IAM_AUTH=True),
    )
    params = state.connect_params(urls["READONLY_DATABASE_URL"], {"connect_timeout": 3})
    assert params["connect_timeout"] == 3 and "DBUser=pipeline_reader_iam" in params["password"]
    assert callable(state.connect_kwargs(urls["DATABASE_URL"], {}))
    plain = AppState(settings=Settings(), api=ApiSettings())
    assert plain.connect_params("postgresql://u:p@h/d", {"connect_timeout": 3}) == {"connect_timeout": 3}
