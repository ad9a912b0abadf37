"""Intervals over runs: how much a metric changed between two sets of runs of one configuration.

Each run (`repeats=K`: K processes per configuration, rows grouped by `config_id`) gives one
value of a metric (its P50, P99, throughput, $/M). The change NEW / BASE - 1 is estimated on
the log scale, as the ratio of the two sides' geometric means, and its 95% interval is
Welch's t interval for the difference of the mean logs:

    d = mean(log new) - mean(log base),  se^2 = s_b^2 / K_b + s_n^2 / K_n,
    interval exp(d -/+ t(0.975, df) * se) - 1, df by Welch-Satterthwaite.

Why runs and not requests: a run's requests share its process, its placement and the host's
state during it, so an interval from them (a bootstrap of one run's samples) cannot see how the
host changes between runs; two runs of one configuration on a busy host differ by more than
that interval (issue 37's A/A flaps). The spread of per-run values holds both the within-run
sampling error and the between-run drift, so it needs no model of either.

Assumptions: the runs are independent (each its own process; interleaving the two sides makes
a drifting host fall on both alike) and a metric's log is roughly normal across runs. With K=3
per side Welch's df lies between 2 and 4 and t(0.975) between 4.30 and 2.78: intervals are
honest but wide; the `resolvable_change` column says how wide, per metric. When one side has a
single run, its spread is taken to be the other side's (a pooled t with the other side's
degrees of freedom): stated in the output, an assumption that interleaving supports.

The t quantile is computed exactly (regularised incomplete beta, inverted by bisection):
Welch's df is fractional and often under 3, where bench.stats.t_quantile's expansion
falls short of the exact quantile (anti-conservative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
POWER = 0.80  # resolvable change: the true change detected this often at CONFIDENCE
WHAT_K_BUYS = (3, 5, 10)  # repeats shown to a comparison of one run per side


@dataclass(frozen=True)
class RunChange:
    """A relative change NEW / BASE - 1 with its interval, from per-run values."""

    change: float
    low: float
    high: float
    resolvable: float  # smallest true change detected POWER of the time at CONFIDENCE
    df: float  # degrees of freedom of the t interval
    pooled: bool  # one side had one run: its spread was taken from the other side


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        even = m * (b - m) * x / ((qam + m2) * (a + m2))
        odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        for numerator in (even, odd):  # the fraction's two steps per m
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):  # the fraction converges fast on this side
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student's t distribution function at t with df (> 0, fractional allowed) degrees."""
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_ppf(p: float, df: float) -> float:
    """Student's t quantile: exact to ~1e-10, by bisection on t_cdf."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_ppf needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_ppf(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


def resolvable(se_log: float, df: float | None) -> float:
    """The smallest relative change an interval of standard error `se_log` (log scale) detects
    POWER of the time at CONFIDENCE: (t(1 - alpha/2) + t(POWER)) * se, back from the log scale.
    df None: the normal quantiles (a bootstrap interval)."""
    if df is None:
        from statistics import NormalDist

        normal = NormalDist()
        multiple = normal.inv_cdf(1 - (1 - CONFIDENCE) / 2) + normal.inv_cdf(POWER)
    else:
        multiple = t_ppf(1 - (1 - CONFIDENCE) / 2, df) + t_ppf(POWER, df)
    return math.expm1(multiple * se_log)


def resolvable_from_interval(low: float, high: float) -> float:
    """resolvable() for an interval (relative changes) given without its standard error, read
    as a normal interval on the log scale at CONFIDENCE."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - (1 - CONFIDENCE) / 2)
    return resolvable((math.log1p(high) - math.log1p(low)) / (2 * z), None)


def run_change(base: np.ndarray, new: np.ndarray) -> RunChange | None:
    """The change of a metric from per-run values (each > 0), Welch's t on the log scale; None
    when a side has no usable run or neither side has two (no spread to estimate)."""
    base = np.log(base[np.isfinite(base) & (base > 0)])
    new = np.log(new[np.isfinite(new) & (new > 0)])
    k_base, k_new = base.size, new.size
    if k_base == 0 or k_new == 0 or max(k_base, k_new) < 2:
        return None
    change = float(new.mean() - base.mean())
    pooled = min(k_base, k_new) < 2
    if pooled:  # one run on one side: its spread assumed the other side's
        spread = base if k_base > 1 else new
        variance = float(spread.var(ddof=1))
        se = math.sqrt(variance * (1 / k_base + 1 / k_new))
        df = float(spread.size - 1)
    else:
        v_base, v_new = base.var(ddof=1) / k_base, new.var(ddof=1) / k_new
        se = math.sqrt(v_base + v_new)
        denominator = v_base**2 / (k_base - 1) + v_new**2 / (k_new - 1)
        # identical runs (no spread at all): Welch's df is 0/0; the pooled df is its limit
        df = float((v_base + v_new) ** 2 / denominator) if denominator > 0 else k_base + k_new - 2.0
    half = t_ppf(1 - (1 - CONFIDENCE) / 2, df) * se
    return RunChange(
        change=math.expm1(change),
        low=math.expm1(change - half),
        high=math.expm1(change + half),
        resolvable=resolvable(se, df),
        df=df,
        pooled=pooled,
    )


def what_repeats_buy() -> str:
    """For a comparison of one run per side: the resolvable change that K runs per side would
    give, as a multiple of the metric's run-to-run spread (the standard deviation of its log
    across runs, which one run cannot show), assuming equal spreads on both sides (df 2K - 2)."""
    parts = []
    for k in WHAT_K_BUYS:
        df = 2 * k - 2
        multiple = (t_ppf(1 - (1 - CONFIDENCE) / 2, df) + t_ppf(POWER, df)) * math.sqrt(2 / k)
        parts.append(f"{multiple:.1f} x at repeats={k}")
    return ", ".join(parts)
