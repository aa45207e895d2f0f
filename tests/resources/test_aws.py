"""boto3 clients for the configured endpoint."""

from __future__ import annotations

from resources.aws import aws_client
from resources.settings import Settings


def test_local_endpoint_without_credentials_uses_dummy_ones(monkeypatch):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    client = aws_client("s3", Settings(AWS_ENDPOINT_URL="http://127.0.0.1:1"))
    creds = client._request_signer._credentials
    assert (creds.access_key, creds.secret_key) == ("testing", "testing")
    assert client.meta.endpoint_url == "http://127.0.0.1:1"
