"""How fast `bench collect` aggregates N cell files, locally and on the S3 emulator.

Generates N synthetic cell files (the real row schema, one row per attempt file, the
per-attempt layout) in a local store and in a bucket on moto's S3 server (a separate process
on loopback), then times, for each, alternating, `--runs` times each:
- `python -m bench collect SWEEP store.root=...` in a fresh process (wall time and its peak
  RSS, imports included: what a user waits for), cold (its cache of rows read deleted first);
  then once warm (the next collect, which decodes only files it has not read);
- the best library on the same files: polars' `scan_parquet(files).collect()` plus writing the
  result, in a fresh process too;
and once the naive loop a user would write: `pd.read_parquet` per file + `pd.concat`.

    python benchmarks/collect_scale.py [--n 10000] [--runs 3] [--naive-max 2000] [--skip-s3]

The naive S3 loop is slow (one s3fs round trip per file); with --naive-max below N it reads
that many files and the figure is extrapolated linearly to N (marked as such).
Targets at N = 10,000 on a 2-core machine: bench / polars <= 1.0 (medians), local <= 10 s,
S3 emulator <= 60 s, peak RSS <= 1 GiB, and >= 5x faster than the naive loop.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench.emulator import aws_env, moto_server, patched_environ
from bench.row.schema import SCHEMA_VERSION, rows_to_table
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
                    paths.attempt_row(f"cell-{i:06d}", f"a{i}", "ok"),
                    rows_to_table([synthetic_row(i)]),
                    compression="snappy",  # as bench.executors.job writes cell rows
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


# polars on the same files, as a user of it would write it (S3: its own object store client,
# pointed at the emulator by the same environment bench uses).
LIBRARY = """
import json, os, sys
import polars as pl
files, out = json.load(open(sys.argv[1])), sys.argv[2]
options = None
if files[0].startswith("s3://"):
    options = {"aws_endpoint_url": os.environ["AWS_ENDPOINT_URL"], "aws_allow_http": "true",
               "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
               "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
               "aws_region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
frame = pl.scan_parquet(files, missing_columns="insert", storage_options=options).collect()
frame.write_parquet(out)
"""


def time_collect(root: str) -> tuple[float, float, float]:
    """`python -m bench collect` in a fresh process: see time_process."""
    return time_process([sys.executable, "-m", "bench", "collect", SWEEP, f"store.root={root}"])


def time_library(uris: list[str]) -> tuple[float, float, float]:
    """polars reading the same files in a fresh process, and writing the table."""
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "files.json"
        listing.write_text(json.dumps(uris))
        out = str(Path(tmp) / "library.parquet")
        return time_process([sys.executable, "-c", LIBRARY, str(listing), out])


def time_process(command: list[str]) -> tuple[float, float, float]:
    """Wall seconds of a command in a fresh process, and its process tree's peak RSS (sum over
    processes, and the largest single one), sampled every 0.1 s. (rusage's maxrss would also
    count the fork of this large benchmark process before exec.)"""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
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


def measure(kind: str, root: str, n: int, naive_max: int, runs: int) -> dict:
    store = open_store(root)
    started = time.perf_counter()
    populate(store, n)
    generate_s = time.perf_counter() - started
    uris = [store.uri(f) for f in store.list_tree(SweepPaths(SWEEP).cells_dir, ".parquet")]
    collects, libraries = [], []
    for _ in range(runs):  # alternating: drift on a shared machine hits both alike
        store.delete(SweepPaths(SWEEP).collected_rows)  # cold: every file decoded
        collects.append(time_collect(root))
        libraries.append(time_library(uris))
    warm = time_collect(root)  # the next collect: the cache holds every row, nothing decoded
    aggregated = pd.read_parquet(store.uri(SweepPaths(SWEEP).aggregated))
    assert len(aggregated) == n, len(aggregated)
    naive_s, extrapolated = time_naive(uris[:naive_max], n)
    collect_s = statistics.median(c[0] for c in collects)
    library_s = statistics.median(lib[0] for lib in libraries)
    rss_mb = max(c[1] for c in collects)
    return {
        "store": kind,
        "n": n,
        "generate_s": round(generate_s, 2),
        "collect_s": round(collect_s, 2),
        "collect_runs_s": [round(c[0], 2) for c in collects],
        "collect_warm_s": round(warm[0], 2),
        "library_s": round(library_s, 2),
        "library_runs_s": [round(lib[0], 2) for lib in libraries],
        "collect_over_library": round(collect_s / library_s, 3),
        "collect_peak_rss_mb": round(rss_mb, 1),
        "collect_peak_rss_largest_process_mb": round(max(c[2] for c in collects), 1),
        "library_peak_rss_mb": round(max(lib[1] for lib in libraries), 1),
        "naive_s": round(naive_s, 2),
        "naive_extrapolated_from": naive_max if extrapolated else None,
        "speedup": round(naive_s / collect_s, 1),
        "target_s": TARGETS[kind],
        "meets_targets": collect_s <= TARGETS[kind]
        and collect_s <= library_s
        and rss_mb <= RSS_TARGET_MB
        and naive_s / collect_s >= 5,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--naive-max", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3, help="alternating runs of each reader")
    parser.add_argument("--skip-s3", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(measure("local", str(Path(tmp) / "results"), args.n, args.n, args.runs))
    if not args.skip_s3:
        with moto_server() as url, patched_environ(aws_env(url)):
            import boto3

            boto3.client("s3").create_bucket(Bucket="bench-scale")
            results.append(
                measure("s3", "s3://bench-scale/results", args.n, args.naive_max, args.runs)
            )
    print(f"{os.cpu_count()} CPUs")
    for result in results:
        print(json.dumps(result))
    return 0 if all(r["meets_targets"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
