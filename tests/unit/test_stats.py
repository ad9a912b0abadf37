"""The statistics behind intervals and verdicts, checked against distributions we know."""

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
    assert stats.percentile_flags(80, (50, 90, 95, 99), 0.95) == "p99 unsupported: n=80 < 100"
    flags = stats.percentile_flags(200, (50, 90, 95, 99), 0.95)
    assert flags == "p99 interval unbounded above: n=200 < 368 at 95%"


def test_block_bootstrap_brackets_a_steady_rate():
    """Completions of a Poisson stream at 500/s over 10 s: the interval holds 500 in most
    seeds and narrows as the window grows."""
    covered, widths = 0, []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        done = np.cumsum(rng.exponential(1 / 500, 6000)) * 1e9
        done = done[done < 10e9].astype(np.int64)
        low, high = stats.block_bootstrap_rate(done, int(10e9), 0.95, 1000, seed=seed)
        covered += low <= 500 <= high
        widths.append(high - low)
    # a 20-block bootstrap is slightly narrow (about 92% here); it must not be far off
    assert covered / 200 >= 0.88
    assert np.median(widths) < 0.1 * 500


def _windows(rates: list[float], p50s: list[float]) -> list[stats.Window]:
    return [stats.Window(i, 100, r, p) for i, (r, p) in enumerate(zip(rates, p50s, strict=True))]


def test_verdict_stable_when_the_last_windows_agree():
    verdict, reason = stats.verdict(_windows([50, 100, 101, 99, 100], [5] * 5), 3, 0.1)
    assert verdict == "stable", reason  # the first window (a slow start) is not judged
    assert "last 3 of 5" in reason


def test_verdict_unstable_names_the_metric_and_the_spread():
    verdict, reason = stats.verdict(_windows([100, 100, 100, 80, 60], [5] * 5), 3, 0.1)
    assert verdict == "unstable"
    assert reason.startswith("throughput") and "60-100/s" in reason and "tolerance 10%" in reason
    verdict, reason = stats.verdict(_windows([100] * 5, [5, 5, 5, 5, 7]), 3, 0.1)
    assert verdict == "unstable" and reason.startswith("P50")


def test_verdict_refuses_to_judge_sparse_windows():
    windows = [stats.Window(i, n, 10.0, 5.0) for i, n in enumerate([40, 40, 40, 40, 3])]
    verdict, reason = stats.verdict(windows, 3, 0.1)
    assert verdict == "unstable" and "window 5 of 5 has 3" in reason


def test_open_loop_verdict_judges_service_time_not_the_arrival_rate():
    # Poisson arrivals make window rates differ; the server itself is steady
    windows = _windows([330, 390, 330, 400, 380], [2.1, 2.1, 2.1, 2.1, 2.1])
    verdict, reason = stats.verdict(windows, 3, 0.1, judge_rate=False)
    assert verdict == "stable" and "service-time P50" in reason
    windows = _windows([380] * 5, [2.1, 2.1, 2.1, 2.1, 3.0])
    assert stats.verdict(windows, 3, 0.1, judge_rate=False)[0] == "unstable"
