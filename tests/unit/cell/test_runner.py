"""run_cell: one cell in this process, always one row, checked against the sleep engine
(known service time), the null engine (the harness's own cost) and an engine that fails.

What a sleep can never do (return early, so no request is quicker than its service time and
no client beats one request per service time) is checked here; how close the measured
figures come to the service time on this host is a timing claim, checked by
benchmarks/timing_claims.py where a busy host cannot fail the suite."""

from __future__ import annotations

import time

import pytest

from bench.cell.runner import run_cell
from bench.engines.calibration import SleepEngine
from bench.plan.grid import plan_from_overrides
from bench.row.schema import SAMPLES_SCHEMA, rows_to_table
from tests.support.bounded import BoomError, run_bounded

SERVICE_MS = 5.0


def _sleep_cell(**settings):
    overrides = ["engine=sleep", f"engine.service_ms={SERVICE_MS}"]
    overrides += [f"{key}={value}" for key, value in settings.items()]
    return plan_from_overrides(overrides).cells[0]


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_sleep_engine_never_beats_its_service_time(threads, batch_size):
    cell = _sleep_cell(
        threads=threads,
        batch_size=batch_size,
        **{
            "scenario.warmup_requests": 2,
            "scenario.warmup_s": 0,
            "scenario.min_requests": 50,
            "scenario.min_duration_s": 0.8,
            "scenario.max_duration_s": 5.0,
            "scenario.ci_target": 0.0,  # stop at the minimums: this checks the rates
        },
    )
    result = run_cell(cell)
    row = result.row
    assert row["status"] == "ok", row.get("error")
    assert row["stop_reason"] == "targets_met"
    assert row["window_s"] >= 0.8
    assert row["n"] >= 50
    assert row["warmup_n"] == 2 * threads
    assert row["latency_ms_min"] >= SERVICE_MS  # a sleep never returns early
    assert row["latency_ms_p50"] >= row["latency_ms_min"]
    # each client sends one request at a time, each at least SERVICE_MS long, all inside the
    # window: no rate above threads x batch / service time is possible
    ceiling = threads * batch_size / (SERVICE_MS / 1000.0)
    assert 0 < row["inferences_per_s"] <= ceiling
    assert row["requests_per_s"] == pytest.approx(row["n"] / row["window_s"])
    assert row["inferences_per_s"] == pytest.approx(row["requests_per_s"] * batch_size)
    assert row["usd_per_million_inferences"] == pytest.approx(
        cell.price_per_hour / 3600 / row["inferences_per_s"] * 1e6
    )
    samples = result.samples
    assert samples is not None
    assert samples.schema == SAMPLES_SCHEMA
    assert samples.num_rows == row["n"]
    assert set(samples.column("thread").to_pylist()) == set(range(threads))


def test_run_cell_row_fits_the_row_schema():
    cell = _sleep_cell(
        **{"scenario.min_requests": 5, "scenario.min_duration_s": 0.05, "scenario.ci_target": 0}
    )
    row = run_cell(cell).row
    table = rows_to_table([row])  # raises KeyError on a column the schema lacks
    assert table.num_rows == 1
    assert table.column("cell_id")[0].as_py() == cell.cell_id
    assert table.column("engine")[0].as_py() == "sleep"
    assert table.column("status")[0].as_py() == "ok"
    assert table.column("finished_at")[0].as_py() >= table.column("started_at")[0].as_py()


def test_run_cell_turns_an_engine_error_into_a_failed_row(monkeypatch):
    calls = {"n": 0}

    def infer(self, batch):
        calls["n"] += 1
        if calls["n"] > 3:
            raise BoomError("device fell over")
        time.sleep(0.001)
        return batch

    monkeypatch.setattr(SleepEngine, "infer", infer)
    cell = _sleep_cell(
        **{
            "scenario.warmup_requests": 1,
            "scenario.warmup_s": 0,
            "scenario.min_requests": 10**6,
            "scenario.min_duration_s": 10,
            "scenario.max_duration_s": 20,
        }
    )
    box = run_bounded(lambda: run_cell(cell))
    assert "error" not in box, box.get("error")  # run_cell never raises
    result = box["value"]
    row = result.row
    assert row["status"] == "failed"
    assert row["error_class"] == "BoomError"
    assert "device fell over" in row["error"]
    assert result.samples is None
    assert "n" not in row  # nothing was measured
    assert row["cell_id"] == cell.cell_id
    assert rows_to_table([row]).num_rows == 1


def test_run_cell_null_engine():
    cell = plan_from_overrides(
        [
            "engine=null",
            "scenario.min_requests=100",
            "scenario.min_duration_s=0.05",
            "scenario.ci_target=0",
        ]
    ).cells[0]
    row = run_cell(cell).row
    assert row["status"] == "ok", row.get("error")
    assert row["n"] >= 100
    # how small the harness's own cost is on this host: benchmarks/timing_claims.py
    assert 0 <= row["latency_ms_min"] <= row["latency_ms_p50"] <= row["latency_ms_p99"]
