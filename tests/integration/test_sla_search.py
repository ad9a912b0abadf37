"""sla_search against a server of known capacity: the sleep engine serving one request at a
time with a fixed service time (M/D/1 under Poisson arrivals), whose highest rate meeting an
end-to-end SLO for a share q of requests queueing theory gives exactly
(bench.results.capacity.md1_p99: the exact M/D/1 response-time quantile)."""

from __future__ import annotations

import json
import math
import time

import pandas as pd
import pytest

from bench.cell.runner import run_cell
from bench.plan.grid import plan_from_overrides
from bench.results.capacity import md1_p99
from tests.conftest import run_cli

pytestmark = pytest.mark.slow
SERVICE_MS, SLO_MS, TARGET = 10.0, 30.0, 0.9


def md1_max_rate(service_s: float, slo_s: float, q: float) -> float:
    """The highest Poisson rate whose q-quantile M/D/1 response time is within slo_s."""
    low, high = 0.0, 0.9999 / service_s
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if md1_p99(middle, service_s, q) <= slo_s else (low, middle)
    return low


def served_s(seconds: float, count: int = 100) -> float:
    """What a sleep of `seconds` takes here (the engine's service time: time.sleep overshoots
    by a little, more on a busy host)."""
    started = time.perf_counter()
    for _ in range(count):
        time.sleep(seconds)
    return (time.perf_counter() - started) / count


def test_sla_search_finds_the_queueing_theory_rate() -> None:
    cell = plan_from_overrides(
        [
            "engine=sleep",
            f"engine.service_ms={SERVICE_MS}",
            "engine.max_concurrency=1",  # one at a time: the queue forms at the server
            "threads=16",
            "scenario=sla_search",
            f"slo.e2e_ms={SLO_MS}",
            f"scenario.target={TARGET}",
            "scenario.stage_s=8",
            "scenario.tolerance=0.04",
            "scenario.min_duration_s=8",
            "scenario.max_duration_s=20",
        ]
    ).cells[0]
    row = run_cell(cell).row
    assert row["status"] == "ok", row.get("error")
    service_s = served_s(SERVICE_MS / 1e3)
    theory = md1_max_rate(service_s, SLO_MS / 1e3, TARGET)
    found = row["slo_max_rate_per_s"]
    tries = json.loads(row["slo_search_json"])
    assert abs(found - theory) <= 0.10 * theory, (found, theory, service_s, tries)
    assert row["slo_target_share"] == TARGET and row["slo"] == f"e2e<={SLO_MS:g}ms"
    assert row["slo_confirmed"] is not None and row["goodput_per_s"] > 0
    assert any(t["meets"] for t in tries) and not all(t["meets"] for t in tries)


def test_capacity_sizes_from_the_searched_rate(tmp_path) -> None:
    sweep = [
        "sweep",
        "engine=sleep",
        f"engine.service_ms={SERVICE_MS}",
        "engine.max_concurrency=1",
        "threads=8",
        "scenario=sla_search",
        f"slo.e2e_ms={SLO_MS}",
        "scenario.stage_s=2",
        "scenario.tolerance=0.15",
        "scenario.min_duration_s=2",
        "scenario.max_duration_s=4",
        "sweep_id=searched",
    ]
    assert (proc := run_cli(sweep, tmp_path)).returncode == 0, proc.stderr[-2000:]
    proc = run_cli(["capacity", "searched", "rate=500", "sla.p99_ms=30", "format=json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (fleet,) = json.loads(proc.stdout)
    row = pd.read_parquet(tmp_path / "results" / "searched" / "aggregated.parquet").iloc[0]
    assert fleet["service_states"] == "measured (sla_search)"
    assert fleet["replica_rate_per_s"] == pytest.approx(row["slo_max_rate_per_s"], rel=1e-3)
    assert fleet["replicas"] == math.ceil(500 / row["slo_max_rate_per_s"])
