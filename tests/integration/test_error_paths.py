"""Every error path is one line and exit 2; Ctrl-C stops cleanly and resumes; files are shared."""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SLEEP_CELL = [
    "engine=sleep",
    "scenario.warmup_requests=1",
    "scenario.warmup_s=0",
    "scenario.min_requests=5",
    "scenario.ci_target=0",
    "scenario.min_duration_s=0.3",
]


def _cli(cwd: Path, *args: str, **popen: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        **popen,  # type: ignore[arg-type]
    )


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The error line: exit 2, no traceback, the last line (a sweep's header may precede it)."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert lines and lines[-1].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr and sum(ln.startswith("error") for ln in lines) == 1
    return lines[-1]


def _running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its parent to be reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_ctrl_c_stops_the_running_cell_and_the_same_command_resumes(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "bench", "sweep", *SLEEP_CELL, "sweep_id=intr",
        "scenario.max_duration_s=4",
    ]  # fmt: skip
    sweep = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    leases = tmp_path / "results" / "intr" / "leases"
    deadline = time.monotonic() + 60
    while not list(leases.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    holder = json.loads(next(leases.glob("*.json")).read_text())
    sweep.send_signal(signal.SIGINT)
    _, err = sweep.communicate(timeout=60)
    assert sweep.returncode == 130
    assert err.strip().splitlines()[-1].startswith("interrupted: ")
    assert "Traceback" not in err
    assert not _running(holder["pid"])  # the cell's process was ended with the sweep
    assert not list(leases.glob("*.json"))
    assert not list((tmp_path / "results" / "intr" / "cells").glob("*/*.parquet"))

    resumed = _cli(tmp_path, *command[3:])
    assert resumed.returncode == 0, resumed.stderr
    assert "1 to run" in resumed.stderr


def test_disk_full_is_one_line_and_leaves_no_partial_file(tmp_path: Path) -> None:
    def small_files() -> None:  # a full disk, as a file-size limit (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    proc = _cli(
        tmp_path, "sweep", *SLEEP_CELL, "sweep_id=full", "scenario.max_duration_s=0.6",
        preexec_fn=small_files,
    )  # fmt: skip
    line = _one_error_line(proc)
    assert "cannot write" in line and "File too large" in line
    assert not [p for p in (tmp_path / "results").rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture
def read_only_root(tmp_path: Path) -> Iterator[Path]:
    """A read-only folder: a read-only mount where this user may mount, else mode 0555."""
    root = tmp_path / "ro"
    root.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(root)],
        capture_output=True, check=False,
    ).returncode == 0  # fmt: skip
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("root here can neither mount nor be refused by mode bits")
        root.chmod(0o555)
    yield root
    if mounted:
        subprocess.run(["umount", str(root)], check=False)
    else:
        root.chmod(0o755)


def test_read_only_store_is_one_line_and_nothing_written(
    tmp_path: Path, read_only_root: Path
) -> None:
    store = f"store.root={read_only_root}/results"
    line = _one_error_line(_cli(tmp_path, "sweep", *SLEEP_CELL, store))
    assert "is not writable" in line
    assert not list(read_only_root.iterdir())


def test_strict_collect_of_a_corrupt_file_is_one_line(tmp_path: Path) -> None:
    cells = tmp_path / "results" / "s" / "cells" / "c"
    cells.mkdir(parents=True)
    (cells / "a.ok.parquet").write_bytes(b"not parquet")
    line = _one_error_line(_cli(tmp_path, "collect", "s", "--strict", "store.root=results"))
    assert "a.ok.parquet" in line
    relaxed = _cli(tmp_path, "collect", "s", "store.root=results", "--strict")  # either order
    assert relaxed.returncode == 2 and "a.ok.parquet" in relaxed.stderr


@pytest.mark.parametrize("verb", ["collect", "report", "status"])
def test_a_sweep_id_that_leaves_the_store_is_refused(tmp_path: Path, verb: str) -> None:
    (tmp_path / "outside").mkdir()
    line = _one_error_line(_cli(tmp_path, verb, "../outside"))
    assert "sweep_id='../outside'" in line
    assert not list((tmp_path / "outside").iterdir())


def test_an_endpoints_user_info_never_appears(tmp_path: Path) -> None:
    env = {**os.environ, "AWS_ENDPOINT_URL": "http://alice:s3cret@127.0.0.1:9"}
    env.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y", AWS_EC2_METADATA_DISABLED="true")
    proc = _cli(tmp_path, "status", "s", "store.root=s3://bucket/p", env=env)
    line = _one_error_line(proc)
    assert "s3cret" not in proc.stderr + proc.stdout and "alice" not in line


def test_store_files_take_the_users_umask(tmp_path: Path) -> None:
    proc = _cli(
        tmp_path, "sweep", *SLEEP_CELL, "sweep_id=shared", "scenario.max_duration_s=0.6",
        preexec_fn=lambda: os.umask(0o022),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    files = [p for p in (tmp_path / "results" / "shared").rglob("*") if p.is_file()]
    assert files and {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}
