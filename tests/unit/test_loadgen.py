"""The closed-loop load generator, calibrated against the sleep engine (known service time)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bench.config.schema import ScenarioConfig
from bench.engines.calibration import SleepEngine
from bench.measure.loadgen import run_closed_loop
from bench.measure.runner import run_cell
from bench.plan.grid import plan_from_overrides
from bench.results.schema import SAMPLES_SCHEMA, rows_to_table

SERVICE_MS = 5.0


def _sleep_cell(**settings):
    overrides = ["engine=sleep", f"engine.service_ms={SERVICE_MS}"]
    overrides += [f"{key}={value}" for key, value in settings.items()]
    return plan_from_overrides(overrides).cells[0]


def _scenario(warmup=0, min_requests=1, min_s=0.05, max_s=2.0) -> ScenarioConfig:
    return ScenarioConfig(
        name="latency",
        warmup_requests=warmup,
        warmup_s=0.0,
        min_requests=min_requests,
        min_duration_s=min_s,
        max_duration_s=max_s,
    )


def _sleeper(seconds: float):
    def request() -> None:
        time.sleep(seconds)

    return request


def _no_sync() -> None:
    pass


def _run_bounded(fn, timeout_s: float = 10.0):
    """Run fn in a thread; fail (rather than hang the suite) if it does not return in time."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout_s)
    assert not worker.is_alive(), f"did not return within {timeout_s} s"
    return box


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_sleep_engine_calibration(threads, batch_size):
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
    assert row["latency_ms_p50"] == pytest.approx(SERVICE_MS, rel=0.10)
    assert row["latency_ms_min"] >= SERVICE_MS  # a sleep never returns early
    expected = threads * batch_size / (SERVICE_MS / 1000.0)
    assert row["inferences_per_s"] == pytest.approx(expected, rel=0.10)
    assert row["requests_per_s"] == pytest.approx(row["n"] / row["window_s"])
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


def test_samples_are_ordered_and_relative_to_the_window():
    result = run_closed_loop(_sleeper(0.002), _no_sync, 3, _scenario(min_requests=30, min_s=0.1))
    assert result.n == result.latency_ns.size == result.sent_ns.size == result.thread.size
    assert result.thread.dtype == np.int16
    assert np.all(np.diff(result.sent_ns) >= 0)
    assert result.sent_ns.min() >= 0
    assert result.latency_ns.min() >= 2_000_000
    last_done_s = (result.sent_ns + result.latency_ns).max() / 1e9
    assert result.window_s == pytest.approx(last_done_s, abs=1e-6)
    assert set(result.thread.tolist()) == {0, 1, 2}


def test_stops_once_both_targets_are_met_by_duration():
    scenario = _scenario(min_requests=5, min_s=0.3, max_s=5.0)
    result = run_closed_loop(_sleeper(0.005), _no_sync, 1, scenario)
    assert result.stop_reason == "targets_met"
    assert result.window_s >= 0.3
    assert result.window_s < 0.3 + 0.1  # stopped soon after the duration target
    assert result.n > 5


@pytest.mark.parametrize("threads", [1, 3])
def test_stops_once_both_targets_are_met_by_count(threads):
    scenario = _scenario(min_requests=40, min_s=0.01, max_s=5.0)
    result = run_closed_loop(_sleeper(0.002), _no_sync, threads, scenario)
    assert result.stop_reason == "targets_met"
    # the request that meets the target stops the loop; those still in flight complete and count
    assert 40 <= result.n <= 40 + threads - 1


def test_max_duration_caps_an_unreachable_request_target():
    scenario = _scenario(min_requests=10**9, min_s=0.1, max_s=0.4)
    started = time.perf_counter()
    result = run_closed_loop(_sleeper(0.005), _no_sync, 2, scenario)
    assert time.perf_counter() - started < 2.0
    assert result.stop_reason == "max_duration"
    assert 0.4 <= result.window_s < 0.4 + 0.1
    assert 0 < result.n < 10**9


def test_warmup_requests_are_excluded():
    warmup, threads, slow_s = 3, 2, 0.03
    lock = threading.Lock()
    calls = {"request": 0, "sync": 0}

    def request() -> None:
        with lock:
            index = calls["request"]
            calls["request"] += 1
        # every client finishes its warmup before any measured request is sent, so the first
        # warmup x threads calls are exactly the warmup ones: make them conspicuously slow
        time.sleep(slow_s if index < warmup * threads else 0.001)

    def sync() -> None:
        with lock:
            calls["sync"] += 1

    scenario = _scenario(warmup=warmup, min_requests=20, min_s=0.05)
    result = run_closed_loop(request, sync, threads, scenario)
    assert result.warmup_n == warmup * threads
    assert calls["request"] == result.n + warmup * threads  # n counts only measured requests
    assert calls["sync"] == calls["request"]  # one synchronise per request
    assert result.latency_ns.max() < slow_s * 1e9
    assert result.window_s < 0.05 + slow_s  # the window opens after warmup


class BoomError(RuntimeError):
    pass


def _failing_after(good_calls: int):
    lock = threading.Lock()
    count = {"n": 0}

    def request() -> None:
        with lock:
            count["n"] += 1
            n = count["n"]
        if n > good_calls:
            raise BoomError(f"engine exploded on call {n}")
        time.sleep(0.001)

    return request


@pytest.mark.parametrize("threads", [1, 3])
def test_engine_error_in_the_measured_loop_propagates(threads):
    scenario = _scenario(warmup=1, min_requests=10**6, min_s=10.0, max_s=30.0)
    request = _failing_after(threads + 10)  # warmup passes, then the measured loop fails
    box = _run_bounded(lambda: run_closed_loop(request, _no_sync, threads, scenario))
    assert isinstance(box.get("error"), BoomError)
    assert "engine exploded" in str(box["error"])


@pytest.mark.parametrize("threads", [1, 3])
def test_engine_error_during_warmup_propagates(threads):
    scenario = _scenario(warmup=5, min_requests=10, min_s=0.05, max_s=30.0)
    request = _failing_after(2)
    box = _run_bounded(lambda: run_closed_loop(request, _no_sync, threads, scenario))
    assert isinstance(box.get("error"), BoomError)


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
    box = _run_bounded(lambda: run_cell(cell))
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
    assert row["latency_ms_p50"] < 1.0  # the harness's own cost per request is tiny
