"""boto3 clients for the configured endpoint."""

from __future__ import annotations

from resources.clients.aws import aws_client
from resources.settings import Settings


def test_local_endpoint_without_credentials_uses_dummy_ones(monkeypatch):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    client = aws_client("s3", Settings(AWS_ENDPOINT_URL="http://127.0.0.1:1"))
    creds = client._request_signer._credentials
    assert (creds.access_key, creds.secret_key) == ("testing", "testing")
    assert client.meta.endpoint_url == "http://127.0.0.1:1"


def test_a_client_keeps_as_many_connections_as_asked_and_the_rest_of_its_config():
    client = aws_client("dynamodb", Settings(AWS_ENDPOINT_URL="http://127.0.0.1:1"), max_pool_connections=40)
    assert client.meta.config.max_pool_connections == 40
    assert client.meta.config.retries["mode"] == "standard"
    assert client.meta.config.s3 == {"addressing_style": "path"}
