"""How often does `bench compare` cry wolf, and how often does it catch a real slowdown?

Runs `--pairs` A/A pairs (two sweeps of the same sleep-engine configuration, each in its own
processes, as two CI runs would be) and as many A/B pairs (B's service time `--slowdown`
longer, 10% by default), compares each pair with `bench.results.compare.compare`, and prints:
- the A/A false-positive rate: the share of (pair, cell, metric) verdicts that are not
  `no significant change`, over P50, P90 and P99 latency (the bootstrap's metrics);
- the A/B detection rate: the share of P50 and P99 verdicts that are `slower`.

    python benchmarks/compare_aa.py [--pairs 6] [--slowdown 0.10] [--service-ms 10]

Targets: false positives <= 5%, detection >= 95%.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from bench.results.compare import compare
from bench.results.store import SweepPaths, open_store

LATENCY = ["latency_ms_p50", "latency_ms_p90", "latency_ms_p99"]


def sweep(root: str, sweep_id: str, service_ms: float) -> pd.DataFrame:
    command = [
        sys.executable, "-m", "bench", "sweep", "engine=sleep", f"engine.service_ms={service_ms}",
        f"sweep_id={sweep_id}", f"store.root={root}", "scenario.min_requests=800",
        "scenario.min_duration_s=1", "scenario.max_duration_s=6", "grid.axes.threads=[2,4]",
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    store = open_store(root)
    return pd.read_parquet(io.BytesIO(store.read_bytes(SweepPaths(sweep_id).aggregated)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--slowdown", type=float, default=0.10)
    parser.add_argument("--service-ms", type=float, default=10.0)
    args = parser.parse_args()
    aa, ab = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = str(Path(tmp) / "results")
        store = open_store(root)
        for i in range(args.pairs):
            a1 = sweep(root, f"a{i}", args.service_ms)
            a2 = sweep(root, f"a{i}-again", args.service_ms)
            b = sweep(root, f"b{i}", args.service_ms * (1 + args.slowdown))
            aa.append(compare(store, a1, store, a2).table)
            ab.append(compare(store, a1, store, b).table)
    aa_table, ab_table = pd.concat(aa), pd.concat(ab)
    aa_latency = aa_table[aa_table["metric"].isin(LATENCY)]
    false_positive = float((aa_latency["verdict"] != "no significant change").mean())
    ab_latency = ab_table[ab_table["metric"].isin(["latency_ms_p50", "latency_ms_p99"])]
    detection = float((ab_latency["verdict"] == "slower").mean())
    result = {
        "pairs": args.pairs,
        "aa_verdicts": len(aa_latency),
        "aa_false_positive_rate": round(false_positive, 3),
        "aa_max_abs_change": round(float(aa_latency["change"].abs().max()), 4),
        "ab_verdicts": len(ab_latency),
        "ab_detection_rate": round(detection, 3),
        "ab_median_change_p50": round(
            float(ab_table[ab_table["metric"] == "latency_ms_p50"]["change"].median()), 4
        ),
        "meets_targets": false_positive <= 0.05 and detection >= 0.95,
    }
    print(json.dumps(result))
    return 0 if result["meets_targets"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
