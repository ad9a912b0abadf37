"""Nothing outlives its cell, nothing is left behind (issue 33, items 16 and 17).

16: the server a cell starts (`engine.server_command`) ends with its cell on every exit path:
    a cell past its timeout, an interrupted sweep, a cell killed outright, a server that
    ignores SIGTERM.
17: a killed or terminated sweep leaves no cell log in the system's temp folder and an
    orphaned cell's log reaches `logs/`; a timed-out or killed cell leaves no `progress/`
    record; a store write killed midway leaves no temp file; the next run sweeps up what a
    killed process left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

SLEEP = ["engine=sleep", "scenario.min_requests=10", "scenario.ci_target=0"]


def _live_pids(token: str) -> list[int]:
    """Processes with `token` ending one of their arguments (a server's, not the sweep's,
    whose override holds the whole server command), zombies left out (they are dead)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        mine = any(a.endswith(token.encode()) and b" " not in a for a in args)
        if mine and state != "Z":
            found.append(int(entry))
    return found


def _wait_until(condition: Callable[[], object], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


@pytest.fixture
def token() -> Iterator[str]:
    """A word only this test's server processes carry; any still alive at the end are
    killed, so a failing test leaves nothing running."""
    word = f"bench-test-server-{uuid.uuid4().hex}"
    yield word
    for pid in _live_pids(word):
        os.kill(pid, signal.SIGKILL)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The sweep's environment: the test server importable from the test's folder."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def _server_cell(token: str, *extra: str) -> list[str]:
    """An http cell whose server never gets healthy (it sleeps 300 s before it listens)."""
    command = (
        f"{sys.executable} -m tests.support.openai_server --port {{port}} --startup-s 300 "
        f"--log /nonexistent/{token}"
    )
    return [
        "model=opt_tiny",
        "engine=http",
        f"engine.server_command='{command}'",
        "engine.ready_timeout_s=600",
        *extra,
    ]


def _bench(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _start(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    """`python -m bench ARGS` in the background; its output to files (an orphaned cell keeps
    the sweep's stderr open, so a pipe would never close)."""
    out = (tmp_path / "bench.out").open("w")
    err = (tmp_path / "bench.err").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        stdout=out,
        stderr=err,
        text=True,
    )


def _leases(tmp_path: Path, sweep_id: str) -> list[dict]:
    folder = tmp_path / "results" / sweep_id / "leases"
    return [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.is_dir() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _leftovers(sweep_dir: Path) -> list[str]:
    """Temp files, progress records and leases under a sweep's folder."""
    found = [p for p in sweep_dir.rglob(".*.tmp")]
    found += list((sweep_dir / "progress").glob("*.json"))
    found += list((sweep_dir / "leases").glob("*"))
    return [str(p.relative_to(sweep_dir)) for p in found]


# -- 16: the server a cell starts ends with the cell ---------------------------------------


@pytest.mark.parametrize("fork_server", ["true", "false"])
def test_a_cell_past_its_timeout_stops_the_server_it_started(
    tmp_path: Path, token: str, fork_server: str
) -> None:
    proc = _bench(
        tmp_path,
        "sweep",
        *_server_cell(token),
        "executor.timeout_s=4",
        f"executor.fork_server={fork_server}",
        "sweep_id=srv",
    )
    assert proc.returncode == 1, proc.stderr
    assert "timeout" in proc.stdout + proc.stderr
    assert _wait_until(lambda: not _live_pids(token), 3), "the cell's server outlived it"
    assert not _leftovers(tmp_path / "results" / "srv")


@pytest.mark.parametrize("fork_server", ["true", "false"])
def test_an_interrupted_sweep_stops_the_running_cells_server(
    tmp_path: Path, token: str, fork_server: str
) -> None:
    # SIGINT to the sweep's process alone (`timeout -s INT`, a CI runner, an IDE's stop
    # button): the sweep must pass it on, as a terminal's Ctrl-C would have
    sweep = _start(tmp_path, "sweep", *_server_cell(token), f"executor.fork_server={fork_server}")
    try:
        assert _wait_until(lambda: _live_pids(token), 120), "the server never started"
        os.kill(sweep.pid, signal.SIGINT)
        assert sweep.wait(timeout=60) == 130
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert _wait_until(lambda: not _live_pids(token), 3), "the cell's server outlived it"


def test_a_server_ends_when_the_process_that_started_it_is_killed(
    tmp_path: Path, token: str
) -> None:
    run = _start(tmp_path, "run", *_server_cell(token))
    try:
        assert _wait_until(lambda: _live_pids(token), 120), "the server never started"
        run.kill()  # SIGKILL: no handler, no finally; the kernel tells the server
        run.wait()
    finally:
        if run.poll() is None:
            run.kill()
    assert _wait_until(lambda: not _live_pids(token), 5), "the server outlived its cell"


STUBBORN = """\
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a hung server: SIGTERM does nothing
time.sleep(300)
"""


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace_period(
    tmp_path: Path, token: str
) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    command = f"{sys.executable} {script} {token}"
    proc = _bench(
        tmp_path,
        "sweep",
        "model=opt_tiny",
        "engine=http",
        f"engine.server_command='{command}'",
        "engine.ready_timeout_s=600",
        "executor.timeout_s=4",
        "sweep_id=stubborn",
    )
    assert proc.returncode == 1, proc.stderr
    assert _wait_until(lambda: not _live_pids(token), 3), "the stubborn server outlived its cell"


# -- 17: nothing left behind ---------------------------------------------------------------


@pytest.mark.parametrize("fork_server", ["true", "false"])
def test_a_killed_sweep_leaves_no_temp_log_and_its_orphans_log_reaches_logs(
    tmp_path: Path, fork_server: str
) -> None:
    system_temp = tmp_path / "system-temp"
    system_temp.mkdir()
    args = [
        "sweep",
        *SLEEP,
        "scenario.min_duration_s=3",
        "scenario.max_duration_s=3",
        f"executor.fork_server={fork_server}",
        "sweep_id=orphan",
    ]
    sweep = _start(tmp_path, *args, TMPDIR=str(system_temp))
    assert _wait_until(lambda: _leases(tmp_path, "orphan"), 120), "no cell took its lease"
    attempt = _leases(tmp_path, "orphan")[0]["attempt"]
    sweep.kill()  # kill -9: the cell runs on as an orphan
    sweep.wait()
    assert not list(system_temp.glob("bench-cell-*")), "a cell log left in the temp folder"
    sweep_dir = tmp_path / "results" / "orphan"
    assert _wait_until(lambda: not _leases(tmp_path, "orphan"), 60), "the orphan never ended"
    assert list(sweep_dir.glob(f"cells/*/{attempt}.ok.parquet")), "the orphan wrote no row"

    rerun = _bench(tmp_path, *args, TMPDIR=str(system_temp))
    assert rerun.returncode == 0, rerun.stderr
    logs = list(sweep_dir.glob(f"logs/*/{attempt}.log"))
    assert logs, "the orphaned cell's log never reached logs/"
    assert "measure" in logs[0].read_text()
    assert not list(system_temp.iterdir())


def test_a_terminated_sweep_stops_its_cell_and_keeps_its_log(tmp_path: Path) -> None:
    sweep = _start(
        tmp_path,
        "sweep",
        *SLEEP,
        "scenario.min_duration_s=20",
        "scenario.max_duration_s=20",
        "sweep_id=term",
    )
    assert _wait_until(lambda: _leases(tmp_path, "term"), 120), "no cell took its lease"
    holder = _leases(tmp_path, "term")[0]
    sweep.terminate()
    assert sweep.wait(timeout=60) == 143  # SIGTERM's exit code, after the sweep's own cleanup
    assert _wait_until(lambda: not _alive(holder["pid"]), 3), "the cell outlived its sweep"
    sweep_dir = tmp_path / "results" / "term"
    assert not _leftovers(sweep_dir)
    assert list(sweep_dir.glob(f"logs/*/{holder['attempt']}.log")), "the cell's log was lost"


def test_a_timed_out_cell_leaves_no_progress_record_or_temp_file(tmp_path: Path) -> None:
    proc = _bench(
        tmp_path,
        "sweep",
        "engine=sleep",
        "engine.service_ms=20000",
        "scenario.warmup_requests=0",
        "scenario.warmup_s=0",
        "executor.timeout_s=3",
        "sweep_id=slow",
    )
    assert proc.returncode == 1, proc.stderr
    sweep_dir = tmp_path / "results" / "slow"
    assert not _leftovers(sweep_dir)
    assert list(sweep_dir.glob("logs/*/*.log"))


def test_a_cell_killed_from_outside_leaves_no_progress_record(tmp_path: Path) -> None:
    sweep = _start(
        tmp_path,
        "sweep",
        *SLEEP,
        "scenario.min_duration_s=20",
        "scenario.max_duration_s=20",
        "sweep_id=oom",
    )
    try:
        progress = tmp_path / "results" / "oom" / "progress"
        assert _wait_until(lambda: list(progress.glob("*.json")), 120), "no progress record"
        os.kill(_leases(tmp_path, "oom")[0]["pid"], signal.SIGKILL)  # the OOM killer, say
        assert sweep.wait(timeout=60) == 1
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert not _leftovers(tmp_path / "results" / "oom")


KILLED_WRITE = """\
import os, signal, sys
from bench.store import LocalStore

store = LocalStore(sys.argv[1])
if sys.argv[2] == "replace":
    store.write_bytes("s/leases/c.json", b"before")
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # killed while the bytes land
if sys.argv[2] == "create":
    store.create("s/leases/c.json", b"lease")
else:
    store.write_bytes("s/leases/c.json", b"after")
"""


@pytest.mark.parametrize("how", ["create", "write", "replace"])
def test_a_store_write_killed_midway_leaves_no_temp_file(tmp_path: Path, how: str) -> None:
    root = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITE, str(root), how], capture_output=True, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not [p.name for p in root.rglob("*") if p.is_file() and p.name != "c.json"]
    if how == "replace":  # the old content, whole
        assert (root / "s" / "leases" / "c.json").read_bytes() == b"before"


def test_the_next_run_sweeps_up_what_killed_processes_left(tmp_path: Path) -> None:
    args = ["sweep", *SLEEP, "scenario.min_duration_s=0.2", "sweep_id=tidy"]
    assert _bench(tmp_path, *args).returncode == 0
    sweep_dir = tmp_path / "results" / "tidy"
    cell_id = next((sweep_dir / "cells").iterdir()).name
    # what a process killed at the wrong moment leaves: a temp file of a write (hours old),
    # and the progress record of a cell whose process is gone
    leases = sweep_dir / "leases"
    leases.mkdir(exist_ok=True)
    stale = leases / f".{cell_id}.json.k1w2x3.tmp"
    stale.write_bytes(b"{")
    hours_ago = time.time() - 3 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    fresh = leases / f".{cell_id}.json.q9r8s7.tmp"  # being written right now: kept
    fresh.write_bytes(b"{")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    record = {"phase": "measure", "detail": "", "since": hours_ago, "attempt": "gone"}
    record |= {"pid": int(dead.stdout), "host": os.uname().nodename}
    (sweep_dir / "progress").mkdir(exist_ok=True)
    (sweep_dir / "progress" / f"{cell_id}.json").write_text(json.dumps(record))

    rerun = _bench(tmp_path, *args)
    assert rerun.returncode == 0, rerun.stderr
    assert not stale.exists(), "a stale temp file was not swept up"
    assert fresh.exists(), "a temp file being written was removed"
    assert not (sweep_dir / "progress" / f"{cell_id}.json").exists()
