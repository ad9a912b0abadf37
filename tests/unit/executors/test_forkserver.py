"""bench.executors.forkserver: the server's JSON lines read back (an answer, silence past a
timeout, a line that is no JSON, a server gone), and a real fork server running cells: one that
exits with its own code and log, one stopped past its time. (Cells of a sweep forked from it:
tests/integration/test_fork_server.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.executors.forkserver import ForkServer, ForkServerError, _answer


def _server(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


@pytest.fixture
def silent() -> Iterator[subprocess.Popen]:
    """A process that says nothing until its stdin closes."""
    proc = _server("import sys; sys.stdin.read()")
    yield proc
    proc.stdin.close()
    proc.wait(10)


def test_an_answer_is_one_json_line():
    proc = _server("print('{\"pid\": 7}'); print('{\"exit\": -15}')")
    assert _answer(proc, 30) == {"pid": 7}
    assert _answer(proc, None) == {"exit": -15}  # no timeout: wait for it
    proc.wait(10)


def test_silence_past_the_timeout_is_no_answer(silent):
    assert _answer(silent, 0.05) is None
    assert silent.poll() is None  # still there: silence is not a failure


def test_a_line_that_is_no_json_is_the_servers_failure():
    proc = _server("print('Traceback (most recent call last):')")
    with pytest.raises(ForkServerError, match=r"the fork server said 'Traceback"):
        _answer(proc, 30)
    proc.wait(10)


def test_a_server_that_exited_says_its_code():
    proc = _server("import sys; sys.exit(3)")
    proc.wait(10)
    with pytest.raises(ForkServerError, match=r"the fork server exited \(code 3\)"):
        _answer(proc, 30)


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    """A real fork server, with nothing preloaded beyond what every cell imports."""
    started = ForkServer([])
    yield started
    started.close()


def test_a_forked_cell_exits_with_its_own_code_into_its_own_log(server, tmp_path: Path):
    log = tmp_path / "cell.log"
    outcome = server.run(["no-such-verb"], dict(os.environ), str(log), timeout_s=120)
    assert outcome == ("exited", 2)  # the CLI's usage error, from the forked process
    assert "invalid choice: 'no-such-verb'" in log.read_text()


def test_a_forked_cell_past_its_time_is_stopped_and_the_server_serves_on(server, tmp_path):
    run = [
        "run",
        "engine=sleep",
        "scenario.warmup_s=0",
        "scenario.min_requests=1000000",
        "scenario.min_duration_s=600",
        "scenario.max_duration_s=600",
    ]
    # a cell that would measure for ten minutes, given two seconds
    outcome = server.run(run, dict(os.environ), str(tmp_path / "slow.log"), timeout_s=2)
    assert outcome == ("timeout", None)
    again = server.run(["no-such-verb"], dict(os.environ), str(tmp_path / "next.log"), 120)
    assert again == ("exited", 2)
