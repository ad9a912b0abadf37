"""Statistics behind every figure's interval and every cell's stability. Pure numpy, no I/O.

Requests measured one after another are not independent: a slow spell (another process, a
clock change, the allocator) makes neighbours slow together. The lag-1 autocorrelation of real
CPU latencies here is 0.7-0.9, and an interval that assumes independence then covers far less
than it says (AR(1) at 0.9: a nominal 95% P50 interval held the truth 41% of the time). So:

- Percentile intervals: **an effective sample size from batch means**. Cut the requests, in
  the order they were sent, into `b` consecutive batches (20, fewer for small samples, at
  least 5 requests each). The q-quantile estimate x_q splits every batch into the share at or
  below it; those b shares are nearly independent when a batch is longer than a slow spell,
  so their spread is the real variance of the share, dependence included. Its ratio to the
  independent-sample variance q (1 - q) / n (floored at 1, widened by (t/z)^2 for estimating
  it from b batches) says how many independent requests the n are worth: n_eff. The interval
  is the exact binomial one at n_eff, its ranks scaled back to n. Independent samples give
  n_eff = n and the exact interval; under 8 batches of 5 requests there is no spread to
  estimate from, and the binomial interval at n stands alone (the row's ci_method says which).
  Simulated AR(1) log-latencies (phi 0.8 / 0.9, n = 2000): 95% intervals held the true P50 in
  96% / 95% of runs and the true P99 in 95% / 95% (the binomial alone: 54% / 39%, 77% / 59%).
- The exact binomial interval (the i.i.d. special case): with n independent samples, the
  number at or below the true q-quantile is Binomial(n, q), so the order statistics
  x(l) <= x(u) bracket it with probability P(l <= B <= u - 1); equal-tailed, conservative.
- A percentile is *unsupported* below 1 / (1 - q) samples (P99 from fewer than 100 requests is
  the maximum, not a percentile); its interval is *unbounded above* when the upper level
  passes the sample (binomial: P99 at 95% needs 368 requests). Both are flagged in the row.
- Throughput: batch means over `b` equal time blocks of the measured window, mean block rate
  -+ t(b-1) x their standard error. $/M is a monotone function of throughput, so its interval
  is the throughput interval mapped through it.
- Stability: has the level moved during the window? A CUSUM change-point test on the log
  latencies (open loop: service times) in the order measured, and closed-loop throughput as
  the gaps between consecutive completions: the peak of the cumulative deviation from the
  mean, over the long-run standard deviation (sd x sqrt(tau), tau the integrated
  autocorrelation time by Geyer's initial positive sequence) x sqrt(n), against the Brownian
  bridge's supremum. Noise and tau come from the residuals around the two segments' means,
  so a real shift does not hide itself. `drifting` when a change is significant at 99% *and*
  larger than the tolerance (default 10%); an open loop is also `drifting` when it is
  overloaded (arrivals dropped, completions short of the target rate, or a growing queueing
  delay). `insufficient` below 40 requests or 20 effective ones (the reason says how many
  requests would do); otherwise `stable`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

CI_PERCENTILES = (50, 90, 99)
MIN_BATCH_REQUESTS = 5  # a batch shorter than this says nothing about its own level
MIN_BATCHES = 8  # fewer batches than this leave no spread to estimate an error from
MIN_VERDICT_REQUESTS = 40  # below this, not even the autocorrelation can be estimated
MIN_EFFECTIVE_REQUESTS = 20  # fewer independent requests than this judge nothing
DRIFT_CONFIDENCE = 0.99  # a drift flag is a false alarm in at most 1 stationary run of 100


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


def percentile_flags(
    n: int,
    percentiles: tuple[int, ...],
    confidence: float,
    effective: dict[int, int] | None = None,
) -> str | None:
    """One clause per percentile the sample count cannot support; None when all are fine.
    `effective` gives, per interval percentile, the independent samples the n are worth
    (serial dependence): an interval is bounded only when that count suffices."""
    flags, enough = [], n  # enough: the requests that would clear every flag
    for p in percentiles:
        q = p / 100
        worth = (effective or {}).get(p, n)
        if p in CI_PERCENTILES:  # a bounded interval needs more than a supported estimate
            # the independent samples the interval needs, in requests at this n's correlation
            enough = max(enough, math.ceil(min_samples_bounded(q, confidence) * n / max(worth, 1)))
        else:
            enough = max(enough, min_samples_supported(q))
        if n < (need := min_samples_supported(q)):
            flags.append(f"p{p} unsupported: n={n} < {need}")
            continue
        if p not in CI_PERCENTILES:
            continue
        if worth < (need := min_samples_bounded(q, confidence)):
            low, high = quantile_ranks(worth, q, confidence)
            end = "above" if high is None else "below"
            if low is None and high is None:
                end = "at both ends"
            count = f"n={n}" if worth == n else f"n={n} worth {worth} independent"
            flags.append(f"p{p} interval unbounded {end}: {count} < {need} at {confidence:.0%}")
    if not flags:
        return None
    return "; ".join(flags) + f"; fix: scenario.min_requests={enough} (and max_duration_s to match)"


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile (Cornish-Fisher expansion about the normal; within 0.5% of the
    exact value for df >= 3 at the levels used here)."""
    z = NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def batch_count(n: int, batches: int) -> int:
    """Batches for n requests: `batches`, fewer when they would hold under 5 requests each."""
    return min(batches, n // MIN_BATCH_REQUESTS)


@dataclass(frozen=True)
class SerialRanks:
    """Ranks bracketing a quantile under serial dependence, and what they came from."""

    low: int | None  # 1-based rank of the interval's low end (None: unbounded below)
    high: int | None  # ... of its high end (None: unbounded above)
    n_effective: int  # independent samples the dependent ones are worth, at this quantile
    method: str

    def values(self, ordered: np.ndarray) -> tuple[float | None, float | None]:
        """The interval's ends, read off the ascending-sorted samples."""
        return (
            float(ordered[self.low - 1]) if self.low is not None else None,
            float(ordered[self.high - 1]) if self.high is not None else None,
        )


def serial_quantile_ranks(
    values: np.ndarray,
    q: float,
    confidence: float,
    batches: int,
    ordered: np.ndarray | None = None,
) -> SerialRanks:
    """Ranks (l, u) bracketing the q-quantile of `values` (in the order measured), valid
    under serial dependence: the exact binomial ranks at the effective sample size, mapped
    back onto the full sample (module doc)."""
    n = values.size
    b = batch_count(n, batches)
    if b < MIN_BATCHES:
        low, high = quantile_ranks(n, q, confidence)
        return SerialRanks(low, high, n, "binomial (too few requests for batch means)")
    ordered = np.sort(values) if ordered is None else ordered  # callers may pass it sorted
    estimate = ordered[max(0, math.ceil(q * n - 1e-9) - 1)]
    shares = [part.mean() for part in np.array_split(values <= estimate, b)]
    between = float(np.std(shares, ddof=1)) ** 2 / b  # variance of the share, from batches
    inflation = between / (q * (1 - q) / n)  # ... over what independent requests would give
    # 20 batches estimate that variance loosely: widen by (t / z)^2 for b - 1 degrees of freedom
    level = 1 - (1 - confidence) / 2
    inflation *= (t_quantile(level, b - 1) / NormalDist().inv_cdf(level)) ** 2
    n_effective = max(1, int(n / max(1.0, inflation)))
    low, high = quantile_ranks(n_effective, q, confidence)
    scale = n / n_effective
    return SerialRanks(
        math.floor(low * scale) if low is not None else None,
        min(n, math.ceil(high * scale)) if high is not None else None,
        n_effective,
        f"binomial at effective n (batch means, {b} batches)",
    )


def serial_quantile_interval(
    values: np.ndarray, q: float, confidence: float, batches: int
) -> tuple[float | None, float | None, str]:
    """Interval for the q-quantile from samples in the order measured (see the module doc)."""
    ordered = np.sort(values)
    ranks = serial_quantile_ranks(values, q, confidence, batches, ordered)
    return (*ranks.values(ordered), ranks.method)


def block_rates(done_ns: np.ndarray, window_ns: int, blocks: int) -> np.ndarray:
    """Completions per second in each of `blocks` equal time blocks of the window."""
    edges = np.linspace(0, window_ns, blocks + 1)
    counts = np.histogram(np.clip(done_ns, 0, window_ns), bins=edges)[0]
    return counts / (window_ns / 1e9 / blocks)


def rate_interval(
    done_ns: np.ndarray, window_ns: int, confidence: float, batches: int
) -> tuple[float | None, float | None]:
    """Interval for completions per second: batch means over equal time blocks."""
    b = batch_count(done_ns.size, batches)
    if window_ns <= 0 or b < 2:
        return None, None
    rates = block_rates(done_ns, window_ns, b)
    rate = done_ns.size / (window_ns / 1e9)
    half = t_quantile(1 - (1 - confidence) / 2, b - 1) * float(np.std(rates, ddof=1)) / b**0.5
    return max(0.0, rate - half), rate + half


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
        rate = mine.size / span_s if span_s > 0 else 0.0
        out.append(Window(edges[i] / 1e9, int(mine.size), rate, p50))
    return out


def autocorrelation_time(x: np.ndarray) -> float:
    """Integrated autocorrelation time tau = 1 + 2 sum_k rho_k of a series (Geyer's initial
    positive sequence: sum the lag pairs rho_2m + rho_2m+1 while they stay positive). The
    mean of n such samples varies like the mean of n / tau independent ones. At least 1."""
    y = np.asarray(x, dtype=np.float64)
    y = y - y.mean()
    n = y.size
    if n < 4 or not np.any(y):
        return 1.0
    spectrum = np.fft.rfft(y, 2 * n)
    autocovariance = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    rho = autocovariance / autocovariance[0]
    tau = -1.0
    for m in range(n // 2):
        pair = rho[2 * m] + rho[2 * m + 1]
        if pair <= 0:
            break
        tau += 2 * pair
    return max(1.0, float(tau))


def kolmogorov_quantile(confidence: float) -> float:
    """x with P(sup |Brownian bridge| <= x) = confidence: the CUSUM test's critical value
    (1.358 at 95%, 1.628 at 99%)."""

    def tail(x: float) -> float:
        return 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * x * x) for k in range(1, 101))

    low, high = 0.3, 5.0
    for _ in range(60):  # bisection: the tail falls monotonically in x
        mid = (low + high) / 2
        low, high = (mid, high) if tail(mid) > 1 - confidence else (low, mid)
    return (low + high) / 2


@dataclass(frozen=True)
class Shift:
    """The most likely change in a series' level (at most one change point, CUSUM): the
    means before and after it, and the test statistic against its critical value."""

    before: float  # mean of the series up to the change point
    after: float  # mean after it
    at: int  # the change point: index of the first value after it
    statistic: float  # max |cumulative deviation| / (long-run sd x sqrt(n))
    critical: float  # beyond this the change is significant at DRIFT_CONFIDENCE
    tau: float  # autocorrelation time of the series around its two segment means
    count: int

    @property
    def significant(self) -> bool:
        return self.statistic > self.critical

    @property
    def n_effective(self) -> float:
        return self.count / self.tau


def level_shift(x: np.ndarray, confidence: float) -> Shift:
    """CUSUM test for a change in the mean of `x` (in the order measured). The cumulative sum
    of deviations from the overall mean peaks in size at the most likely change point; scaled
    by the long-run standard deviation (sd x sqrt(tau), so correlated neighbours count as
    fewer) and sqrt(n), its maximum is asymptotically the supremum of a Brownian bridge when
    the level holds. The noise and tau come from the residuals around the two segments'
    own means, so a real shift does not inflate the noise it is judged against; a gradual
    trend shows as a shift too."""
    y = np.asarray(x, dtype=np.float64)
    n = y.size
    cusum = np.cumsum(y - y.mean())[:-1]
    at = int(np.argmax(np.abs(cusum))) + 1
    before, after = y[:at], y[at:]
    residuals = np.concatenate([before - before.mean(), after - after.mean()])
    scale = float(np.abs(y).mean()) or 1.0
    noiseless = float(np.abs(residuals).max()) <= 1e-12 * scale  # rounding, not noise
    tau = 1.0 if noiseless else autocorrelation_time(residuals)
    spread = float(np.sqrt((residuals * residuals).sum() / max(1, n - 2)))
    peak = float(np.abs(cusum).max())
    if spread > 0:
        statistic = peak / (spread * math.sqrt(tau * n))
    else:  # no noise at all: any difference is certain
        statistic = math.inf if peak > 1e-12 * scale * n else 0.0
    return Shift(
        float(before.mean()),
        float(after.mean()),
        at,
        statistic,
        kolmogorov_quantile(confidence),
        tau,
        n,
    )


@dataclass(frozen=True)
class Evidence:
    """What stability is judged from: the judged latencies in the order measured, the ok
    completions' times, and for an open loop its arrival rate and queueing delays."""

    latency_ns: np.ndarray  # closed loop: latency; open loop: service time (sent -> done)
    done_ns: np.ndarray  # ok completions, ns after the window opened
    window_ns: int
    judge_rate: bool = True  # closed loop: the throughput must hold too
    target_rate_per_s: float | None = None  # open loop
    queue_ns: np.ndarray | None = None  # open loop: scheduled -> sent, in order
    dropped: int = 0  # open loop: arrivals never sent


@dataclass(frozen=True)
class Stability:
    state: str  # stable | drifting | insufficient
    reason: str
    need_requests: int | None = None  # insufficient: requests a judgement would need


def _latency_clause(evidence: Evidence, tolerance: float) -> tuple[str | None, Shift]:
    logs = np.log(np.maximum(evidence.latency_ns, 1).astype(np.float64))
    shift = level_shift(logs, DRIFT_CONFIDENCE)
    change = math.exp(shift.after - shift.before) - 1
    what = "latency" if evidence.judge_rate else "service time"
    if not (shift.significant and abs(change) > tolerance):
        return None, shift
    return (
        f"{what} {change:+.0%} from request {shift.at + 1} of {shift.count} on "
        f"({math.exp(shift.before) / 1e6:.4g} -> {math.exp(shift.after) / 1e6:.4g} ms "
        f"geometric mean; CUSUM {shift.statistic:.2f}, critical {shift.critical:.2f})"
    ), shift


def _rate_clause(evidence: Evidence, tolerance: float) -> str | None:
    """Throughput as the gaps between consecutive completions (their mean is 1 / rate): a
    stall between requests that no latency shows (the harness's own, say) shows here."""
    gaps = np.diff(np.sort(evidence.done_ns)).astype(np.float64)
    if gaps.size < MIN_VERDICT_REQUESTS:
        return None
    shift = level_shift(gaps, DRIFT_CONFIDENCE)
    change = shift.before / shift.after - 1 if shift.after > 0 else math.inf
    if not (shift.significant and abs(change) > tolerance):
        return None
    before, after = 1e9 / shift.before, 1e9 / shift.after
    return (
        f"throughput {change:+.0%} from completion {shift.at + 1} of {shift.count} on "
        f"({before:.4g} -> {after:.4g}/s; CUSUM {shift.statistic:.2f}, "
        f"critical {shift.critical:.2f})"
    )


def _overload_clauses(evidence: Evidence, tolerance: float) -> list[str]:
    """An open loop whose server cannot keep up: arrivals dropped, completions short of the
    target rate by more than Poisson noise and the tolerance, or a queue that grows."""
    clauses = []
    if evidence.dropped:
        clauses.append(f"{evidence.dropped} arrivals dropped unsent")
    target = evidence.target_rate_per_s or 0.0
    window_s = evidence.window_ns / 1e9
    expected, served = target * window_s, evidence.done_ns.size
    z = NormalDist().inv_cdf(DRIFT_CONFIDENCE)
    short = expected > 0 and served < expected - z * math.sqrt(expected)
    if short and 1 - served / expected > tolerance:
        clauses.append(f"served {served / window_s:.4g}/s of a target {target:.4g}/s")
    if evidence.queue_ns is not None and evidence.queue_ns.size >= 4:
        shift = level_shift(evidence.queue_ns, DRIFT_CONFIDENCE)
        service_ms = float(np.median(evidence.latency_ns)) / 1e6
        growth_ms = (shift.after - shift.before) / 1e6
        if shift.significant and growth_ms > tolerance * service_ms:
            clauses.append(
                f"queueing delay grew {shift.before / 1e6:.4g} -> {shift.after / 1e6:.4g} ms "
                f"mean from arrival {shift.at + 1} of {shift.count} on "
                f"(CUSUM {shift.statistic:.2f})"
            )
    return clauses


def stability(evidence: Evidence, tolerance: float) -> Stability:
    """stable | drifting | insufficient, with the figures that decided it (module doc)."""
    n = evidence.latency_ns.size
    if n < MIN_VERDICT_REQUESTS:
        return Stability(
            "insufficient",
            f"{n} requests; judging stability needs at least {MIN_VERDICT_REQUESTS}",
            MIN_VERDICT_REQUESTS,
        )
    clause, shift = _latency_clause(evidence, tolerance)
    if shift.n_effective < MIN_EFFECTIVE_REQUESTS:
        need = math.ceil(MIN_EFFECTIVE_REQUESTS * shift.tau)
        return Stability(
            "insufficient",
            f"{n} requests are worth {shift.n_effective:.0f} independent ones (neighbours "
            f"correlate: autocorrelation time {shift.tau:.1f} requests); judging stability needs "
            f"{MIN_EFFECTIVE_REQUESTS}, about {need} requests",
            need,
        )
    clauses = [clause] if clause else []
    if evidence.judge_rate and (rate := _rate_clause(evidence, tolerance)):
        clauses.append(rate)
    if evidence.target_rate_per_s is not None:
        clauses += [f"overloaded: {c}" for c in _overload_clauses(evidence, tolerance)]
    if clauses:
        return Stability("drifting", "; ".join(clauses))
    what = "latency and throughput" if evidence.judge_rate else "service time and queueing"
    return Stability(
        "stable",
        f"{what}: no change in level beyond {tolerance:.0%} during the window "
        f"({DRIFT_CONFIDENCE:.0%} confidence, {shift.n_effective:.0f} effective requests)",
    )


def relative_half_width(estimate: float, low: float | None, high: float | None) -> float:
    """(high - low) / 2 / estimate; infinite when an end is missing."""
    if low is None or high is None or estimate <= 0:
        return math.inf
    return (high - low) / 2 / estimate
