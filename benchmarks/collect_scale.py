"""How fast `bench collect` aggregates N cell files, locally and on the S3 emulator.

Generates N synthetic cell files (the real row schema, one row each) in a local store and in
a bucket on moto's S3 server (a separate process on loopback), then times, for each:
- `python -m bench collect SWEEP store.root=...` in a fresh process (wall time and its peak
  RSS, imports included: what a user waits for);
- the naive loop a user would write: `pd.read_parquet` per file + `pd.concat`.

    python benchmarks/collect_scale.py [--n 10000] [--naive-max 2000] [--skip-s3]

The naive S3 loop is slow (one s3fs round trip per file); with --naive-max below N it reads
that many files and the figure is extrapolated linearly to N (marked as such).
Targets at N = 10,000 on a 2-core machine: local <= 10 s, S3 emulator <= 60 s, peak RSS
<= 1 GiB, and >= 5x faster than the naive loop.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench.emulator import aws_env, moto_server, patched_environ
from bench.rows import SCHEMA_VERSION, rows_to_table
from bench.store import Store, SweepPaths, open_store

SWEEP = "scale"
TARGETS = {"local": 10.0, "s3": 60.0}
RSS_TARGET_MB = 1024.0


def synthetic_row(i: int) -> dict:
    now = datetime.now(timezone.utc)
    return {
        "schema_version": SCHEMA_VERSION,
        "sweep_id": SWEEP,
        "cell_id": f"cell-{i:06d}",
        "attempt_id": f"a{i}",
        "cell_index": i,
        "model": "bert_base",
        "engine": "hf",
        "precision": ("fp32", "fp16")[i % 2],
        "batch_size": 2 ** (i % 6),
        "threads": 1 + i % 4,
        "tp_degree": 1,
        "instance": "g5.xlarge",
        "status": "ok",
        "n": 1000 + i,
        "latency_ms_p50": 5.0 + i % 7,
        "latency_ms_p99": 9.0 + i % 7,
        "inferences_per_s": 700.0 + i % 13,
        "price_per_hour": 1.006,
        "usd_per_million_inferences": 0.4,
        "started_at": now,
        "finished_at": now,
        "config_json": json.dumps({"i": i, "pad": "x" * 600}),
    }


def populate(store: Store, n: int) -> None:
    paths = SweepPaths(SWEEP)
    manifest = {"sweep_id": SWEEP, "cells": [{"cell_id": f"cell-{i:06d}"} for i in range(n)]}
    store.write_bytes(paths.manifest, json.dumps(manifest).encode())
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(
            pool.map(
                lambda i: store.write_table(
                    paths.cell(f"cell-{i:06d}"),
                    rows_to_table([synthetic_row(i)]),
                    compression="snappy",  # as bench.job writes cell rows
                ),
                range(n),
            )
        )


def _tree_rss_mb(root_pid: int) -> tuple[float, float]:
    """(sum, largest) resident MiB of a process and its children, from /proc. The sum counts
    pages the forked workers share with their parent more than once: an upper bound."""
    sizes = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == root_pid or int(fields[1]) == root_pid:  # fields[1]: ppid
            sizes.append(int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20)  # rss pages
    return sum(sizes), max(sizes, default=0.0)


def time_collect(root: str) -> tuple[float, float, float]:
    """Wall seconds of `python -m bench collect` in a fresh process, and its process tree's
    peak RSS (sum over processes, and the largest single one), sampled every 0.1 s.
    (rusage's maxrss would also count the fork of this large benchmark process before exec.)"""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench", "collect", SWEEP, f"store.root={root}"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        peak_sum = peak_one = 0.0
        while proc.poll() is None:
            total, largest = _tree_rss_mb(proc.pid)
            peak_sum, peak_one = max(peak_sum, total), max(peak_one, largest)
            time.sleep(0.1)  # sampling; this process is otherwise idle
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(err.read().decode()[-2000:])
    return seconds, peak_sum, peak_one


def time_naive(uris: list[str], n: int) -> tuple[float, bool]:
    """Seconds for read-each-then-concat over `uris`, extrapolated to n if fewer."""
    started = time.perf_counter()
    frames = [pd.read_parquet(uri) for uri in uris]
    frame = pd.concat(frames, ignore_index=True)
    seconds = time.perf_counter() - started
    assert len(frame) == len(uris)
    return seconds * n / len(uris), len(uris) < n


def measure(kind: str, root: str, n: int, naive_max: int) -> dict:
    store = open_store(root)
    started = time.perf_counter()
    populate(store, n)
    generate_s = time.perf_counter() - started
    collect_s, rss_mb, rss_largest_mb = time_collect(root)
    aggregated = pd.read_parquet(store.uri(SweepPaths(SWEEP).aggregated))
    assert len(aggregated) == n, len(aggregated)
    files = store.list(SweepPaths(SWEEP).cells_dir, ".parquet")
    naive_s, extrapolated = time_naive([store.uri(f) for f in files[:naive_max]], n)
    return {
        "store": kind,
        "n": n,
        "generate_s": round(generate_s, 2),
        "collect_s": round(collect_s, 2),
        "collect_peak_rss_mb": round(rss_mb, 1),
        "collect_peak_rss_largest_process_mb": round(rss_largest_mb, 1),
        "naive_s": round(naive_s, 2),
        "naive_extrapolated_from": naive_max if extrapolated else None,
        "speedup": round(naive_s / collect_s, 1),
        "target_s": TARGETS[kind],
        "meets_targets": collect_s <= TARGETS[kind]
        and rss_mb <= RSS_TARGET_MB
        and naive_s / collect_s >= 5,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--naive-max", type=int, default=2_000)
    parser.add_argument("--skip-s3", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(measure("local", str(Path(tmp) / "results"), args.n, args.n))
    if not args.skip_s3:
        with moto_server() as url, patched_environ(aws_env(url)):
            import boto3

            boto3.client("s3").create_bucket(Bucket="bench-scale")
            results.append(measure("s3", "s3://bench-scale/results", args.n, args.naive_max))
    print(f"{os.cpu_count()} CPUs")
    for result in results:
        print(json.dumps(result))
    return 0 if all(r["meets_targets"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
