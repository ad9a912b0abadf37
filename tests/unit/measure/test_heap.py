"""The Python heap in a cell: every collection that begins inside the measured window is counted
in the row."""

from __future__ import annotations

import gc
import time

from bench.cell.runner import run_cell
from bench.engines.calibration import SleepEngine
from bench.measure import heap
from bench.plan.grid import plan_from_overrides


def test_only_collections_begun_inside_a_window_are_counted():
    log = heap.CollectionLog().start()
    try:
        before = time.perf_counter_ns()
        gc.collect()
        gc.collect(0)
        between = time.perf_counter_ns()
        gc.collect()
        after = time.perf_counter_ns()
    finally:
        log.stop()
    assert log._callback not in gc.callbacks
    inside = log.summary([(before, between)])
    assert inside["gc_collections"] == 2 and inside["gc_full_collections"] == 1
    assert 0 < inside["gc_pause_ms_max"] <= inside["gc_pause_ms_total"]
    assert log.summary([(between, after)])["gc_collections"] == 1
    assert log.summary([(after, after + 10**9)]) == {
        "gc_collections": 0,
        "gc_full_collections": 0,
        "gc_pause_ms_total": 0,
        "gc_pause_ms_max": 0.0,
    }


def test_a_cell_counts_a_collection_in_its_window(monkeypatch):
    warmup = 2
    cell = plan_from_overrides(
        [
            "engine=sleep",
            "engine.service_ms=1",
            "threads=1",
            f"scenario.warmup_requests={warmup}",
            "scenario.warmup_s=0",
            "scenario.min_requests=40",
            "scenario.min_duration_s=0.01",
            "scenario.ci_target=0",
        ]
    ).cells[0]
    # a full collection during a measured request (the tenth call: past the two warmup ones,
    # well before the fortieth measured): placed by count, not by a timer a busy host delays
    calls = {"n": 0}
    original = SleepEngine.infer

    def infer(self, batch):
        calls["n"] += 1
        if calls["n"] == warmup + 8:
            gc.collect()
        return original(self, batch)

    monkeypatch.setattr(SleepEngine, "infer", infer)
    row = run_cell(cell).row
    assert row["status"] == "ok", row.get("error")
    assert calls["n"] >= warmup + 40
    assert row["gc_full_collections"] >= 1 and row["gc_pause_ms_max"] > 0
