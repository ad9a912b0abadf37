"""Synthetic aggregate rows for the `bench compare` tests: runs of sleep-engine configurations
with chosen latencies and host facts, written into a store as `bench compare` reads them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bench.row.schema import rows_to_table

PRICE = 0.192  # $/hour, local-cpu's stand-in


def run_row(
    sweep_id: str,
    p50_ms: float,
    *,
    repeat: int = 0,
    threads: int = 4,
    service_ms: float = 40.0,
    axes: dict[str, Any] | None = None,
    index: int = 0,
    n: int = 1000,
    host: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One run (one row) of a sleep-engine configuration whose P50 is `p50_ms` (P90 and P99
    1.2 and 1.5 times it, throughput `threads` / P50), on a 2-CPU host unless `host` says
    otherwise. The configuration's id follows its threads and service time (and axes)."""
    axes = axes or {}
    label = "-".join(f"{k}{v}" for k, v in sorted(axes.items()))
    config_id = f"sleep-t{threads}-s{service_ms:g}" + (f"-{label}" if label else "")
    cell_id = config_id + (f"-r{repeat}" if repeat else "")
    rate = threads / (p50_ms / 1000)
    config = {
        "sweep_id": sweep_id,
        "cell_id": cell_id,
        "index": index,
        "repeat": repeat,
        "axes": axes,
        "threads": threads,
        "engine": {"name": "sleep", "options": {"service_ms": service_ms}},
        "seed": axes.get("seed", 0),
    }
    return {
        "sweep_id": sweep_id,
        "cell_id": cell_id,
        "config_id": config_id,
        "repeat": repeat,
        "attempt_id": "a0",
        "status": "ok",
        "model": "bert_tiny",
        "engine": "sleep",
        "precision": "fp32",
        "batch_size": 1,
        "threads": threads,
        "tp_degree": 1,
        "instance": "local-cpu",
        "scenario": "latency",
        "task": "text-classification",
        "n": n,
        "latency_ms_p50": p50_ms,
        "latency_ms_p90": 1.2 * p50_ms,
        "latency_ms_p99": 1.5 * p50_ms,
        "inferences_per_s": rate,
        "inferences_per_s_lo": 0.99 * rate,
        "inferences_per_s_hi": 1.01 * rate,
        "price_per_hour": PRICE,
        "usd_per_million_inferences": PRICE / 3600 / rate * 1e6,
        "config_json": json.dumps(config, sort_keys=True),
        "cpu_name": "Intel(R) Xeon(R) Processor",
        "cpu_count": 2,
        "cpu_affinity": 2,
        "host_other_cpus_mean": 0.05,
        "host_steal_share": 0.0,
        "host_busy": False,
        **(host or {}),
    }


def runs(
    sweep_id: str, p50s: list[float], host: dict[str, Any] | None = None, **options: Any
) -> list[dict[str, Any]]:
    """One configuration's runs, one row per P50 in `p50s` (repeat 0, 1, ...)."""
    return [run_row(sweep_id, p50, repeat=k, host=host, **options) for k, p50 in enumerate(p50s)]


def write_aggregate(root: Path, sweep_id: str, rows: list[dict[str, Any]]) -> Path:
    """The rows as the sweep's aggregated.parquet under store root `root`."""
    path = root / sweep_id / "aggregated.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows_to_table(rows), path)
    return path
