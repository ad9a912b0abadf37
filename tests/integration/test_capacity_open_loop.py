"""`capacity`'s queueing model against the open loop it models: a sleep-engine replica run at
the arrival rate `replica_rate` says it takes under the SLA meets the SLA, and at 1.2x that
rate does not (benchmarks/capacity_check.py does the same for a real CPU model).

The host's speed drifts between runs (the 4 ms sleep served in 4.10 ms, then 4.33 ms, a few
minutes apart), and near the knee a 5 % slower service moves the P99 by more than the
tolerance. So each open loop is also held against the model fed that run's own service times:
the model is what is tested, not the host's constancy."""

from __future__ import annotations

from bench.cell.runner import run_cell
from bench.plan.grid import plan_from_overrides
from bench.results.capacity import replica_rate, service_times, simulated_p99
from bench.results.compare import sample_latencies

SLA_MS = 30.0
# one client before a 4 ms server: the SLA (7.5 service times) is met up to about 70% load,
# where queueing makes the P99 climb fast: 1.2x that rate is well over it (M/D/1: ~1.8x)
SERVER = ["engine=sleep", "engine.service_ms=4", "threads=1"]


def _run(*overrides: str) -> dict:
    result = run_cell(plan_from_overrides([*SERVER, *overrides]).cells[0])
    assert result.row["status"] == "ok", result.row.get("error")
    return {
        **result.row,
        "latencies_s": sample_latencies(result.samples) / 1e9,
        "service": service_times(result.samples),
    }


def _open_loop(rate: float) -> dict:
    return _run(
        "scenario=open_loop",
        f"scenario.rate_per_s={rate:.3f}",
        "scenario.min_requests=2500",
        "scenario.min_duration_s=5",
        "scenario.max_duration_s=40",
    )


def _held(rate: float) -> str | None:
    """One try of the open loops at the rate and at 1.2x: what failed, or None."""
    at_rate, over = _open_loop(rate), _open_loop(1.2 * rate)
    assert at_rate["n"] >= 2000 and over["n"] >= 2000
    # at the rate, with the service times this run had, the model's P99 is the measured one
    # within what a P99 of ~2500 queued requests resolves (the model sizes to the SLA itself)
    model_ms = 1000 * simulated_p99(at_rate["service"], at_rate["achieved_rate_per_s"], 1)
    measured = (at_rate["latency_ms_p99"], at_rate["latency_ms_p99_lo"], over["latency_ms_p99"])
    if abs(at_rate["latency_ms_p99"] / model_ms - 1) > 0.2:
        return f"P99 at the rate {measured[0]:.1f} ms, the model {model_ms:.1f} ms"
    # and near the SLA (a drift of the host's speed moves it either side)
    if at_rate["latency_ms_p99_lo"] > 1.2 * SLA_MS:
        return f"P99 at the rate {measured[0]:.1f} ms (low end {measured[1]:.1f})"
    # at 1.2x: clearly over, its whole interval above the SLA
    if over["latency_ms_p99_lo"] <= SLA_MS:
        return f"P99 at 1.2x {measured[2]:.1f} ms, not over the SLA"
    return None


def test_the_open_loop_meets_the_sla_at_the_rate_capacity_gives_and_not_at_1_2x():
    closed = _run("scenario.min_requests=1500", "scenario.min_duration_s=2")
    rate = replica_rate(closed["latencies_s"], SLA_MS / 1000, per_replica=1)
    assert 0.4 < rate * closed["latency_ms_mean"] / 1000 < 0.9, rate  # a sensible load
    # a stall of the whole host (measured here: 10-19 ms with nothing else running) queues
    # every arrival behind it and lands in one try's P99 whatever the model says: a second try
    # tells such a spell from a model that is wrong, which fails both
    first = _held(rate)
    if first is not None:
        assert (second := _held(rate)) is None, (first, second)
