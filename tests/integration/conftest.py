"""Fixtures the integration tests share."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import REPO

SERVER = [sys.executable, "-m", "tests.support.openai_server"]


@pytest.fixture
def openai_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The OpenAI-compatible test server on loopback, started with the test's parameters
    (indirect, tests.support.http_cells.server_args); its URL."""
    args = list(getattr(request, "param", []))
    proc = subprocess.Popen(
        [*SERVER, "--port", "0", *args], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = proc.stdout.readline().split()[-1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()
