"""No row is lost or overwritten: concurrent sweeps, forced re-runs that fail, orphans."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

GRID = """# @package _global_
grid:
  name: conc
  axes:
    engine: [sleep]
    batch_size: [1, 2, 3, 4]
engine:
  service_ms: 5.0
scenario:
  warmup_requests: 1
  warmup_s: 0
  min_requests: 5
  min_duration_s: 1.5
  max_duration_s: 1.5
  ci_target: 0.0
"""


def _attempts(sweep_dir: Path) -> pd.DataFrame:
    """Every attempt row under cells/, one per file, with the file it came from."""
    rows = []
    for path in sorted((sweep_dir / "cells").glob("*/*.parquet")):
        row = pq.read_table(path).to_pylist()[0]
        row["file"] = path.name
        rows.append(row)
    return pd.DataFrame(rows)


def _bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m bench ARGS` to its end, in the test's folder."""
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


def _sweep(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "sweep", "+grid=conc", "sweep_id=conc", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_identical_sweeps_at_once_measure_each_cell_once(
    conf_copy: Path, tmp_path: Path
) -> None:
    (conf_copy / "grid" / "conc.yaml").write_text(GRID)
    sweeps = [_sweep(tmp_path), _sweep(tmp_path)]
    outputs = [s.communicate(timeout=300) for s in sweeps]
    assert [s.returncode for s in sweeps] == [0, 0], outputs

    sweep_dir = tmp_path / "results" / "conc"
    attempts = _attempts(sweep_dir)
    # exactly one attempt per cell, and it is ok: the other sweep stood down, wrote nothing
    assert sorted(attempts["status"].value_counts().items()) == [("ok", 4)]
    assert attempts["cell_id"].is_unique
    stood_down = "".join(err for _, err in outputs).count("skipped")
    assert stood_down == 4, outputs  # each cell skipped by exactly one of the two sweeps
    frame = pd.read_parquet(sweep_dir / "aggregated.parquet")
    assert frame["status"].tolist() == ["ok"] * 4
    assert not list((sweep_dir / "leases").glob("*.json"))  # every lease given back


@pytest.mark.slow
def test_forced_sweeps_at_once_never_measure_one_cell_at_the_same_time(
    conf_copy: Path, tmp_path: Path
) -> None:
    (conf_copy / "grid" / "conc.yaml").write_text(GRID)
    first = _sweep(tmp_path)
    first.communicate(timeout=300)
    sweeps = [_sweep(tmp_path, "force=true"), _sweep(tmp_path, "force=true")]
    outputs = [s.communicate(timeout=300) for s in sweeps]
    assert [s.returncode for s in sweeps] == [0, 0], outputs

    attempts = _attempts(tmp_path / "results" / "conc")
    assert set(attempts["status"]) == {"ok"}  # no failure row anywhere
    for _, same_cell in attempts.groupby("cell_id"):
        spans = sorted(zip(same_cell["started_at"], same_cell["finished_at"], strict=True))
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start  # one measurement of a cell at a time


@pytest.mark.slow
def test_a_forced_rerun_that_fails_keeps_the_ok_row(conf_copy: Path, tmp_path: Path) -> None:
    (conf_copy / "grid" / "conc.yaml").write_text(GRID)
    assert _sweep(tmp_path).wait(timeout=300) == 0
    rerun = _sweep(tmp_path, "force=true", "executor.timeout_s=0.5")
    _, err = rerun.communicate(timeout=300)
    assert err.count("] timeout ") == 4, err
    # this run failed every cell (exit 1, named), while every cell keeps its ok row
    assert rerun.returncode == 1, err

    collect = _bench(tmp_path, "collect", "conc")
    frame = pd.read_parquet(tmp_path / "results" / "conc" / "aggregated.parquet")
    assert frame["status"].tolist() == ["ok"] * 4  # the ok rows, not the later timeouts
    assert frame["n"].min() > 0
    attempts = _attempts(tmp_path / "results" / "conc")
    assert sorted(attempts["status"].value_counts().items()) == [("ok", 4), ("timeout", 4)]
    listed = [line for line in collect.stdout.splitlines() if line.startswith("other attempt")]
    assert len(listed) == 4 and all(": timeout (attempt " in line for line in listed)


@pytest.mark.slow
def test_a_rerun_beside_an_orphaned_cell_stands_down(conf_copy: Path, tmp_path: Path) -> None:
    slow = GRID.replace("min_duration_s: 1.5", "min_duration_s: 8").replace(
        "max_duration_s: 1.5", "max_duration_s: 8"
    )
    (conf_copy / "grid" / "conc.yaml").write_text(slow)
    orphaned = _sweep(tmp_path)
    leases = tmp_path / "results" / "conc" / "leases"
    deadline = time.monotonic() + 60
    while not list(leases.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(leases.glob("*.json")), "the first cell never took its lease"
    os.kill(orphaned.pid, signal.SIGKILL)  # the parent dies; its cell process runs on
    orphaned.wait()  # (not communicate: the cell still holds the parent's stderr it says phases on)
    status = _bench(tmp_path, "status", "conc")
    assert status.stdout.count("measuring now: ") == 1, status.stdout + status.stderr

    rerun = _sweep(tmp_path, "executor.timeout_s=60")
    _, err = rerun.communicate(timeout=300)
    assert "skipped" in err and "is being measured by attempt" in err, err
    attempts = _attempts(tmp_path / "results" / "conc")
    # the orphan's ok row and the re-run's for the other cells: no failure over anything
    assert set(attempts["status"]) == {"ok"}
    assert attempts["cell_id"].is_unique
