"""Telemetry in a real cell: a busy neighbour is seen and flagged, and the window's samples are
stored beside the request samples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.cell.runner import run_cell
from bench.executors.job import save_result
from bench.plan.grid import plan_from_overrides
from bench.store import SweepPaths, open_store

SPIN = "import time\nend = time.time() + 30\nwhile time.time() < end: pass\n"


def _sleep_cell(*overrides: str):
    return plan_from_overrides(
        [
            "engine=sleep",
            "engine.service_ms=5",
            "scenario.warmup_s=0.2",
            "scenario.min_requests=20",
            "scenario.min_duration_s=1.5",
            "scenario.ci_target=0",
            *overrides,
        ]
    ).cells[0]


def test_a_spinning_neighbour_flags_the_row_and_the_samples_are_stored(tmp_path: Path):
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        result = run_cell(_sleep_cell())
    finally:
        spinner.kill()
        spinner.wait()
    row = result.row
    assert row["status"] == "ok", row.get("error")
    # the sleep engine idles: nearly all the busy CPU is the neighbour's
    assert row["host_other_cpus_mean"] > 0.6, row
    assert row["host_busy"] is True and "other processes used" in row["host_busy_reason"]
    assert row["gpu_telemetry"] == "no GPU in this cell"
    # samples every 0.2 s inside a window of >= 1.5 s, and none from warmup or loading
    assert row["telemetry_samples"] >= 5
    window_ns = row["window_s"] * 1e9
    times = result.telemetry.column("t_ns").to_pylist()
    assert len(times) == row["telemetry_samples"]
    assert max(times) - min(times) <= window_ns
    store = open_store(str(tmp_path))
    save_result(store, result)
    stored = store.read_table(
        SweepPaths(row["sweep_id"]).telemetry(row["cell_id"], row["attempt_id"])
    )
    assert stored.equals(result.telemetry)
