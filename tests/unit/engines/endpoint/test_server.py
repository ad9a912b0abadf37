"""engine=http's server mode: the command filled in, and a server that exits early."""

from __future__ import annotations

import sys
import time

import pytest

from bench.engines.endpoint.errors import HttpError
from bench.engines.endpoint.server import LocalServer, server_argv


def test_the_command_gets_its_port_checkpoint_model_and_python() -> None:
    argv = server_argv(
        "{python} serve {checkpoint} --port {port} --name '{model} x'", 8123, "/c", "m"
    )
    assert argv == [sys.executable, "serve", "/c", "--port", "8123", "--name", "m x"]


def test_a_server_that_exits_before_it_is_healthy_says_its_code() -> None:
    server = LocalServer("{python} -c 'import sys; sys.exit(3)'")
    server.start(checkpoint="", model="m")
    deadline = time.monotonic() + 30
    while server.process is not None and server.process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with pytest.raises(HttpError, match="exited with code 3"):
        server.fail_if_exited()
    assert server.stop() == 3 and server.process is None and server.stop() == 3
