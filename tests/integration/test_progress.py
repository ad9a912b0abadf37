"""A sweep says what each cell is doing while it works: phases on the sweep's terminal and in
the cell's log, the running cell and its phase in `status`, where time went at the end."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import run_cli

PHASES = ["import", "prepare", "load", "warmup", "measure", "write"]


def test_a_running_sweep_says_its_phases_and_status_names_the_running_cell(
    tmp_path: Path,
) -> None:
    sweep = subprocess.Popen(
        [
            sys.executable, "-m", "bench", "sweep", "engine=sleep", "sweep_id=live",
            "grid.axes.threads=[1,2]", "scenario.min_requests=20",
            "scenario.min_duration_s=4", "scenario.ci_target=0",
        ],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen = ""
    deadline = time.monotonic() + 120
    while sweep.poll() is None and time.monotonic() < deadline:
        status = run_cli(["status", "live"], tmp_path)
        if "(measure for" in status.stdout:
            seen = status.stdout
            break
        time.sleep(0.5)
    _, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 0, err
    assert "measuring now: bert_tiny-sleep-fp32-b1-t" in seen, seen
    assert "running 1; pending (no row yet)" in seen
    # the sweep's stream: each cell's phases in order, numbered as the finished lines are
    for number in ("[1/2]", "[2/2]"):
        said = [line for line in err.splitlines() if line.startswith(number) and ": " in line]
        phases = [line.split(": ", 1)[1].split(" ")[0] for line in said]
        assert phases[: len(PHASES)] == PHASES, said
    assert "measure >= 20 requests and 4 s" in err
    assert "measuring; outside it: imports" in err  # where the time went
    # the cell's log in the store has them too; no progress record outlives its cell
    logs = list((tmp_path / "results" / "live" / "logs").rglob("*.log"))
    assert len(logs) == 2 and all("warmup (after load" in log.read_text() for log in logs)
    assert not list((tmp_path / "results" / "live" / "progress").glob("*.json"))
