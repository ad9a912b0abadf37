"""Fleet sizing: the M/G/c simulation against the closed forms of M/M/c and M/D/1."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.capacity import (
    md1_p99,
    mmc_p99,
    plan_fleet,
    servers_needed,
    simulated_p99,
)

MU = 100.0  # requests per second one server completes (10 ms mean service)


def _closed_form_servers(rate: float, p99_s: float) -> int:
    c = max(1, math.floor(rate / MU) + 1)
    while mmc_p99(rate, MU, c) > p99_s:
        c += 1
    return c


def test_mm1_closed_form_is_the_exponential_response_time():
    # M/M/1 response time ~ Exp(mu - rate): P99 = ln(100) / (mu - rate)
    assert mmc_p99(50, MU, 1) == pytest.approx(math.log(100) / 50, rel=1e-6)


@pytest.mark.parametrize("rate", [30, 150, 400, 900, 2000])
def test_replicas_match_mmc_within_one(rate):
    exponential = np.random.default_rng(7).exponential(1 / MU, 200_000)
    target = 0.060
    simulated = servers_needed(exponential, rate, target)
    assert abs(simulated - _closed_form_servers(rate, target)) <= 1


@pytest.mark.parametrize("rate", [20, 50, 80])
def test_md1_simulation_matches_the_exact_waiting_time(rate):
    fixed = np.full(1000, 1 / MU)
    assert simulated_p99(fixed, rate, 1) == pytest.approx(md1_p99(rate, 1 / MU), rel=0.08)


def test_no_fleet_meets_an_sla_under_the_service_time_itself():
    assert servers_needed(np.full(500, 0.05), 10, p99_s=0.02) == 0


def test_the_fleet_is_ranked_by_monthly_cost_with_packed_instances():
    rows = pd.DataFrame(
        [
            {"cell_id": "slow", "status": "ok", "batch_size": 1, "threads": 1,
             "replicas_per_instance": 4, "price_per_hour": 5.0, "instance": "g5.12xlarge"},
            {"cell_id": "fast", "status": "ok", "batch_size": 1, "threads": 1,
             "replicas_per_instance": 1, "price_per_hour": 1.0, "instance": "g5.xlarge"},
        ]
    )  # fmt: skip
    latencies = {"slow": np.full(500, 0.020), "fast": np.full(500, 0.005)}
    fleet = plan_fleet(rows, latencies, rate=300, p99_ms=50)
    by_id = fleet.set_index("cell_id")
    # 300/s at 20 ms needs > 6 busy servers: packed 4 per instance
    slow = by_id.loc["slow"]
    assert slow["replicas"] >= 7 and slow["instances"] == math.ceil(slow["replicas"] / 4)
    assert by_id.loc["fast"]["replicas"] >= 2
    assert list(fleet["usd_per_month"]) == sorted(fleet["usd_per_month"])
    assert fleet.iloc[0]["usd_per_month"] == pytest.approx(fleet.iloc[0]["usd_per_hour"] * 730)
