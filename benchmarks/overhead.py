"""The harness's own cost per timed request, measured with the `null` engine.

The null engine returns at once, so a measured "latency" is exactly what the harness adds
inside the timed bracket (two perf_counter_ns reads, the call, the no-op synchronise). The
per-request cycle (window x threads / n) adds what the client loop costs outside the bracket
(recording, the shared counter and the stop check) and, with several threads, GIL hand-offs.

    python benchmarks/overhead.py [--requests N] [--repeats R]

Target: p50 timed overhead <= 20 us per request at 1 and 4 threads.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics

from bench.cell.runner import run_cell
from bench.plan.grid import plan_from_overrides

TARGET_P50_US = 20.0


def measure(threads: int, requests: int) -> dict[str, float]:
    overrides = [
        "engine=null",
        f"threads={threads}",
        "scenario.warmup_requests=100",
        f"scenario.min_requests={requests}",
        "scenario.min_duration_s=0.5",
        "scenario.ci_target=0",  # this measures the harness, not a server
        "scenario.max_duration_s=60",
        "sweep_id=overhead",
    ]
    row = run_cell(plan_from_overrides(overrides).cells[0]).row
    if row["status"] != "ok":
        raise RuntimeError(f"{row['error_class']}: {row['error']}")
    return {
        "n": row["n"],
        "p50_us": row["latency_ms_p50"] * 1e3,
        "p99_us": row["latency_ms_p99"] * 1e3,
        "cycle_us": row["window_s"] * threads / row["n"] * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.processor() or platform.machine()}")
    print("threads      n   p50 us   p99 us  cycle us   (median of repeats)")
    worst_p50 = 0.0
    for threads in (1, 4):
        runs = [measure(threads, args.requests) for _ in range(args.repeats)]
        median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        worst_p50 = max(worst_p50, median["p50_us"])
        print(
            f"{threads:>7} {int(median['n']):>6} {median['p50_us']:>8.2f} {median['p99_us']:>8.2f}"
            f" {median['cycle_us']:>9.2f}"
        )
        print(json.dumps({"threads": threads, **median}))
    verdict = "meets" if worst_p50 <= TARGET_P50_US else "MISSES"
    print(f"p50 overhead {worst_p50:.2f} us {verdict} the {TARGET_P50_US:g} us target")
    return 0 if worst_p50 <= TARGET_P50_US else 1


if __name__ == "__main__":
    raise SystemExit(main())
