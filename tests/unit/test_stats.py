"""The statistics behind intervals and stability, checked against distributions we know."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from bench import stats

TRUE_LOGNORMAL = {p: math.exp(0.5 * NormalDist().inv_cdf(p / 100)) for p in (50, 90, 99)}


def test_binomial_cdf_matches_direct_sum():
    n, q = 30, 0.9
    direct = np.cumsum([math.comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(n + 1)])
    assert np.allclose(stats.binomial_cdf(n, q), direct, atol=1e-12)


@pytest.mark.parametrize(
    ("q", "supported", "bounded"), [(0.5, 2, 6), (0.9, 10, 36), (0.99, 100, 368)]
)
def test_minimum_sample_counts(q, supported, bounded):
    assert stats.min_samples_supported(q) == supported
    assert stats.min_samples_bounded(q, 0.95) == bounded
    assert None in stats.quantile_ranks(bounded - 1, q, 0.95)
    assert None not in stats.quantile_ranks(bounded, q, 0.95)


@pytest.mark.parametrize("n", [50, 400, 5000])
def test_intervals_cover_the_true_percentile_at_the_stated_rate(n):
    """2000 samples of n lognormal latencies: each interval must hold the true percentile
    in at least 95% of them (the intervals are exact and conservative), and not in all of
    them (an interval that always covers is too wide to be useful)."""
    rng = np.random.default_rng(7)
    runs = 2000
    hits = {p: 0 for p in TRUE_LOGNORMAL}
    for _ in range(runs):
        x = np.sort(rng.lognormal(0.0, 0.5, n))
        for p, truth in TRUE_LOGNORMAL.items():
            low, high = stats.quantile_interval(x, p / 100, 0.95)
            hits[p] += low is not None and high is not None and low <= truth <= high
    for p, count in hits.items():
        if n < stats.min_samples_bounded(p / 100, 0.95):
            assert count == 0  # no upper end: never claims coverage
            continue
        assert 0.94 <= count / runs <= 0.99, (p, count / runs)


def test_flags_name_each_unsupported_percentile():
    assert stats.percentile_flags(1000, (50, 90, 95, 99), 0.95) is None
    fix = "fix: scenario.min_requests=368 (and max_duration_s to match)"
    assert (
        stats.percentile_flags(80, (50, 90, 95, 99), 0.95) == f"p99 unsupported: n=80 < 100; {fix}"
    )
    flags = stats.percentile_flags(200, (50, 90, 95, 99), 0.95)
    assert flags == f"p99 interval unbounded above: n=200 < 368 at 95%; {fix}"
    # correlated requests are worth fewer independent ones: the fix asks for more requests
    flags = stats.percentile_flags(900, (50, 90, 95, 99), 0.95, {50: 300, 90: 300, 99: 310})
    assert flags.endswith("fix: scenario.min_requests=1069 (and max_duration_s to match)")


def test_rate_interval_brackets_a_steady_rate():
    """Completions of a Poisson stream at 500/s over 10 s: the batch-means interval holds 500
    at about its stated rate and is narrow."""
    covered, widths = 0, []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        done = np.cumsum(rng.exponential(1 / 500, 6000)) * 1e9
        done = done[done < 10e9].astype(np.int64)
        low, high = stats.rate_interval(done, int(10e9), 0.95, 20)
        covered += low <= 500 <= high
        widths.append(high - low)
    assert 0.92 <= covered / 300 <= 0.99
    assert np.median(widths) < 0.1 * 500


@pytest.mark.parametrize(("df", "table"), [(3, 3.182), (6, 2.447), (10, 2.228), (19, 2.093)])
def test_t_quantile_matches_the_table(df, table):
    assert stats.t_quantile(0.975, df) == pytest.approx(table, rel=0.005)


def ar1_log_latencies(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    """exp of a stationary AR(1) with marginal N(0, sigma^2): serially dependent latencies
    whose true quantiles are exp(sigma z_q)."""
    noise = rng.standard_normal(n) * sigma * math.sqrt(1 - phi**2)
    x = np.empty(n)
    x[0] = rng.standard_normal() * sigma
    for i in range(1, n):
        x[i] = phi * x[i - 1] + noise[i]
    return np.exp(x)


def test_kolmogorov_quantiles():
    assert stats.kolmogorov_quantile(0.95) == pytest.approx(1.3581, abs=1e-3)
    assert stats.kolmogorov_quantile(0.99) == pytest.approx(1.6276, abs=1e-3)


def test_autocorrelation_time_of_an_ar1_series():
    rng = np.random.default_rng(3)
    for phi in (0.0, 0.5, 0.9):
        tau = stats.autocorrelation_time(np.log(ar1_log_latencies(rng, 40_000, phi, 1.0)))
        assert tau == pytest.approx((1 + phi) / (1 - phi), rel=0.2)


@pytest.mark.parametrize("phi", [0.8, 0.9])
def test_serial_intervals_cover_the_truth_under_autocorrelation(phi):
    """Serially dependent latencies (AR(1), like the 0.7-0.9 lag-1 autocorrelation measured
    on CPU cells): the row's 95% P50 and P99 intervals hold the true percentile in at least
    90% of runs, where the i.i.d. binomial interval on the same samples falls far short."""
    rng = np.random.default_rng(11)
    runs, n, sigma = 300, 2000, 0.3
    truth = {p: math.exp(sigma * NormalDist().inv_cdf(p / 100)) for p in (50, 99)}
    serial = dict.fromkeys(truth, 0)
    binomial = dict.fromkeys(truth, 0)
    for _ in range(runs):
        x = ar1_log_latencies(rng, n, phi, sigma)
        ordered = np.sort(x)
        for p, true in truth.items():
            low, high, method = stats.serial_quantile_interval(x, p / 100, 0.95, 20)
            assert method.startswith("binomial at effective n")
            serial[p] += (low is None or low <= true) and (high is None or true <= high)
            low, high = stats.quantile_interval(ordered, p / 100, 0.95)
            binomial[p] += low <= true <= high
    for p in truth:
        assert serial[p] / runs >= 0.90, (p, serial[p] / runs)
        assert binomial[p] / runs < 0.85  # the problem is real: independence does not hold


def test_serial_intervals_are_exact_for_independent_samples():
    """On i.i.d. samples the serial method keeps at least the stated coverage, and it counts
    them as nearly all independent."""
    rng = np.random.default_rng(5)
    runs, hits, effective = 500, dict.fromkeys(TRUE_LOGNORMAL, 0), []
    for _ in range(runs):
        x = rng.lognormal(0.0, 0.5, 1000)
        for p, truth in TRUE_LOGNORMAL.items():
            ranks = stats.serial_quantile_ranks(x, p / 100, 0.95, 20)
            ordered = np.sort(x)
            low = ordered[ranks.low - 1] if ranks.low else -np.inf
            high = ordered[ranks.high - 1] if ranks.high else np.inf
            hits[p] += low <= truth <= high
            if p == 50:
                effective.append(ranks.n_effective)
    for p, count in hits.items():
        assert 0.94 <= count / runs <= 0.995, (p, count / runs)
    assert np.median(effective) >= 0.7 * 1000


def test_too_few_requests_fall_back_to_the_binomial_interval():
    x = np.random.default_rng(0).lognormal(0.0, 0.5, 30)
    ranks = stats.serial_quantile_ranks(x, 0.5, 0.95, 20)
    assert ranks.method.startswith("binomial (too few")
    assert (ranks.low, ranks.high) == stats.quantile_ranks(30, 0.5, 0.95)
    assert ranks.n_effective == 30


def _closed_loop(latency: np.ndarray) -> stats.Evidence:
    """One client back to back: each request starts when the previous one ends."""
    ns = (latency * 5e6).astype(np.int64)
    done = np.cumsum(ns)
    return stats.Evidence(latency_ns=ns, done_ns=done, window_ns=int(done[-1]))


def test_stationary_runs_are_rarely_called_drifting():
    """400 stationary runs (autocorrelated, noisy): drifting in at most 3%, mostly stable."""
    rng = np.random.default_rng(21)
    states = [
        stats.stability(_closed_loop(ar1_log_latencies(rng, 300, 0.5, 0.3)), 0.10).state
        for _ in range(400)
    ]
    assert states.count("drifting") <= 12
    assert states.count("stable") >= 360


def test_a_slowdown_anywhere_is_drifting_and_named():
    """1.5x slower from the half way point, or from 80% of the way: a change point, not a
    comparison of halves, so a late step is caught as well as a central one."""
    rng = np.random.default_rng(22)
    drifting = 0
    for run in range(100):
        latency = ar1_log_latencies(rng, 300, 0.5, 0.3)
        latency[150 if run % 2 else 240 :] *= 1.5
        found = stats.stability(_closed_loop(latency), 0.10)
        drifting += found.state == "drifting"
    assert drifting >= 95
    assert found.reason.startswith("latency +") and "from request 151 of 300" in found.reason
    assert "CUSUM" in found.reason


def test_a_shift_within_the_tolerance_is_not_drift():
    latency = np.ones(400)
    latency[200:] = 1.05  # certain, but 5% < 10%
    assert stats.stability(_closed_loop(latency), 0.10).state == "stable"
    latency[200:] = 1.2
    assert stats.stability(_closed_loop(latency), 0.10).state == "drifting"


def test_too_few_or_too_correlated_requests_are_insufficient_and_say_how_many():
    found = stats.stability(_closed_loop(np.ones(25)), 0.10)
    assert found.state == "insufficient" and found.need_requests == stats.MIN_VERDICT_REQUESTS
    rng = np.random.default_rng(1)
    found = stats.stability(_closed_loop(ar1_log_latencies(rng, 200, 0.98, 0.2)), 0.10)
    assert found.state == "insufficient", found.reason
    assert "independent ones" in found.reason and found.need_requests > 200


def _open_loop(rate: float, service_ms: float, seconds: float, seed: int) -> stats.Evidence:
    """A single FIFO server fed Poisson arrivals: queueing delays from Lindley's recursion."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, int(rate * seconds * 1.5)))
    arrivals = arrivals[arrivals < seconds]
    service = np.full(arrivals.size, service_ms / 1000)
    start = np.empty_like(arrivals)
    free_at = 0.0
    for i, arrival in enumerate(arrivals):
        start[i] = max(arrival, free_at)
        free_at = start[i] + service[i]
    done = start + service
    return stats.Evidence(
        latency_ns=(service * 1e9).astype(np.int64),
        done_ns=(done * 1e9).astype(np.int64),
        window_ns=int(done[-1] * 1e9),
        judge_rate=False,
        target_rate_per_s=rate,
        queue_ns=((start - arrivals) * 1e9).astype(np.int64),
    )


def test_an_overloaded_open_loop_is_never_stable():
    """Arrivals at 120/s into a 10 ms server (capacity 100/s): the queue grows and the
    completion rate falls short, although every service time is exactly 10 ms."""
    found = stats.stability(_open_loop(120, 10, 10, seed=0), 0.10)
    assert found.state == "drifting"
    assert "overloaded" in found.reason and "queueing delay grew" in found.reason


def test_a_healthy_open_loop_is_stable():
    states = [stats.stability(_open_loop(50, 10, 10, seed=s), 0.10).state for s in range(50)]
    assert states.count("stable") >= 48, states
