"""How often does `bench compare` cry wolf, and how often does it catch a real slowdown?

Measures A/A comparisons (two sides of one sleep-engine configuration) and A/B comparisons
(NEW's service time `--slowdown` longer, 10 % by default) with `--repeats K` runs a side, each
run its own process, optionally beside `--busy-loops` processes spinning on one core each (a
noisy neighbour), and prints:
- the A/A false-positive rate: the share of comparisons (one matched configuration's BASE vs
  NEW) whose P50, P90 or P99 verdict is anything but `no significant change`, and the share of
  those verdicts;
- the A/B detection rate: the share of comparisons that regressed (a latency metric
  significantly slower by more than the 5 % threshold: what fails a CI gate), and each
  latency metric's share of `slower`;
- how often the noise guard said "re-run" (exit 3), per `bench compare` call;
with `--contrast-repeats K1` the same again at K1 runs a side (1: one-run intervals, as before
issue 37).

`--mode interleaved` (default): each sweep runs `seed=[0,1]` x `engine.service_ms=[S, S(1+x)]`
x threads with `repeats=K order=interleaved`, so every side alternates with the others in time;
A/A is `compare SWEEP ab=seed` (the sleep engine ignores the seed: each service time's seed 0
vs seed 1), A/B is `compare SWEEP ab=engine.service_ms` (each seed's S vs S(1+x)): one sweep
gives two A/A and two A/B comparisons per thread count. `--mode separate`: three sweeps per
round (BASE, BASE again, SLOWER), each its own `bench sweep` run after the other, as two CI
runs would be; A/A is BASE vs BASE again, A/B is BASE vs SLOWER.

    python benchmarks/compare_aa.py [--comparisons 72] [--repeats 3] [--contrast-repeats 1]
        [--busy-loops 1] [--mode interleaved|separate] [--service-ms 40] [--slowdown 0.10]
        [--threads 8,16] [--requests 400] [--dry-run]

Targets (at `--repeats`): false positives <= 5 % of A/A comparisons, detection >= 95 % of A/B
comparisons. It prints its expected duration first (`--dry-run`: only that).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.results.compare import EXIT_RERUN, Comparison, compare
from bench.results.compare_ab import split_sides
from bench.store import Store, SweepPaths, open_store

LATENCY = ["latency_ms_p50", "latency_ms_p90", "latency_ms_p99"]
NO_CHANGE = "no significant change"
PROCESS_OVERHEAD_S = 2.2  # a cell's process start, warmup (warmup_s 0.3) and writing, here
SWEEP_OVERHEAD_S = 4.0  # a `bench sweep` process: imports, planning, collecting
THRESHOLD = 0.05


@dataclass
class Tally:
    """Comparisons (matched configuration pairs) and calls of one kind, A/A or A/B."""

    tables: list[pd.DataFrame] = field(default_factory=list)
    calls: int = 0
    reruns: int = 0  # calls the noise guard answered with exit 3

    def add(self, result: Comparison) -> None:
        self.tables.append(result.table.assign(_call=self.calls))
        self.calls += 1
        self.reruns += result.exit_code == EXIT_RERUN

    def latency(self) -> pd.DataFrame:
        table = pd.concat(self.tables, ignore_index=True)
        return table[table["metric"].isin(LATENCY)]

    def per_comparison(self) -> pd.DataFrame:
        """One row per comparison: did any latency verdict say a change, did it regress."""
        return (
            self.latency()
            .groupby(["_call", "base_cell_id", "new_cell_id"])
            .agg(
                changed=("verdict", lambda v: bool((v != NO_CHANGE).any())),
                regressed=("regression", "any"),
            )
        )


def sweep(root: str, sweep_id: str, args: argparse.Namespace, axes: list[str]) -> pd.DataFrame:
    """Run one sweep (its own `bench sweep` process, each cell its own process); its rows."""
    command = [
        sys.executable, "-m", "bench", "sweep", "engine=sleep", f"sweep_id={sweep_id}",
        f"store.root={root}", f"scenario.min_requests={args.requests}",
        "scenario.min_duration_s=1", f"scenario.max_duration_s={args.max_duration}",
        "scenario.ci_target=0", "scenario.warmup_s=0.3", f"grid.axes.threads=[{args.threads}]",
        *axes,
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"sweep {sweep_id} failed:\n{proc.stderr[-3000:]}")
    store = open_store(root)
    return pd.read_parquet(io.BytesIO(store.read_bytes(SweepPaths(sweep_id).aggregated)))


def _thread_counts(args: argparse.Namespace) -> list[int]:
    return [int(t) for t in args.threads.split(",")]


def _measure_s(args: argparse.Namespace, threads: int, service_ms: float) -> float:
    """One run's measured window: min_requests at the closed loop's rate, 1 s at least."""
    rate = threads / (service_ms / 1000)
    return min(args.max_duration, max(1.0, args.requests / rate))


def plan(args: argparse.Namespace, repeats: int) -> tuple[int, int, float]:
    """(rounds, sweeps, expected seconds) for `--comparisons` A/A comparisons at `repeats`: a
    round is one interleaved sweep, or the three sweeps of the separate mode."""
    threads = _thread_counts(args)
    slow = args.service_ms * (1 + args.slowdown)
    if args.mode == "interleaved":  # seed 0 vs 1 at each service time and thread count
        rounds = math.ceil(args.comparisons / (2 * len(threads)))
        sweeps, sides = rounds, [args.service_ms, args.service_ms, slow, slow]
    else:  # BASE vs BASE again at each thread count
        rounds = math.ceil(args.comparisons / len(threads))
        sweeps, sides = 3 * rounds, [args.service_ms, args.service_ms, slow]
    per_repeat = sum(PROCESS_OVERHEAD_S + _measure_s(args, t, ms) for t in threads for ms in sides)
    return rounds, sweeps, sweeps * SWEEP_OVERHEAD_S + rounds * repeats * per_repeat


def run_interleaved(
    root: str, store: Store, args: argparse.Namespace, repeats: int, aa: Tally, ab: Tally
) -> None:
    slow = round(args.service_ms * (1 + args.slowdown), 6)
    rounds, _, _ = plan(args, repeats)
    for i in range(rounds):
        axes = [
            f"grid.axes.engine.service_ms=[{args.service_ms},{slow}]",
            "grid.axes.seed=[0,1]",  # the A/A axis last: its two sides run back to back
            f"repeats={repeats}",
            "order=interleaved",
        ]
        rows = sweep(root, f"k{repeats}-{i}", args, axes)
        for key, tally in (("seed", aa), ("engine.service_ms", ab)):
            base, new, _ = split_sides(rows, key)
            tally.add(compare(store, base, store, new, THRESHOLD, split_key=key))
        _progress(i + 1, rounds, repeats)


def run_separate(
    root: str, store: Store, args: argparse.Namespace, repeats: int, aa: Tally, ab: Tally
) -> None:
    slow = round(args.service_ms * (1 + args.slowdown), 6)
    rounds, _, _ = plan(args, repeats)
    for i in range(rounds):
        base, again, slower = (
            sweep(
                root,
                f"k{repeats}-{i}-{name}",
                args,
                [f"repeats={repeats}", f"engine.service_ms={ms}"],
            )
            for name, ms in (("a", args.service_ms), ("a2", args.service_ms), ("b", slow))
        )
        aa.add(compare(store, base, store, again, THRESHOLD))
        ab.add(compare(store, base, store, slower, THRESHOLD))
        _progress(i + 1, rounds, repeats)


STARTED = time.monotonic()


def _progress(done: int, total: int, repeats: int) -> None:
    spent = time.monotonic() - STARTED
    print(f"repeats={repeats}: {done}/{total} done, {spent / 60:.1f} min so far", file=sys.stderr)


def summary(aa: Tally, ab: Tally, repeats: int, args: argparse.Namespace) -> dict[str, object]:
    aa_cmp, ab_cmp = aa.per_comparison(), ab.per_comparison()
    aa_verdicts, ab_verdicts = aa.latency(), ab.latency()
    changed, regressed = int(aa_cmp["changed"].sum()), int(ab_cmp["regressed"].sum())
    result: dict[str, object] = {
        "mode": args.mode,
        "repeats": repeats,
        "busy_loops": args.busy_loops,
        "aa_comparisons": len(aa_cmp),
        "aa_false_positives": changed,
        "aa_false_positive_rate": round(changed / len(aa_cmp), 3),
        "aa_verdicts": len(aa_verdicts),
        "aa_verdicts_not_no_change": int((aa_verdicts["verdict"] != NO_CHANGE).sum()),
        "aa_gate_failures": int(aa_cmp["regressed"].sum()),
        "aa_max_abs_change": round(float(aa_verdicts["change"].abs().max()), 4),
        "aa_reruns": f"{aa.reruns} of {aa.calls} calls",
        "ab_comparisons": len(ab_cmp),
        "ab_detected": regressed,
        "ab_detection_rate": round(regressed / len(ab_cmp), 3),
        "ab_reruns": f"{ab.reruns} of {ab.calls} calls",
    }
    for metric in LATENCY:
        rows = ab_verdicts[ab_verdicts["metric"] == metric]
        result[f"ab_{metric}_slower"] = f"{int((rows['verdict'] == 'slower').sum())} of {len(rows)}"
        result[f"ab_{metric}_median_change"] = round(float(rows["change"].median()), 4)
        result[f"ab_{metric}_median_resolvable"] = round(
            float(rows["resolvable_change"].median()), 4
        )
    result["meets_targets"] = changed / len(aa_cmp) <= 0.05 and regressed / len(ab_cmp) >= 0.95
    return result


def _readable(result: dict[str, object]) -> str:
    aa, ab = result["aa_comparisons"], result["ab_comparisons"]
    return (
        f"{result['mode']}, repeats={result['repeats']}, busy loops {result['busy_loops']}: "
        f"A/A false positives {result['aa_false_positives']} of {aa} comparisons "
        f"({result['aa_false_positive_rate']:.1%}; verdicts {result['aa_verdicts_not_no_change']} "
        f"of {result['aa_verdicts']}); A/B detected {result['ab_detected']} of {ab} "
        f"({result['ab_detection_rate']:.1%}); noise guard re-run: A/A {result['aa_reruns']}, "
        f"A/B {result['ab_reruns']}"
    )


def busy_loops(count: int) -> list[subprocess.Popen[bytes]]:
    """`count` processes spinning, each pinned to its own core (the last cores first)."""
    cpus = sorted(os.sched_getaffinity(0))
    spin = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"
    return [
        subprocess.Popen([sys.executable, "-c", spin, str(cpus[-1 - i % len(cpus)])])
        for i in range(count)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=72, help="A/A comparisons (and A/B)")
    parser.add_argument("--repeats", type=int, default=3, help="runs a side")
    parser.add_argument("--contrast-repeats", type=int, default=0, help="also at this K (1)")
    parser.add_argument("--busy-loops", type=int, default=0, help="cores kept spinning")
    parser.add_argument("--mode", choices=["interleaved", "separate"], default="interleaved")
    parser.add_argument("--service-ms", type=float, default=40.0)
    parser.add_argument("--slowdown", type=float, default=0.10)
    parser.add_argument("--threads", default="8,16", help="client threads, one cell each")
    parser.add_argument("--requests", type=int, default=400, help="scenario.min_requests")
    parser.add_argument("--max-duration", type=float, default=5.0)
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    args = parser.parse_args()
    designs = [args.repeats] + ([args.contrast_repeats] if args.contrast_repeats else [])
    total = 0.0
    for repeats in designs:
        _, sweeps, seconds = plan(args, repeats)
        total += seconds
        print(
            f"repeats={repeats}: {sweeps} sweeps, expected {seconds / 60:.1f} min", file=sys.stderr
        )
    print(
        f"expected duration: {total / 60:.0f} min (busy loops: {args.busy_loops})", file=sys.stderr
    )
    if args.dry_run:
        return 0
    spinning = busy_loops(args.busy_loops)
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = str(Path(tmp) / "results")
            store = open_store(root)
            for repeats in designs:
                aa, ab = Tally(), Tally()
                run = run_interleaved if args.mode == "interleaved" else run_separate
                run(root, store, args, repeats, aa, ab)
                results.append(summary(aa, ab, repeats, args))
                print(json.dumps(results[-1]), flush=True)
                print(_readable(results[-1]), flush=True)
    finally:
        for process in spinning:  # only the loops this script started
            process.kill()
            process.wait()
    print(f"took {(time.monotonic() - STARTED) / 60:.1f} min", file=sys.stderr)
    return 0 if results[0]["meets_targets"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
