"""The closed-loop load generator against requests of known least duration (sleeps).

Each stop rule is checked by what it decides (which request ended the window, which were sent
after it), never by how soon the host let it happen: how close the window's end comes to its
duration target is a timing claim, checked by benchmarks/timing_claims.py."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bench.config.schema import ScenarioConfig
from bench.measure.loadgen import run_closed_loop
from tests.support.bounded import BoomError, run_bounded

SERVICE_MS = 5.0


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
    assert result.n > 5
    # one client: the first completion at or past the duration target is the last request;
    # every earlier one completed before it (or the loop would have stopped there)
    done_s = np.sort(result.done_ns) / 1e9
    assert done_s[-1] >= 0.3 and np.all(done_s[:-1] < 0.3)


@pytest.mark.parametrize("threads", [1, 3])
def test_stops_once_both_targets_are_met_by_count(threads):
    scenario = _scenario(min_requests=40, min_s=0.01, max_s=5.0)
    result = run_closed_loop(_sleeper(0.002), _no_sync, threads, scenario)
    assert result.stop_reason == "targets_met"
    # the request that meets the target stops the loop; those still in flight complete and count
    assert 40 <= result.n <= 40 + threads - 1


def test_max_duration_caps_an_unreachable_request_target():
    threads = 2
    scenario = _scenario(min_requests=10**9, min_s=0.1, max_s=0.4)
    box = run_bounded(lambda: run_closed_loop(_sleeper(0.005), _no_sync, threads, scenario))
    assert "error" not in box, box.get("error")
    result = box["value"]
    assert result.stop_reason == "max_duration"
    assert result.window_s >= 0.4
    assert 0 < result.n < 10**9
    # the first completion past the budget stops the loop: after it, each client sends at
    # most the one request it had already begun
    stopped_ns = result.done_ns[result.done_ns >= 0.4e9].min()
    after = result.thread[result.sent_ns > stopped_ns]
    assert all(np.count_nonzero(after == tid) <= 1 for tid in range(threads)), after


def test_warmup_requests_are_excluded():
    warmup, threads = 3, 2
    lock = threading.Lock()
    calls = {"request": 0, "sync": 0}
    warmup_done_ns: list[int] = []

    def request() -> None:
        with lock:
            index = calls["request"]
            calls["request"] += 1
        time.sleep(0.001)
        # every client finishes its warmup before any measured request is sent, so the first
        # warmup x threads calls are exactly the warmup ones
        if index < warmup * threads:
            with lock:
                warmup_done_ns.append(time.perf_counter_ns())

    def sync() -> None:
        with lock:
            calls["sync"] += 1

    scenario = _scenario(warmup=warmup, min_requests=20, min_s=0.05)
    result = run_closed_loop(request, sync, threads, scenario)
    assert result.warmup_n == warmup * threads
    assert calls["request"] == result.n + warmup * threads  # n counts only measured requests
    assert calls["sync"] == calls["request"]  # one synchronise per request
    # the window opens once every warmup request is done; nothing measured was sent before
    assert len(warmup_done_ns) == warmup * threads
    assert max(warmup_done_ns) <= result.opened_ns
    assert result.sent_ns.min() >= 0


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
    box = run_bounded(lambda: run_closed_loop(request, _no_sync, threads, scenario))
    assert isinstance(box.get("error"), BoomError)
    assert "engine exploded" in str(box["error"])


@pytest.mark.parametrize("threads", [1, 3])
def test_engine_error_during_warmup_propagates(threads):
    scenario = _scenario(warmup=5, min_requests=10, min_s=0.05, max_s=30.0)
    request = _failing_after(2)
    box = run_bounded(lambda: run_closed_loop(request, _no_sync, threads, scenario))
    assert isinstance(box.get("error"), BoomError)
