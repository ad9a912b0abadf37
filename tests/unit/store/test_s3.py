"""bench.store.s3 without an S3 server: the root's bucket and prefix, the retry budget,
botocore's errors turned into one StoreError line, and an endpoint that does not answer (a
closed loopback port) found fast. Reads and writes against an S3 API are
tests/integration/test_s3.py's, on moto's server."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from bench.config.checks import ConfigError
from bench.store import StoreError
from bench.store.s3 import MAX_ATTEMPTS, S3Store, max_attempts


@pytest.fixture(scope="module")
def endpoint() -> str:
    """The URL of a loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture(scope="module")
def client(endpoint: str) -> Any:
    """One boto3 client for the module (making one takes most of a second), one try a call,
    dummy credentials, the closed endpoint."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> str:
    """Dummy credentials and the closed endpoint in the environment, for the store's own
    client; the endpoint's URL."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(key, raising=False)
    return endpoint


def _error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "GetObject")


def test_the_root_names_the_bucket_and_prefix_and_each_uri_is_under_it(client):
    store = S3Store("s3://bench-results/team/runs/", client=client)
    assert (store.bucket, store.prefix, store.root_uri) == (
        "bench-results",
        "team/runs",
        "s3://bench-results/team/runs",
    )
    assert store.uri("s/cells/a.parquet") == "s3://bench-results/team/runs/s/cells/a.parquet"
    assert S3Store("s3://bench-results", client).uri("s/m.json") == "s3://bench-results/s/m.json"


@pytest.mark.parametrize("root", ["s3://ab", "s3://", f"s3://{'b' * 64}/p"])
def test_a_bucket_name_of_the_wrong_length_is_refused(root, client):
    with pytest.raises(ConfigError) as info:
        S3Store(root, client=client)
    assert info.value.key == "store.root" and "BUCKET 3-63 chars" in str(info.value)


def test_the_retry_budget_is_aws_max_attempts_or_ours(monkeypatch):
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    assert max_attempts() == MAX_ATTEMPTS
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", " 3 ")
    assert max_attempts() == 3
    for bad in ("0", "-2", "many", "2.5"):
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", bad)
        with pytest.raises(ConfigError, match=r"AWS_MAX_ATTEMPTS=.* whole number of tries >= 1"):
            max_attempts()


def test_the_client_counts_the_first_try_in_its_budget(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "4")
    store = S3Store("s3://bench-results/p")
    assert store.client.meta.config.retries["total_max_attempts"] == 4
    assert store.client.meta.endpoint_url == aws_env


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (_error("NoSuchBucket"), "bucket 'bench-results' does not exist"),
        (_error("AccessDenied"), "access denied (AccessDenied)"),
        (_error("SignatureDoesNotMatch"), "access denied (SignatureDoesNotMatch)"),
        (_error("SlowDown", "Please reduce your request rate."), "SlowDown: Please reduce"),
        (RuntimeError("boom"), "RuntimeError: boom"),
    ],
)
def test_an_error_is_one_line_naming_the_action_the_object_and_why(error, said, client):
    store = S3Store("s3://bench-results/p", client=client)
    failure = store._fail("read", "s/a.parquet", error)
    assert str(failure).startswith("read s3://bench-results/p/s/a.parquet: ")
    assert said in str(failure) and "\n" not in str(failure)
    assert str(store._fail("list", "", error)).startswith("list s3://bench-results: ")


def test_no_answer_says_the_endpoint_and_the_tries_spent(client, endpoint):
    store = S3Store("s3://bench-results/p", client=client)
    failure = store._fail("write", "x", EndpointConnectionError(endpoint_url=endpoint))
    assert str(failure) == (
        f"write s3://bench-results/p/x: the S3 endpoint {endpoint} is unreachable after 1 try "
        "(EndpointConnectionError)"
    )


def test_a_call_to_an_endpoint_that_does_not_answer_raises_a_store_error(client):
    """Every call ends in StoreError, never botocore's own exception: here a real request to
    a closed loopback port, with one try allowed."""
    store = S3Store("s3://bench-results/p", client=client)
    with pytest.raises(StoreError, match=r"^head s3://bench-results/p/s/m\.json: the S3 endpoint"):
        store.exists("s/m.json")
    with pytest.raises(StoreError, match=r"unreachable after 1 try"):
        store.write_bytes("s/m.json", b"{}")


def test_check_refuses_an_unreachable_endpoint_at_once(client, endpoint):
    store = S3Store("s3://bench-results/p", client=client)
    with pytest.raises(StoreError) as info:
        store.check()
    message = str(info.value)
    assert message.startswith("store.root='s3://bench-results/p': cannot reach the S3 endpoint ")
    assert endpoint in message and "\n" not in message


def test_scan_options_carry_the_endpoint_region_and_credentials_boto3_resolved(aws_env):
    options = S3Store("s3://bench-results/p").scan_options()
    assert options == {
        "aws_region": "us-east-1",
        "aws_endpoint_url": aws_env,
        "aws_allow_http": "true",
        "aws_access_key_id": "test-key",
        "aws_secret_access_key": "test-secret",
    }
