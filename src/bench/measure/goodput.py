"""Per-request objectives, goodput and the token counts a window carried.

- A request meets the SLOs when it completed and each objective set holds: TTFT (scheduled
  time -> first token) <= slo.ttft_ms, TPOT ((latency - TTFT) / (its tokens - 1)) <=
  slo.tpot_ms, latency (scheduled time -> complete) <= slo.e2e_ms. A failed request meets
  none; an objective the request cannot be judged on (TTFT from an engine that does not
  stream) is not met.
- goodput_per_s = requests meeting every SLO / window_s; slo_*_met_share = the share of all
  requests (failed ones included) meeting that one; slo_met_share = every one.
- Token counts per request: input as sent (the workload's ids; words for a text prompt),
  input as the server reported it, output as asked and as produced (token_source says how
  that was counted: the server's usage, the stream's chunks, or an in-process engine's own
  output). Lengths are per request: a batch's sequences added up.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.config.schema import SloConfig
from bench.measure.loadgen import LoadResult


def tpot_ns(result: LoadResult, default_tokens: int) -> np.ndarray:
    """Time per output token of each request (float ns; nan where it has one token or no
    token times): its own streamed count, else `default_tokens`."""
    tokens = result.stream_tokens
    if tokens is None:
        tokens = np.full(result.ok.size, default_tokens)
    tokens = np.where(tokens > 0, tokens, default_tokens).astype(np.float64)
    ttft = result.ttft_ns.astype(np.float64)
    e2e = (result.done_ns - result.scheduled_ns).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        gaps = (e2e - ttft) / (tokens - 1)
    return np.where((tokens > 1) & (result.ttft_ns >= 0), gaps, np.nan)


def slo_met(
    result: LoadResult, slo: SloConfig, default_tokens: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(every set SLO met, per request; {objective: met, per request}) over all requests."""
    ok = result.ok
    checks: dict[str, np.ndarray] = {}
    if slo.ttft_ms is not None:
        ttft = result.ttft_ns
        checks["ttft"] = ok & (ttft >= 0) & (ttft <= slo.ttft_ms * 1e6)
    if slo.tpot_ms is not None:
        with np.errstate(invalid="ignore"):
            checks["tpot"] = ok & (tpot_ns(result, default_tokens) <= slo.tpot_ms * 1e6)
    if slo.e2e_ms is not None:
        checks["e2e"] = ok & (result.done_ns - result.scheduled_ns <= slo.e2e_ms * 1e6)
    met = ok.copy()
    for passed in checks.values():
        met &= passed
    return met, checks


def goodput_summary(result: LoadResult, slo: SloConfig, default_tokens: int) -> dict[str, Any]:
    if not slo.any() or result.ok.size == 0:
        return {}
    met, checks = slo_met(result, slo, default_tokens)
    total = result.ok.size
    columns: dict[str, Any] = {
        "slo": ", ".join(
            f"{name}<={value:g}ms"
            for name, value in (("ttft", slo.ttft_ms), ("tpot", slo.tpot_ms), ("e2e", slo.e2e_ms))
            if value is not None
        ),
        "slo_met_share": float(met.sum()) / total,
        "goodput_per_s": float(met.sum()) / result.window_s if result.window_s > 0 else 0.0,
    }
    for name, passed in checks.items():
        columns[f"slo_{name}_met_share"] = float(passed.sum()) / total
    return columns


def _stats(prefix: str, values: np.ndarray | None, ok: np.ndarray) -> dict[str, Any]:
    """mean, P50, P99 of the known (>= 0) values of ok requests; {} when none is known."""
    if values is None:
        return {}
    known = values[ok & (values >= 0)]
    if known.size == 0:
        return {}
    return {
        f"{prefix}_mean": float(known.mean()),
        f"{prefix}_p50": float(np.percentile(known, 50, method="inverted_cdf")),
        f"{prefix}_p99": float(np.percentile(known, 99, method="inverted_cdf")),
    }


def token_summary(result: LoadResult) -> dict[str, Any]:
    """Lengths as sent and as received, where the counts come from, and mismatches."""
    ok = result.ok
    columns: dict[str, Any] = {
        **_stats("input_tokens", result.input_tokens, ok),
        **_stats("server_input_tokens", result.server_input_tokens, ok),
        **_stats("output_tokens_asked", result.output_tokens_asked, ok),
        **_stats("output_tokens", result.output_tokens, ok),
    }
    if result.token_sources:
        columns["token_source"] = ", ".join(
            name if len(result.token_sources) == 1 else f"{name} {count}"
            for name, count in sorted(result.token_sources.items(), key=lambda kv: -kv[1])
        )
    asked, got = result.output_tokens_asked, result.output_tokens
    if asked is not None and got is not None:
        judged = ok & (asked >= 0) & (got >= 0)
        if judged.any():
            columns["token_mismatches"] = int((judged & (asked != got)).sum())
    return columns


def counted_tokens(values: np.ndarray | None, ok: np.ndarray) -> int | None:
    """The total of per-request counts over the ok requests, when every one is known."""
    if values is None or not ok.any():
        return None
    known = values[ok]
    return int(known.sum()) if (known >= 0).all() else None
