"""`bench capacity SWEEP rate=R sla.p99_ms=X`: how many replicas and instances a target load
needs under a latency SLA, and what they cost per hour and per month.

The model (stated in the output): requests arrive as a Poisson process at `rate` requests per
second (`peak_to_mean=K` sizes for K x the rate); each replica of a cell serves as many
requests at once as the cell's client threads, each taking a service time drawn from the
cell's measured latencies (its raw samples, which already include any slowdown that
concurrency brings on that replica); requests are independent, served first come first served
by the first free slot of any replica, never batched together. That is an M/G/c queue with c =
replicas x threads; its P99 response time (wait + service) is found by simulation over the
empirical service times (SIMULATED_REQUESTS arrivals, the first WARMUP_SHARE discarded; the
service times drawn in runs of consecutive measured requests, so slow spells stay together, and
in the state the server is in: a request that finds a free server draws from the times measured
after idle, one that waited from those measured back to back, see ServiceTimes), and
the replicas needed are the fewest whose simulated P99 meets the SLA. Instances =
ceil(replicas / replicas per instance), where an instance holds floor(GPUs / TP degree)
replicas. The simulation is checked against the closed forms of M/M/c, M/D/1 and M/D/c in
tests. `replica_rate` inverts the question: the highest arrival rate one replica takes under
the SLA, which the open-loop check runs at (benchmarks/capacity_check.py).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.results.compare import ok_first_stage
from bench.row.status import Status

SIMULATED_REQUESTS = 40_000
WARMUP_SHARE = 0.1
HOURS_PER_MONTH = 730.0  # 365 x 24 / 12
MAX_SERVERS = 100_000
BLOCK = 50  # consecutive measured requests resampled together (block_resample)
RATE_PRECISION = 1e-3  # replica_rate's bisection stops within 0.1% of the rate
MIN_STATE_SAMPLES = 200  # fewer in either state: one distribution for both


@dataclass(frozen=True)
class ServiceTimes:
    """A replica's measured service times (seconds, in measurement order), by the state its
    server was in when each began: `after_idle`, on a server that had nothing to do, and
    `back_to_back`, the moment it finished the one before (the request had waited for it).

    Why two: a CPU serves back to back faster (warm caches, no wake-up). bert_tiny on a 2-core
    VM at 100 requests/s: P50 3.54 ms after idle, 2.89 ms back to back, and a queue drains at
    the faster speed. Drawn from one distribution, the open loop at the model's rate measured a
    P99 well under the SLA (11.9-20.6 ms against 25.6-29.2 ms, 6 runs); drawn by state, near it
    (21.4-27.2 ms against 24.5-29.0 ms, 5 runs). Without `back_to_back` (a closed loop, where
    every request follows the last) both states draw from `after_idle`."""

    after_idle: np.ndarray
    back_to_back: np.ndarray | None = None

    @property
    def all(self) -> np.ndarray:
        if self.back_to_back is None:
            return self.after_idle
        return np.concatenate([self.after_idle, self.back_to_back])

    @property
    def fastest_mean(self) -> float:
        """The lower mean: what bounds the rate a replica can sustain from below."""
        parts = [self.after_idle, self.back_to_back]
        return min(float(np.mean(p)) for p in parts if p is not None)


Service = np.ndarray | ServiceTimes


def as_service_times(service: Service) -> ServiceTimes:
    return service if isinstance(service, ServiceTimes) else ServiceTimes(np.asarray(service))


def service_times(samples: Any) -> ServiceTimes:
    """Service times (send -> complete, seconds) from a cell's samples table (pyarrow), ok
    requests of its first stage, split by state. A request began back to back when it arrived
    before the latest completion preceding its send: it waited, and was sent as a server
    freed. A closed loop's requests (scheduled = sent) never did: one distribution."""
    frame = ok_first_stage(samples)
    sent = frame["sent_ns"].to_numpy(dtype=np.int64)
    scheduled = (
        frame["scheduled_ns"].fillna(frame["sent_ns"]).to_numpy(dtype=np.int64)
        if "scheduled_ns" in frame
        else sent
    )
    done = scheduled + frame["latency_ns"].to_numpy(dtype=np.int64)
    service_s = (done - sent) / 1e9
    completions = np.sort(done)
    before = np.searchsorted(completions, sent, side="right") - 1
    latest = np.where(before >= 0, completions[np.maximum(before, 0)], np.iinfo(np.int64).min)
    waited = scheduled < latest
    if min(waited.sum(), (~waited).sum()) < MIN_STATE_SAMPLES:
        return ServiceTimes(service_s)
    return ServiceTimes(service_s[~waited], service_s[waited])


def simulated_p99(
    service: Service, rate: float, servers: int, seed: int = 0, q: float = 0.99
) -> float:
    """P99 response time (seconds) of an M/G/`servers` FCFS queue at Poisson `rate` per
    second (simulated_responses)."""
    return float(np.quantile(simulated_responses(service, rate, servers, seed), q))


def simulated_responses(service: Service, rate: float, servers: int, seed: int = 0) -> np.ndarray:
    """Response times (wait + service, seconds) of an M/G/`servers` FCFS queue at Poisson
    `rate` per second, the first WARMUP_SHARE left out; service times resampled (in
    measurement order, blocks of BLOCK consecutive requests) from the measured ones of the
    state the server is in: a request that finds a free server draws from `after_idle`, one
    that waited from `back_to_back`."""
    arrivals, idle, busy = _draws(as_service_times(service), rate, seed)
    streams, taken = (idle, idle if busy is None else busy), [0, 0]
    free = [0.0] * servers  # when each server next falls idle (a heap)
    responses = np.empty(SIMULATED_REQUESTS)
    for i, arrival in enumerate(arrivals):
        waits = arrival < free[0]
        state = 1 if waits and busy is not None else 0
        service_s = streams[state][taken[state]]
        taken[state] += 1
        start = free[0] if waits else arrival
        heapq.heapreplace(free, start + service_s)
        responses[i] = start + service_s - arrival
    return responses[int(WARMUP_SHARE * SIMULATED_REQUESTS) :]


def _draws(
    times: ServiceTimes, rate: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Arrival times and each state's service times of one simulation; the service times
    depend on the seed alone (drawn after as many gaps at any rate), so every rate and server
    count of a search sees the same ones."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, SIMULATED_REQUESTS))
    idle = block_resample(times.after_idle, SIMULATED_REQUESTS, rng)
    if times.back_to_back is None:
        return arrivals, idle, None
    return arrivals, idle, block_resample(times.back_to_back, SIMULATED_REQUESTS, rng)


def unqueued_p99(service: Service, seed: int = 0, q: float = 0.99) -> float:
    """The simulation's P99 with a server for every request (no wait, so every one after
    idle): the least any fleet reaches."""
    _, idle, _ = _draws(as_service_times(service), 1.0, seed)
    return float(np.quantile(idle[int(WARMUP_SHARE * SIMULATED_REQUESTS) :], q))


def block_resample(service_s: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` service times as runs of BLOCK consecutive measured ones from random starts: a
    real server has slow spells (on a 2-core VM, bert_tiny's lag-20 autocorrelation was 0.4),
    and a queue feels a spell far more than the same slow requests scattered; resampling one
    by one predicted a P99 of 24 ms where the open loop measured 34, blocks of 50 said 32."""
    block = min(BLOCK, max(1, service_s.size // 10))
    starts = rng.integers(0, service_s.size - block + 1, size // block + 1)
    runs = starts[:, None] + np.arange(block)[None, :]
    return service_s[runs.ravel()[:size]]


def servers_needed(service: Service, rate: float, p99_s: float, per_replica: int = 1) -> int:
    """The fewest replicas (each `per_replica` servers) whose simulated P99 <= p99_s; 0 when
    no number can (the service times' own P99, as resampled, is over the SLA)."""
    times = as_service_times(service)
    if unqueued_p99(times) > p99_s:
        return 0
    # stability needs rate x mean service < servers; start there and double, then bisect
    low = max(1, math.ceil(rate * times.fastest_mean / per_replica))
    high = low
    while simulated_p99(times, rate, high * per_replica) > p99_s:
        low, high = high + 1, high * 2
        if high * per_replica > MAX_SERVERS:
            raise ValueError(f"more than {MAX_SERVERS} servers for rate {rate}/s")
    while low < high:  # the P99 falls as replicas are added
        middle = (low + high) // 2
        if simulated_p99(times, rate, middle * per_replica) <= p99_s:
            high = middle
        else:
            low = middle + 1
    return high


def replica_rate(service: Service, p99_s: float, per_replica: int = 1, seed: int = 0) -> float:
    """The highest Poisson request rate (per second) one replica of `per_replica` servers
    takes with its simulated P99 <= p99_s; 0 when its service time's own P99 is over.
    Bisection: with one seed, a higher rate only shrinks every gap between arrivals, so with
    one distribution the simulated P99 never falls as the rate rises (with two, the extra
    waiting draws the faster back-to-back times; it still rises overall, and the bisection
    returns a rate where the P99 crosses p99_s)."""
    times = as_service_times(service)
    if unqueued_p99(times, seed) > p99_s:
        return 0.0
    low, high = 0.0, per_replica / times.fastest_mean  # the stability limit
    while (high - low) > RATE_PRECISION * high:
        middle = (low + high) / 2
        if simulated_p99(times, middle, per_replica, seed=seed) <= p99_s:
            low = middle
        else:
            high = middle
    return low


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


def mdc_wait_cdf(rate: float, service: float, servers: int, k: int) -> float:
    """P(W <= k D) in M/D/c (service time D, c servers, FCFS), exact up to truncation.

    The number in system a service time apart obeys Q' = max(Q - c, 0) + Poisson(rate D)
    (all in service leave within D, nobody who arrives does), and an arrival that finds j
    ahead of it starts within k D exactly when j <= (k + 1) c - 1 (each D the c at the head
    leave); by PASTA an arrival sees the stationary Q, so P(W <= k D) = P(Q <= (k + 1) c - 1)."""
    offered = rate * service
    if offered >= servers:
        raise ValueError(f"unstable: offered load {offered:g} >= {servers} servers")
    counts = np.arange(int(offered + 12 * math.sqrt(offered) + 20))
    lgammas = np.array([math.lgamma(m + 1) for m in counts])
    arrivals = np.exp(counts * math.log(offered) - offered - lgammas)  # Poisson pmf
    states = int(servers * (k + 2) + 40 * (math.sqrt(offered) + 1) / (1 - offered / servers))
    stationary = np.zeros(states)
    stationary[0] = 1.0
    for _ in range(100_000):
        left = np.zeros(states)  # max(Q - c, 0)
        left[0] = stationary[: servers + 1].sum()
        left[1 : states - servers] = stationary[servers + 1 :]
        following = np.convolve(left, arrivals)[:states]
        following /= following.sum()
        if np.abs(following - stationary).max() < 1e-14:
            break
        stationary = following
    return float(stationary[: (k + 1) * servers].sum())


ASSUMPTIONS = (
    "model: Poisson arrivals at the sized rate; each replica serves `threads` requests at once, "
    "each taking a service time drawn from the cell's measured latencies; requests independent, "
    "first come first served, not batched together (M/G/c, simulated with the measured "
    "service times in runs of 50 consecutive requests; an open-loop cell's times split into "
    "those begun after idle and those begun back to back, each drawn in its state)"
)


ONE_STATE_NOTE = (
    "service_states one: every measured request began back to back (a closed loop), or too few "
    "began after idle to tell; a replica that idles between arrivals may serve slower (bert_tiny "
    "on CPU: P50 +22 % after idle), so size from an open_loop cell near the expected rate"
)


def plan_fleet(
    rows: pd.DataFrame,
    latencies: dict[str, Service],
    rate: float,
    p99_ms: float,
    peak_to_mean: float = 1.0,
    spot_per_hour: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Per ok row with samples: replicas and instances that keep P99 under `p99_ms` at
    `rate` x `peak_to_mean` inferences per second, what one replica takes alone
    (`replica_rate_per_s`, inferences/s), and the cost on demand and, where `spot_per_hour`
    has the instance type (EC2 pricing only: SageMaker endpoints have no Spot), on Spot;
    cheapest per month first."""
    measured = {cell: as_service_times(service) for cell, service in latencies.items()}
    ok = rows[rows["status"] == Status.OK]
    column = ok.get("slo_max_rate_per_s", pd.Series(None, index=ok.index, dtype=float))
    searched = column.notna()
    records = [
        _searched_record(row, rate * peak_to_mean, spot_per_hour or {})
        for _, row in ok[searched].iterrows()
    ] + [
        _fleet_record(row, service, rate * peak_to_mean, p99_ms, spot_per_hour or {})
        for _, row in ok[~searched].iterrows()
        # a P99 needs 100 requests
        if (service := measured.get(str(row["cell_id"]))) is not None and service.all.size >= 100
    ]
    table = pd.DataFrame(records)
    if table.empty:
        return table
    return table.sort_values("usd_per_month", na_position="last", kind="stable").reset_index(
        drop=True
    )


def _fleet_record(
    row: pd.Series, service: ServiceTimes, rate: float, p99_ms: float, spot: dict[str, float]
) -> dict[str, Any]:
    batch = int(row.get("batch_size") or 1)
    threads = int(row.get("threads") or 1)
    replicas = servers_needed(service, rate / batch, p99_ms / 1000, per_replica=threads)
    return _costed(
        row,
        replicas,
        spot,
        service_p99_ms=round(float(np.quantile(service.all, 0.99)) * 1000, 3),
        service_states="one" if service.back_to_back is None else "idle / back to back",
        replica_rate_per_s=round(replica_rate(service, p99_ms / 1000, threads) * batch, 2),
        note="" if replicas else "its own P99 is over the SLA: no fleet meets it",
    )


def _searched_record(row: pd.Series, rate: float, spot: dict[str, float]) -> dict[str, Any]:
    """An sla_search row: what one replica takes is measured (the highest arrival rate at
    which its own SLOs held for the target share of requests), not simulated, so the
    replicas are ceil(rate / that) and the sizing keeps the row's SLOs, not sla.p99_ms."""
    per_replica = float(row["slo_max_rate_per_s"]) * int(row.get("batch_size") or 1)
    replicas = math.ceil(rate / per_replica) if per_replica > 0 else 0
    confirmed = "" if row.get("slo_confirmed") else ", not confirmed by its full window"
    slo = f"{row.get('slo')} for {float(row.get('slo_target_share') or 0):.0%} of requests"
    return _costed(
        row,
        replicas,
        spot,
        service_p99_ms=row.get("p99_ms"),
        service_states="measured (sla_search)",
        replica_rate_per_s=round(per_replica, 2),
        note=(
            f"measured by sla_search at its own SLO ({slo}{confirmed}), not sla.p99_ms"
            if replicas
            else "no rate met its SLO: no fleet meets it"
        ),
    )


def _costed(row: pd.Series, replicas: int, spot: dict[str, float], **sized: Any) -> dict[str, Any]:
    """A fleet table's record: the cell, how it was sized, and its instances and cost."""
    per_instance = int(row.get("replicas_per_instance") or 1)
    instances = math.ceil(replicas / per_instance) if replicas else None
    on_spot = spot.get(str(row.get("instance"))) if row.get("pricing") != "sagemaker" else None

    def monthly(per_hour: float | None) -> float | None:
        if instances is None or per_hour is None:
            return None
        return round(instances * per_hour * HOURS_PER_MONTH, 2)

    price = float(row.get("price_per_hour") or 0)
    note = sized.pop("note")
    return {
        **{k: row.get(k) for k in ("model", "engine", "precision", "batch_size")},
        **{k: row.get(k) for k in ("threads", "tp_degree", "instance")},
        **sized,
        "replicas": replicas or None,
        "replicas_per_instance": per_instance,
        "instances": instances,
        "usd_per_hour": None if instances is None else round(instances * price, 4),
        "usd_per_month": monthly(price),
        "spot_usd_per_month": monthly(on_spot),
        "note": note,
        "cell_id": row["cell_id"],
    }


def fleet_text(table: pd.DataFrame, rate: float, peak_to_mean: float, p99_ms: float) -> str:
    """What `bench capacity` prints: the sizing asked for, the model, the table and the
    cheapest fleet."""
    sized = f"{rate:g} inferences/s" + (
        f" x peak_to_mean {peak_to_mean:g}" if peak_to_mean != 1 else ""
    )
    lines = [f"fleet for {sized} with P99 <= {p99_ms:g} ms; {ASSUMPTIONS}"]
    if table.empty:
        return "\n".join([*lines, "(no ok cell with at least 100 measured requests)"])
    shown = table.drop(columns=["cell_id"])
    if shown["spot_usd_per_month"].isna().all():
        shown = shown.drop(columns=["spot_usd_per_month"])
        lines.append("(no Spot price in the catalog: `prices refresh --spot` records them)")
    lines.append(shown.to_string(index=False))
    if (table["service_states"] == "one").any():
        lines.append(ONE_STATE_NOTE)
    best = table.iloc[0]
    if pd.notna(best["usd_per_month"]):  # None / NaN: no fleet meets the SLA
        spot = best["spot_usd_per_month"]
        lines.append(
            f"cheapest: {best['model']} {best['engine']} {best['precision']} batch "
            f"{best['batch_size']} threads {best['threads']} on {int(best['instances'])} x "
            f"{best['instance']}: ${best['usd_per_month']:,.2f} per month on demand"
            + (f", ${spot:,.2f} on Spot" if pd.notna(spot) else "")
        )
    return "\n".join(lines)
