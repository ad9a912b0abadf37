"""Metric definitions: one function each, the formulas the README states.

- Percentiles are nearest-rank: the smallest sample with at least q% of samples at or below it
  (`numpy.percentile(..., method="inverted_cdf")`), always reported with n.
- inferences_per_s = completed requests x batch_size / window_s.
- tokens_per_s = inferences_per_s x tokens per inference: new_tokens when generating,
  seq_len input tokens when encoding.
- usd_per_million_inferences = price_per_hour / 3600 / inferences_per_s x 1e6.
- packed: the instance holds replicas = floor(GPUs / TP degree) copies, each serving what the
  measured copy served: price_per_hour / replicas / 3600 / inferences_per_s x 1e6.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.config import CellConfig
from bench.feasibility import packed_replicas
from bench.loadgen import LoadResult

PERCENTILES = (50, 90, 95, 99)


def nearest_rank_ms(latency_ns: np.ndarray, q: float) -> float:
    """The q-th nearest-rank percentile of latencies given in ns, in ms."""
    return float(np.percentile(latency_ns, q, method="inverted_cdf")) / 1e6


def usd_per_million(price_per_hour: float, per_second: float) -> float | None:
    """Dollars per million units served at `per_second` on an instance at `price_per_hour`."""
    if per_second <= 0:
        return None
    return price_per_hour / 3600.0 / per_second * 1e6


def tokens_per_inference(cell: CellConfig) -> int:
    model = cell.model
    return model.new_tokens if model.task == "generate" else model.seq_len


def latency_summary(latency_ns: np.ndarray) -> dict[str, float]:
    ms = latency_ns / 1e6
    summary = {f"latency_ms_p{q}": nearest_rank_ms(latency_ns, q) for q in PERCENTILES}
    summary.update(
        latency_ms_mean=float(ms.mean()),
        latency_ms_std=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        latency_ms_min=float(ms.min()),
        latency_ms_max=float(ms.max()),
    )
    return summary


def summarize(result: LoadResult, cell: CellConfig) -> dict[str, Any]:
    """Row columns for a measured window."""
    requests_per_s = result.n / result.window_s if result.window_s > 0 else 0.0
    inferences_per_s = requests_per_s * cell.batch_size
    tokens_per_s = inferences_per_s * tokens_per_inference(cell)
    replicas = packed_replicas(cell.instance, cell.tp_degree)
    per_replica = cell.price_per_hour / replicas
    return {
        "n": result.n,
        "warmup_n": result.warmup_n,
        "window_s": result.window_s,
        "stop_reason": result.stop_reason,
        **latency_summary(result.latency_ns),
        "requests_per_s": requests_per_s,
        "inferences_per_s": inferences_per_s,
        "tokens_per_s": tokens_per_s,
        "usd_per_million_inferences": usd_per_million(cell.price_per_hour, inferences_per_s),
        "usd_per_million_tokens": usd_per_million(cell.price_per_hour, tokens_per_s),
        "replicas_per_instance": replicas,
        "usd_per_million_inferences_packed": usd_per_million(per_replica, inferences_per_s),
        "usd_per_million_tokens_packed": usd_per_million(per_replica, tokens_per_s),
    }
