"""`bench capacity SWEEP rate=R sla.p99_ms=X`: how many replicas and instances a target load
needs under a latency SLA, and what they cost per hour and per month.

The model (stated in the output): requests arrive as a Poisson process at `rate` requests per
second (`peak_to_mean=K` sizes for K x the rate); each replica of a cell serves as many
requests at once as the cell's client threads, each taking a service time drawn from the
cell's measured latencies (its raw samples, which already include any slowdown that
concurrency brings on that replica); requests are independent, served first come first served
by the first free slot of any replica, never batched together. That is an M/G/c queue with c =
replicas x threads; its P99 response time (wait + service) is found by simulation over the
empirical service times (SIMULATED_REQUESTS arrivals, the first WARMUP_SHARE discarded), and
the replicas needed are the fewest whose simulated P99 meets the SLA. Instances =
ceil(replicas / replicas per instance), where an instance holds floor(GPUs / TP degree)
replicas. The simulation is checked against the closed forms of M/M/c and M/D/1 in tests.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import numpy as np
import pandas as pd

SIMULATED_REQUESTS = 40_000
WARMUP_SHARE = 0.1
HOURS_PER_MONTH = 730.0  # 365 x 24 / 12
MAX_SERVERS = 100_000


def simulated_p99(
    service_s: np.ndarray, rate: float, servers: int, seed: int = 0, q: float = 0.99
) -> float:
    """P99 response time (seconds) of an M/G/`servers` FCFS queue at Poisson `rate` per
    second, service times resampled from `service_s`."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, SIMULATED_REQUESTS))
    services = rng.choice(service_s, SIMULATED_REQUESTS, replace=True)
    free = [0.0] * servers  # when each server next falls idle (a heap)
    responses = np.empty(SIMULATED_REQUESTS)
    for i, (arrival, service) in enumerate(zip(arrivals, services, strict=True)):
        start = max(arrival, free[0])
        heapq.heapreplace(free, start + service)
        responses[i] = start + service - arrival
    kept = responses[int(WARMUP_SHARE * SIMULATED_REQUESTS) :]
    return float(np.quantile(kept, q))


def servers_needed(service_s: np.ndarray, rate: float, p99_s: float, per_replica: int = 1) -> int:
    """The fewest replicas (each `per_replica` servers) whose simulated P99 <= p99_s; 0 when
    no number can (the service time's own P99 is over the SLA)."""
    if float(np.quantile(service_s, 0.99)) > p99_s:
        return 0
    # stability needs rate x mean service < servers; start there and double, then bisect
    low = max(1, math.ceil(rate * float(np.mean(service_s)) / per_replica))
    high = low
    while simulated_p99(service_s, rate, high * per_replica) > p99_s:
        low, high = high + 1, high * 2
        if high * per_replica > MAX_SERVERS:
            raise ValueError(f"more than {MAX_SERVERS} servers for rate {rate}/s")
    while low < high:  # the P99 falls as replicas are added
        middle = (low + high) // 2
        if simulated_p99(service_s, rate, middle * per_replica) <= p99_s:
            high = middle
        else:
            low = middle + 1
    return high


def erlang_c(servers: int, offered: float) -> float:
    """Probability an arrival waits in M/M/c (offered load a = rate / mu < c)."""
    term, total = 1.0, 1.0
    for k in range(1, servers):
        term *= offered / k
        total += term
    term *= offered / servers
    last = term * servers / (servers - offered)
    return last / (total + last)


def mmc_p99(rate: float, mu: float, servers: int, q: float = 0.99) -> float:
    """P99 response time of M/M/c, closed form: P(T > t) = (1 - C) e^(-mu t) + C P(W' + S > t)
    with W' ~ Exp(c mu - rate), S ~ Exp(mu); solved for t by bisection."""
    theta = servers * mu - rate
    wait = erlang_c(servers, rate / mu)

    def tail(t: float) -> float:
        if abs(theta - mu) < 1e-12:
            both = (1 + mu * t) * math.exp(-mu * t)
        else:
            both = (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
        return (1 - wait) * math.exp(-mu * t) + wait * both

    low, high = 0.0, 1.0 / mu
    while tail(high) > 1 - q:
        high *= 2
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if tail(middle) > 1 - q else (low, middle)
    return high


def md1_p99(rate: float, service: float, q: float = 0.99) -> float:
    """P99 response time of M/D/1 (service time D), from the exact waiting-time distribution
    P(W <= t) = (1 - rho) sum_{k=0}^{floor(t/D)} (rate (kD - t))^k / k! e^(-rate (kD - t))."""
    rho = rate * service

    def waiting_cdf(t: float) -> float:
        total = 0.0
        for k in range(int(t // service) + 1):
            x = rate * (k * service - t)
            if x == 0:  # t on a multiple of D: only the k = 0 term is not 0
                total += 1.0 if k == 0 else 0.0
                continue
            total += (-1) ** k * math.exp(k * math.log(-x) - math.lgamma(k + 1) - x)
        return (1 - rho) * total

    low, high = 0.0, service
    while waiting_cdf(high) < q:
        high *= 2
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if waiting_cdf(middle) < q else (low, middle)
    return high + service


ASSUMPTIONS = (
    "model: Poisson arrivals at the sized rate; each replica serves `threads` requests at once, "
    "each taking a service time drawn from the cell's measured latencies; requests independent, "
    "first come first served, not batched together (M/G/c, simulated)"
)


def plan_fleet(
    rows: pd.DataFrame,
    latencies: dict[str, np.ndarray],
    rate: float,
    p99_ms: float,
    peak_to_mean: float = 1.0,
) -> pd.DataFrame:
    """Per ok row with samples: replicas and instances that keep P99 under `p99_ms` at
    `rate` x `peak_to_mean` inferences per second, and their cost; cheapest per month first."""
    records: list[dict[str, Any]] = []
    for _, row in rows[rows["status"] == "ok"].iterrows():
        service = latencies.get(str(row["cell_id"]))
        if service is None or service.size < 100:
            continue  # a P99 needs 100 requests
        batch = int(row.get("batch_size") or 1)
        threads = int(row.get("threads") or 1)
        requests_per_s = rate * peak_to_mean / batch
        replicas = servers_needed(service, requests_per_s, p99_ms / 1000, per_replica=threads)
        per_instance = int(row.get("replicas_per_instance") or 1)
        instances = math.ceil(replicas / per_instance) if replicas else None
        price = float(row.get("price_per_hour") or 0)
        hourly = None if instances is None else round(instances * price, 4)
        records.append(
            {
                **{k: row.get(k) for k in ("model", "engine", "precision", "batch_size")},
                **{k: row.get(k) for k in ("threads", "tp_degree", "instance")},
                "service_p99_ms": round(float(np.quantile(service, 0.99)) * 1000, 3),
                "replicas": replicas or None,
                "replicas_per_instance": per_instance,
                "instances": instances,
                "usd_per_hour": hourly,
                "usd_per_month": None if hourly is None else round(hourly * HOURS_PER_MONTH, 2),
                "note": "" if replicas else "its own P99 is over the SLA: no fleet meets it",
                "cell_id": row["cell_id"],
            }
        )
    table = pd.DataFrame(records)
    if table.empty:
        return table
    return table.sort_values("usd_per_month", na_position="last", kind="stable").reset_index(
        drop=True
    )
