"""Fleet sizing: the M/G/c simulation against the closed forms of M/M/c and M/D/1."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.results.capacity import (
    fleet_text,
    md1_p99,
    mdc_wait_cdf,
    mmc_p99,
    plan_fleet,
    replica_rate,
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


def test_mdc_chain_is_md1_where_c_is_one():
    # M/D/1: P(W <= D) = (1 - rho) e^(rate D), the first terms of the exact series
    rate, service = 50.0, 1 / MU
    exact = (1 - rate * service) * math.exp(rate * service)
    assert mdc_wait_cdf(rate, service, 1, 1) == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize("rate", [30, 150, 400, 900])
@pytest.mark.parametrize("waits", [1, 2])
def test_replicas_match_mdc_within_one(rate, waits):
    """A P99 of (waits + 1) service times: exactly the fewest c with P(W <= waits D) >= .99."""
    service = 1 / MU
    closed = max(1, math.floor(rate * service) + 1)
    while mdc_wait_cdf(rate, service, closed, waits) < 0.99:
        closed += 1
    # the target a hair above the multiple of D: a response of exactly D sits on it
    simulated = servers_needed(np.full(1000, service), rate, (waits + 1) * service * 1.0001)
    assert abs(simulated - closed) <= 1


def test_replica_rate_is_where_the_simulated_p99_meets_the_target():
    fixed = np.full(1000, 1 / MU)
    target = md1_p99(70, 1 / MU)  # the exact M/D/1 P99 at 70 requests/s
    assert replica_rate(fixed, target) == pytest.approx(70, rel=0.05)
    assert replica_rate(fixed, 0.5 / MU) == 0.0  # under the service time: nothing fits


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


def test_spot_is_costed_where_the_catalog_has_it_and_never_for_sagemaker():
    rows = pd.DataFrame(
        [
            {"cell_id": "ec2", "status": "ok", "batch_size": 2, "threads": 1, "pricing": "ec2",
             "replicas_per_instance": 1, "price_per_hour": 1.0, "instance": "g5.xlarge"},
            {"cell_id": "sm", "status": "ok", "batch_size": 2, "threads": 1,
             "pricing": "sagemaker", "replicas_per_instance": 1, "price_per_hour": 1.4,
             "instance": "g5.xlarge"},
        ]
    )  # fmt: skip
    latencies = {"ec2": np.full(500, 0.010), "sm": np.full(500, 0.010)}
    fleet = plan_fleet(rows, latencies, 100, 50, spot_per_hour={"g5.xlarge": 0.4}).set_index(
        "cell_id"
    )
    assert fleet.loc["ec2", "spot_usd_per_month"] == pytest.approx(
        fleet.loc["ec2", "instances"] * 0.4 * 730
    )
    assert pd.isna(fleet.loc["sm", "spot_usd_per_month"])
    # batch 2: one replica takes twice the requests/s in inferences/s
    assert fleet.loc["ec2", "replica_rate_per_s"] > 100
    text = fleet_text(fleet.reset_index(), 100, 1.0, 50)
    assert "on Spot" in text and "M/G/c" in text
