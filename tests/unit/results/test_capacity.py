"""Fleet sizing: the M/G/c simulation against the closed forms of M/M/c and M/D/1."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bench.results.capacity import (
    ServiceTimes,
    fleet_text,
    md1_p99,
    mdc_wait_cdf,
    mmc_p99,
    plan_fleet,
    replica_rate,
    servers_needed,
    service_times,
    simulated_p99,
    simulated_responses,
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


def test_an_sla_search_row_sizes_from_its_measured_rate_not_the_simulation():
    rows = pd.DataFrame(
        [
            {"cell_id": "searched", "status": "ok", "batch_size": 2, "threads": 4,
             "replicas_per_instance": 2, "price_per_hour": 1.0, "instance": "g5.2xlarge",
             "slo_max_rate_per_s": 25.0, "slo": "e2e<=100ms", "slo_target_share": 0.99,
             "slo_confirmed": False, "p99_ms": 80.0},
            {"cell_id": "none_met", "status": "ok", "batch_size": 1, "threads": 1,
             "replicas_per_instance": 1, "price_per_hour": 1.0, "instance": "g5.xlarge",
             "slo_max_rate_per_s": 0.0, "slo": "e2e<=1ms", "slo_target_share": 0.99,
             "slo_confirmed": False, "p99_ms": 5.0},
            {"cell_id": "sampled", "status": "ok", "batch_size": 1, "threads": 1,
             "replicas_per_instance": 1, "price_per_hour": 1.0, "instance": "g5.xlarge",
             "slo_max_rate_per_s": None},
        ]
    )  # fmt: skip
    # no samples for the searched rows: their sizing needs none
    fleet = plan_fleet(rows, {"sampled": np.full(500, 0.01)}, rate=120, p99_ms=50)
    by_id = fleet.set_index("cell_id")
    searched = by_id.loc["searched"]
    # 25 requests/s of batch 2 = 50 inferences/s a replica: 120/s needs 3, two per instance
    assert searched["replica_rate_per_s"] == 50.0
    assert searched["replicas"] == 3 and searched["instances"] == 2
    assert searched["usd_per_month"] == pytest.approx(2 * 730)
    assert "sla_search" in searched["service_states"]
    assert "e2e<=100ms for 99% of requests, not confirmed" in searched["note"]
    assert pd.isna(by_id.loc["none_met", "instances"])
    assert "no rate met its SLO" in by_id.loc["none_met", "note"]
    assert by_id.loc["sampled", "service_states"] != "measured (sla_search)"


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


def _welch_mean_response(rate: float, first: float, other: float) -> float:
    """M/G/1 with exceptional first service (Welch 1964), deterministic times: a request that
    finds the server idle takes `first`, every other `other`. Mean wait
    lambda E[S^2] / (2 (1 - rho)) + lambda (E[S0^2] - E[S^2]) / (2 (1 - rho + lambda E[S0])),
    rho = lambda E[S]; an arrival finds it idle (PASTA) with probability
    (1 - rho) / (1 - rho + lambda E[S0])."""
    rho = rate * other
    idle = (1 - rho) / (1 - rho + rate * first)
    wait = rate * other**2 / (2 * (1 - rho)) + rate * (first**2 - other**2) / (
        2 * (1 - rho + rate * first)
    )
    return wait + idle * first + (1 - idle) * other


@pytest.mark.parametrize("rate", [30, 60, 90])
def test_two_state_service_matches_welchs_exceptional_first_service(rate):
    # 12 ms after idle, 8 ms back to back (a CPU's cold and warm requests, exaggerated)
    times = ServiceTimes(after_idle=np.full(1000, 0.012), back_to_back=np.full(1000, 0.008))
    simulated = float(np.mean(simulated_responses(times, rate, 1)))
    assert simulated == pytest.approx(_welch_mean_response(rate, 0.012, 0.008), rel=0.05)
    # one distribution (every request 12 ms) queues measurably longer at the same rate
    slower = float(np.mean(simulated_responses(np.full(1000, 0.012), rate, 1)))
    assert slower > simulated * 1.05


def _open_loop_samples(rate: float, first_ns: int, other_ns: int, n: int) -> pa.Table:
    """The samples one client thread records in an open loop before a server that takes
    `first_ns` after idle and `other_ns` back to back (the dispatcher 20 us late)."""
    rng = np.random.default_rng(3)
    scheduled = np.cumsum(rng.exponential(1e9 / rate, n)).astype(np.int64)
    sent, done, free = np.empty(n, np.int64), np.empty(n, np.int64), 0
    for i, arrival in enumerate(scheduled):
        waited = arrival < free
        sent[i] = free + 5_000 if waited else arrival + 20_000
        done[i] = free = sent[i] + (other_ns if waited else first_ns)
    return pa.table(
        {
            "thread": np.zeros(n, np.int16),
            "sent_ns": sent,
            "latency_ns": done - scheduled,
            "stage": np.zeros(n, np.int16),
            "scheduled_ns": scheduled,
            "ok": np.ones(n, bool),
        }
    )


def test_an_open_loops_service_times_are_split_by_the_state_each_request_began_in():
    samples = _open_loop_samples(60, first_ns=12_000_000, other_ns=8_000_000, n=3000)
    times = service_times(samples)
    assert times.back_to_back is not None
    assert np.all(times.after_idle == 0.012) and np.all(times.back_to_back == 0.008)
    assert times.after_idle.size + times.back_to_back.size == 3000
    # a closed loop (sent = scheduled) never waited: one distribution, in send order
    closed = samples.set_column(4, "scheduled_ns", samples.column("sent_ns"))
    assert service_times(closed).back_to_back is None
    # too few of one state to resample: one distribution too
    rare = _open_loop_samples(2, first_ns=12_000_000, other_ns=8_000_000, n=3000)
    assert service_times(rare).back_to_back is None


def test_a_faster_back_to_back_server_takes_a_higher_rate():
    idle = np.random.default_rng(5).normal(0.010, 0.001, 2000)
    split = ServiceTimes(after_idle=idle, back_to_back=idle * 0.8)
    assert replica_rate(split, 0.060) > 1.05 * replica_rate(idle, 0.060)
    rows = pd.DataFrame(
        [{"cell_id": "c", "status": "ok", "batch_size": 1, "threads": 1, "price_per_hour": 1.0}]
    )
    fleet = plan_fleet(rows, {"c": split}, rate=300, p99_ms=60)
    assert fleet.loc[0, "replicas"] >= 3  # 300/s at >= 8 ms a request
