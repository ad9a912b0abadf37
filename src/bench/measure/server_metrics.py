"""A server's own metrics (Prometheus text at its /metrics), read with the host telemetry.

vLLM, SGLang and TGI expose what the client cannot see: the KV cache's fill, the requests
running and waiting in the server's scheduler, prefix-cache hits, preemptions. Each telemetry
sample GETs the page (a 1 s timeout, loopback or the endpoint's network; outside every
request's timed bracket) and keeps the figures below, summed over label sets (engines,
models). The row gets, over the measured window(s): the KV cache's use (max, mean, as a share
0..1), the most requests running and waiting, the prefix-cache hit rate (hits / queries
between the window's first and last sample, in tokens as vLLM counts them) and preemptions
in between. A page that does not answer is tried once more, then left: the row says why.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from typing import Any

# figure -> metric names, in order of preference, across servers and versions
GAUGES = {
    "kv_cache_usage": (
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
        "sglang:token_usage",
    ),
    "requests_running": (
        "vllm:num_requests_running",
        "sglang:num_running_reqs",
        "tgi_batch_current_size",
    ),
    "requests_waiting": ("vllm:num_requests_waiting", "sglang:num_queue_reqs", "tgi_queue_size"),
}
COUNTERS = {
    "prefix_hits": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
    "prefix_queries": ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
    "preemptions": ("vllm:num_preemptions_total",),
}
TIMEOUT_S = 1.0


def parse(text: str) -> dict[str, float]:
    """metric name -> value summed over its label sets, from Prometheus text format."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, rest = line.rpartition("}") if "}" in line else ("", "", line)
        name = head.split("{", 1)[0] if head else rest.split()[0]
        fields = rest.split()
        if not fields:
            continue
        number = fields[0] if head else (fields[1] if len(fields) > 1 else "")
        try:
            value = float(number)
        except ValueError:
            continue
        if math.isfinite(value):
            values[name] = values.get(name, 0.0) + value
    return values


def figures(metrics: dict[str, float]) -> dict[str, float]:
    """The figures bench keeps (GAUGES, COUNTERS) from a parsed page."""
    out = {}
    for figure, names in {**GAUGES, **COUNTERS}.items():
        for name in names:
            if name in metrics:
                out[figure] = metrics[name]
                break
    return out


class ServerMetrics:
    """Reads `url` when asked; `unavailable` says why it no longer does."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.unavailable: str | None = None if url else "no metrics URL (engine.metrics_url)"
        self.failures = 0

    def read(self) -> dict[str, float] | None:
        if self.unavailable is not None or self.url is None:
            return None
        try:
            with urllib.request.urlopen(self.url, timeout=TIMEOUT_S) as answer:
                return figures(parse(answer.read().decode(errors="replace")))
        except (OSError, ValueError, urllib.error.URLError) as exc:
            self.failures += 1
            if self.failures >= 2:
                self.unavailable = f"{self.url}: {type(exc).__name__}: {exc}"[:200]
            return None


def summary(readings: list[dict[str, float]], note: str | None, url: str | None) -> dict[str, Any]:
    """The row's server columns from the readings inside the window(s)."""
    if not readings:
        return {"server_metrics": note or f"{url}: no reading inside the window"}
    columns: dict[str, Any] = {"server_metrics": f"prometheus {url}"}
    usage = [r["kv_cache_usage"] for r in readings if "kv_cache_usage" in r]
    if usage:
        columns.update(server_kv_cache_usage_max=max(usage))
        columns.update(server_kv_cache_usage_mean=sum(usage) / len(usage))
    for figure in ("requests_running", "requests_waiting"):
        seen = [r[figure] for r in readings if figure in r]
        if seen:
            columns[f"server_{figure}_max"] = max(seen)
    first, last = readings[0], readings[-1]
    queries = last.get("prefix_queries", 0.0) - first.get("prefix_queries", 0.0)
    if "prefix_queries" in last and queries > 0:
        hits = last.get("prefix_hits", 0.0) - first.get("prefix_hits", 0.0)
        columns["server_prefix_cache_hit_rate"] = hits / queries
    if "preemptions" in last:
        columns["server_preemptions"] = last["preemptions"] - first.get("preemptions", 0.0)
    return columns
