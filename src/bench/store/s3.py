"""S3 store: `store.root=s3://bucket/prefix`, through boto3.

- Credentials come from the standard AWS chain (environment, profile, role); they are never
  written anywhere by the harness.
- The endpoint is boto3's own resolution: AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL, then AWS.
  (pyarrow's S3 filesystem ignores those variables, which is one reason bytes move through
  boto3 here and pyarrow only encodes and decodes.)
- Every write is one PUT, so a reader sees a whole object or none.
- Transient errors (500, 503 SlowDown, throttling, dropped connections) are retried with
  exponential backoff and jitter by botocore's `standard` retry mode: MAX_ATTEMPTS tries of a
  call in all, or the standard AWS_MAX_ATTEMPTS. Once they are spent, every call raises
  StoreError (one line: the object, and that the endpoint is unreachable), never botocore's
  own exception.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import Iterator
from typing import Any

from bench.config.checks import ConfigError
from bench.store.base import Store, StoreError

MAX_ATTEMPTS = 10  # tries of one call, the first included (AWS_MAX_ATTEMPTS: another number)
CONNECT_CHECK_S = 5.0
MAX_POOL_CONNECTIONS = 64


def _split(root: str) -> tuple[str, str]:
    rest = root.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _unreachable(exc: Exception) -> bool:
    """No answer came: no connection, a dropped one, a timeout, a body cut off."""
    from botocore.exceptions import ConnectionError, HTTPClientError

    return isinstance(exc, (ConnectionError, HTTPClientError))


def max_attempts() -> int:
    """Tries of one S3 call: AWS_MAX_ATTEMPTS (the standard variable, which bench's own
    retry setting would otherwise override) or MAX_ATTEMPTS."""
    raw = os.environ.get("AWS_MAX_ATTEMPTS", "").strip()
    if not raw:
        return MAX_ATTEMPTS
    try:
        tries = int(raw)
    except ValueError:
        tries = 0
    if tries < 1:
        raise ConfigError("AWS_MAX_ATTEMPTS", raw, "must be a whole number of tries >= 1")
    return tries


class S3Store(Store):
    """A store rooted at s3://bucket/prefix."""

    io_threads = 16  # GETs are round trips: overlap them

    def __init__(self, root: str, client: Any | None = None) -> None:
        self.root_uri = root.rstrip("/")
        self.bucket, self.prefix = _split(root)
        if not 3 <= len(self.bucket) <= 63:
            raise ConfigError("store.root", root, "expected s3://BUCKET/prefix, BUCKET 3-63 chars")
        self.client = client or self._client()

    @staticmethod
    def _client() -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            # total_max_attempts counts the first try (max_attempts would count retries only)
            retries={"total_max_attempts": max_attempts(), "mode": "standard"},
            max_pool_connections=MAX_POOL_CONNECTIONS,
            connect_timeout=10,
            read_timeout=60,
        )
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return boto3.session.Session().client("s3", config=config, region_name=region)

    def scan_options(self) -> dict[str, str] | None:
        """The endpoint, region and credentials boto3 resolved, for polars' own S3 client
        (held in memory only, like boto3's)."""
        import boto3

        options = {"aws_region": self.client.meta.region_name or "us-east-1"}
        endpoint = self.client.meta.endpoint_url
        if endpoint:
            options["aws_endpoint_url"] = endpoint
            options["aws_allow_http"] = "true" if endpoint.startswith("http://") else "false"
        credentials = boto3.session.Session().get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            options["aws_access_key_id"] = frozen.access_key
            options["aws_secret_access_key"] = frozen.secret_key
            if frozen.token:
                options["aws_session_token"] = frozen.token
        return options

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def uri(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self._key(rel)}"

    def _fail(self, action: str, rel: str, exc: Exception) -> StoreError:
        code = _code(exc)
        target = self.uri(rel) if rel else f"s3://{self.bucket}"
        if _unreachable(exc):
            why = f"{self._unreachable_why()} ({type(exc).__name__})"
        elif code in ("NoSuchBucket",):
            why = f"bucket {self.bucket!r} does not exist"
        elif code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            why = f"access denied ({code})"
        elif code:
            why = f"{code}: {getattr(exc, 'response', {}).get('Error', {}).get('Message', '')}"
        else:
            why = f"{type(exc).__name__}: {exc}"
        return StoreError(f"{action} {target}: {why}")

    def _unreachable_why(self) -> str:
        endpoint = self.client.meta.endpoint_url
        tries = (self.client.meta.config.retries or {}).get("total_max_attempts")
        spent = f"after {tries} {'try' if tries == 1 else 'tries'}" if tries else "after retries"
        return f"the S3 endpoint {endpoint} is unreachable {spent}"

    def check(self, writing: bool = True) -> None:
        """Fail early, in one line, when the bucket is missing, denied or unreachable."""
        from botocore.exceptions import BotoCoreError, ClientError

        self._check_reachable()
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise StoreError(
                    f"store.root={self.root_uri!r}: bucket {self.bucket!r} does not exist"
                ) from exc
            if _code(exc) in ("403", "AccessDenied"):
                raise StoreError(
                    f"store.root={self.root_uri!r}: access to bucket {self.bucket!r} denied"
                ) from exc
            raise self._fail("check", "", exc) from exc
        except BotoCoreError as exc:  # endpoint unreachable, no credentials, ...
            raise StoreError(f"store.root={self.root_uri!r}: {exc}") from exc

    def _check_reachable(self) -> None:
        """One TCP connect to the endpoint: a wrong endpoint is reported in seconds, not after
        the backoff that transient errors rightly get."""
        url = urllib.parse.urlsplit(self.client.meta.endpoint_url)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname, port), timeout=CONNECT_CHECK_S).close()
        except OSError as exc:
            raise StoreError(
                f"store.root={self.root_uri!r}: cannot reach the S3 endpoint "
                f"{url.scheme}://{url.netloc} ({exc.strerror or exc})"
            ) from exc

    def exists(self, rel: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(rel))
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._fail("head", rel, exc) from exc
        return True

    def write_bytes(self, rel: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(rel), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("write", rel, exc) from exc

    def read_bytes(self, rel: str) -> bytes:
        return self.read_versioned(rel)[0]

    def _iter_keys(
        self, rel_dir: str, suffix: str, delimiter: str | None
    ) -> Iterator[tuple[str, str]]:
        """(key relative to the root, size:ETag) under rel_dir ending in suffix, page by page."""
        from botocore.exceptions import BotoCoreError, ClientError

        prefix = self._key(rel_dir).rstrip("/") + "/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        listing = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            listing["Delimiter"] = delimiter
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**listing):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key.endswith(suffix):
                        yield key[strip:], f"{item.get('Size', '')}:{item.get('ETag', '')}"
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("list", rel_dir, exc) from exc

    def _keys(self, rel_dir: str, suffix: str, delimiter: str | None) -> dict[str, str]:
        return dict(self._iter_keys(rel_dir, suffix, delimiter))

    def has_files(self, rel_dir: str, suffix: str = "") -> bool:
        return next(self._iter_keys(rel_dir, suffix, None), None) is not None

    def list(self, rel_dir: str, suffix: str = "") -> list[str]:
        return sorted(self._keys(rel_dir, suffix, "/"))

    def folders(self) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        prefix = f"{self.prefix}/" if self.prefix else ""
        listing = {"Bucket": self.bucket, "Prefix": prefix, "Delimiter": "/"}
        try:
            pages = list(self.client.get_paginator("list_objects_v2").paginate(**listing))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("list", "", exc) from exc
        found = [
            p["Prefix"][len(prefix) :] for page in pages for p in page.get("CommonPrefixes", [])
        ]
        return sorted(name.rstrip("/") for name in found)

    def list_versions(self, rel_dir: str, suffix: str = "") -> dict[str, str]:
        return self._keys(rel_dir, suffix, None)  # no delimiter: every key under the prefix

    def _put_if(self, rel: str, data: bytes, condition: dict[str, str]) -> bool:
        """A conditional PUT (S3 has them since 2024); False when the condition fails."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(rel), Body=data, **condition)
        except (ClientError, BotoCoreError) as exc:
            # 409: another conditional write to the key was in flight; it won
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise self._fail("write", rel, exc) from exc
        return True

    def create(self, rel: str, data: bytes) -> bool:
        return self._put_if(rel, data, {"IfNoneMatch": "*"})

    def read_versioned(self, rel: str) -> tuple[bytes, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(rel))
            # inside: a body cut off mid-read is not retried by botocore, and is no answer
            return answer["Body"].read(), answer["ETag"]
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise FileNotFoundError(self.uri(rel)) from exc
            raise self._fail("read", rel, exc) from exc

    def replace_if(self, rel: str, data: bytes, version: str) -> bool:
        return self._put_if(rel, data, {"IfMatch": version})

    def delete(self, rel: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(rel))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("delete", rel, exc) from exc
