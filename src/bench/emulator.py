"""A local S3 (and AWS Batch) API for tests and benchmarks: moto's server as a separate process
on a free loopback port. Needs the `dev` extra (moto[server]).

Nothing here talks to AWS: the server binds 127.0.0.1, and `aws_env` sets dummy credentials,
the endpoint and no instance-metadata lookups, so no request can leave the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from bench.engines.ports import free_port

START_TIMEOUT_S = 30.0


def _wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return
        except OSError:
            time.sleep(0.1)  # startup only: nothing is being measured yet
    raise RuntimeError(f"moto server did not answer at {url} within {START_TIMEOUT_S} s")


@contextmanager
def moto_server() -> Iterator[str]:
    """Start moto's server on a free loopback port; yield its URL; stop it on exit."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def aws_env(endpoint: str) -> dict[str, str]:
    """Environment for clients of the emulator: dummy credentials, its endpoint, no IMDS."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret-not-real",
        "AWS_SESSION_TOKEN": "testing-token",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
