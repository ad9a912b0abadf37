"""Statistics behind every figure's interval and every cell's verdict. Pure numpy, no I/O.

- Percentile intervals are distribution-free: with n samples, the number of them at or below
  the true q-quantile is Binomial(n, q), so the order statistics x(l) <= x(u) bracket it with
  probability P(l <= B <= u - 1). We take the equal-tailed ranks with at least the stated
  confidence (exact, conservative; no assumption about the latency distribution).
- A percentile is *unsupported* below 1 / (1 - q) samples (P99 from fewer than 100 requests is
  the maximum, not a percentile); its interval is *unbounded above* below the n at which
  x(u) exists (P99 at 95%: 368 requests). Both are flagged in the row.
- Throughput intervals are a block bootstrap over equal time blocks of the measured window:
  requests in a closed loop are not independent, time blocks nearly are. $/M is a monotone
  function of throughput, so its interval is the throughput interval mapped through it.
- Stability: the window is cut into equal time windows; the last few must agree on throughput
  and P50 within a tolerance, or the cell is `unstable` and the row says by how much.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

CI_PERCENTILES = (50, 90, 99)
BOOTSTRAP_BLOCKS = 20  # time blocks the window is cut into for the throughput bootstrap
MIN_WINDOW_REQUESTS = 10  # below this per window, a verdict would judge noise


@functools.lru_cache(maxsize=32)  # O(n) arrays: a run checks a handful of sizes
def binomial_cdf(n: int, q: float) -> np.ndarray:
    """P(B <= k) for k = 0..n, B ~ Binomial(n, q), computed in log space (n up to millions)."""
    k = np.arange(1, n + 1, dtype=np.float64)
    log_ratio = np.log(n - k + 1) - np.log(k) + math.log(q / (1 - q))
    log_pmf = n * math.log1p(-q) + np.concatenate(([0.0], np.cumsum(log_ratio)))
    cdf = np.cumsum(np.exp(log_pmf - log_pmf.max())) * math.exp(log_pmf.max())
    return np.minimum(cdf, 1.0)


def quantile_ranks(n: int, q: float, confidence: float) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) of the order statistics that bracket the q-quantile with at least
    `confidence`; None for an end the sample count cannot bound."""
    if n < 1:
        return None, None
    alpha = 1 - confidence
    cdf = binomial_cdf(n, q)  # cdf[k] = P(B <= k)
    # lower: the largest l with P(B <= l - 1) <= alpha / 2
    below = np.flatnonzero(cdf[:n] <= alpha / 2)
    low = int(below[-1]) + 1 if below.size else None
    # upper: the smallest u with P(B <= u - 1) >= 1 - alpha / 2, u <= n
    above = np.flatnonzero(cdf[:n] >= 1 - alpha / 2)
    high = int(above[0]) + 1 if above.size else None
    return low, high


def quantile_interval(
    sorted_values: np.ndarray, q: float, confidence: float
) -> tuple[float | None, float | None]:
    """Interval for the q-quantile (0 < q < 1) from ascending-sorted samples."""
    low, high = quantile_ranks(sorted_values.size, q, confidence)
    return (
        float(sorted_values[low - 1]) if low is not None else None,
        float(sorted_values[high - 1]) if high is not None else None,
    )


@functools.lru_cache(maxsize=64)
def min_samples_bounded(q: float, confidence: float) -> int:
    """The smallest n for which the q-quantile's interval has both ends."""
    n = max(1, math.ceil(math.log((1 - confidence) / 2) / math.log(max(q, 1 - q))))
    while None in quantile_ranks(n, q, confidence):
        n += 1
    return n


def min_samples_supported(q: float) -> int:
    """Below this n the q-quantile is the sample maximum: 1 / (1 - q), rounded up."""
    return math.ceil(1 / (1 - q) - 1e-9)


def percentile_flags(n: int, percentiles: tuple[int, ...], confidence: float) -> str | None:
    """One clause per percentile the sample count cannot support; None when all are fine."""
    flags = []
    for p in percentiles:
        q = p / 100
        if n < (need := min_samples_supported(q)):
            flags.append(f"p{p} unsupported: n={n} < {need}")
        elif p in CI_PERCENTILES and n < (need := min_samples_bounded(q, confidence)):
            low, high = quantile_ranks(n, q, confidence)
            end = "above" if high is None else "below"
            if low is None and high is None:
                end = "at both ends"
            flags.append(f"p{p} interval unbounded {end}: n={n} < {need} at {confidence:.0%}")
    return "; ".join(flags) or None


def block_bootstrap_rate(
    done_ns: np.ndarray,
    window_ns: int,
    confidence: float,
    resamples: int,
    seed: int = 0,
    blocks: int = BOOTSTRAP_BLOCKS,
) -> tuple[float | None, float | None]:
    """Interval for completions per second over a window, by resampling equal time blocks."""
    if window_ns <= 0 or done_ns.size == 0:
        return None, None
    blocks = max(2, min(blocks, done_ns.size))
    edges = np.linspace(0, window_ns, blocks + 1)
    counts = np.histogram(np.clip(done_ns, 0, window_ns), bins=edges)[0]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, blocks, size=(resamples, blocks))
    rates = counts[picks].sum(axis=1) / (window_ns / 1e9)
    alpha = 1 - confidence
    low, high = np.quantile(rates, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class Window:
    """One equal time slice of the measured window (requests assigned by completion time)."""

    start_s: float
    n: int
    per_s: float
    p50_ms: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "start_s": round(self.start_s, 4),
            "n": self.n,
            "per_s": self.per_s,
            "p50_ms": self.p50_ms,
        }


def time_windows(
    done_ns: np.ndarray, latency_ns: np.ndarray, window_ns: int, count: int
) -> list[Window]:
    edges = np.linspace(0, window_ns, count + 1)
    which = np.clip(np.searchsorted(edges, done_ns, side="right") - 1, 0, count - 1)
    out = []
    for i in range(count):
        mine = latency_ns[which == i]
        span_s = (edges[i + 1] - edges[i]) / 1e9
        p50 = float(np.percentile(mine, 50, method="inverted_cdf")) / 1e6 if mine.size else None
        out.append(Window(edges[i] / 1e9, int(mine.size), mine.size / span_s, p50))
    return out


def _spread(values: list[float]) -> float:
    """(max - min) / median: the share by which the windows disagree."""
    median = float(np.median(values))
    return (max(values) - min(values)) / median if median > 0 else math.inf


def verdict(
    windows: list[Window], last: int, tolerance: float, judge_rate: bool = True
) -> tuple[str, str]:
    """`stable` when the last `last` windows agree on throughput and P50 within `tolerance`
    (spread = (max - min) / median); else `unstable`, with the figures that decided it.
    Without `judge_rate` (open loop: the arrivals set the rate) only the P50 is judged."""
    tail = windows[-last:]
    sparse = [i for i, w in enumerate(tail, len(windows) - last + 1) if w.n < MIN_WINDOW_REQUESTS]
    if sparse:
        return "unstable", (
            f"too few requests to judge: window {sparse[0]} of {len(windows)} has "
            f"{tail[sparse[0] - (len(windows) - last + 1)].n} (need {MIN_WINDOW_REQUESTS}); "
            "measure longer"
        )
    rates = [w.per_s for w in tail]
    p50s = [w.p50_ms for w in tail if w.p50_ms is not None]
    rate_spread, p50_spread = _spread(rates), _spread(p50s)
    span = f"the last {last} of {len(windows)} windows"
    if not judge_rate:
        if p50_spread > tolerance:
            return "unstable", (
                f"service-time P50 over {span} spans {min(p50s):.4g}-{max(p50s):.4g} ms "
                f"({p50_spread:.0%} of the median; tolerance {tolerance:.0%})"
            )
        return "stable", (
            f"{span} agree: service-time P50 within {p50_spread:.1%} (tolerance "
            f"{tolerance:.0%}; open loop, so the arrivals set the throughput)"
        )
    if rate_spread > tolerance:
        return "unstable", (
            f"throughput over {span} spans {min(rates):.4g}-{max(rates):.4g}/s "
            f"({rate_spread:.0%} of the median; tolerance {tolerance:.0%})"
        )
    if p50_spread > tolerance:
        return "unstable", (
            f"P50 over {span} spans {min(p50s):.4g}-{max(p50s):.4g} ms "
            f"({p50_spread:.0%} of the median; tolerance {tolerance:.0%})"
        )
    return "stable", (
        f"{span} agree: throughput within {rate_spread:.1%}, P50 within {p50_spread:.1%} "
        f"(tolerance {tolerance:.0%})"
    )


def relative_half_width(estimate: float, low: float | None, high: float | None) -> float:
    """(high - low) / 2 / estimate; infinite when an end is missing."""
    if low is None or high is None or estimate <= 0:
        return math.inf
    return (high - low) / 2 / estimate
