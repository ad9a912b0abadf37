"""Client threads on a busy machine: does one client still measure faster than two?

For every (model, precision, batch size) of the smoke grid, runs `bench run` at 1 and at 2
client threads, each in a fresh process, while one busy loop per usable CPU spins beside it
(as on a shared CI box), and once on the quiet machine for bert_tiny at batch 1. Prints P50
per pair and checks the two claims the README makes:

- P50 at 1 client <= P50 at 2 clients for every pair (the harness adds no thread artefact
  that would invert the comparison);
- bert_tiny b1 at 1 client under load is within 2x of its quiet-box P50.

`--legacy` runs the cells as the harness used to (OMP_WAIT_POLICY left to libgomp's spinning
default, torch's intra-op threads = every CPU for every client), to show the artefact.

Usage: python benchmarks/busy_box.py [--seconds 3] [--legacy] [--models bert_tiny,opt_tiny]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator

from fidelity import json_of  # scripts beside each other: run as python benchmarks/NAME.py

PRECISIONS = ("fp32", "bf16")
BATCHES = (1, 4)


@contextlib.contextmanager
def busy_loops(count: int, seconds: float) -> Iterator[None]:
    """`count` processes spinning on the CPU; each stops by itself after `seconds`."""
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass"
    loops = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]
    try:
        time.sleep(0.5)  # let them reach their spin
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def run_cell(overrides: list[str], seconds: float, legacy: bool) -> dict:
    env = dict(os.environ)
    args = [
        *overrides,
        f"scenario.min_duration_s={seconds}",
        f"scenario.max_duration_s={seconds}",
        "scenario.ci_target=0",
        "scenario.min_requests=1",
    ]
    if legacy:
        env["OMP_WAIT_POLICY"] = ""  # libgomp's default: idle workers spin before sleeping
        args.append(f"torch_threads={len(os.sched_getaffinity(0))}")
    return json_of([sys.executable, "-m", "bench", "run", *args, "format=json"], env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--legacy", action="store_true", help="the old thread policy")
    parser.add_argument("--models", default="bert_tiny,opt_tiny")
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    models = args.models.split(",")
    quiet = run_cell(["model=bert_tiny", "batch_size=1", "threads=1"], args.seconds, args.legacy)
    print(
        f"quiet box: bert_tiny fp32 b1, 1 client: P50 {quiet['latency_ms_p50']:.2f} ms "
        f"({quiet['torch_threads']} intra-op threads, OpenMP wait policy "
        f"{quiet['omp_wait_policy']})"
    )
    print(f"busy box ({cpus} busy loops beside each cell): P50 ms (intra-op threads)")
    print("  model      precision  batch   1 client     2 clients    1 <= 2")
    failures = []
    busy_b1 = None
    budget = 4 * (args.seconds + 30)  # the loops outlive one pair of cells, then stop
    for model, precision, batch in itertools.product(models, PRECISIONS, BATCHES):
        base = [f"model={model}", f"precision={precision}", f"batch_size={batch}"]
        with busy_loops(cpus, budget):
            rows = {t: run_cell([*base, f"threads={t}"], args.seconds, args.legacy) for t in (1, 2)}
        p50 = {t: rows[t]["latency_ms_p50"] for t in rows}
        ok = p50[1] <= p50[2]
        if not ok:
            failures.append(f"{model} {precision} b{batch}: {p50[1]:.2f} > {p50[2]:.2f} ms")
        if (model, precision, batch) == ("bert_tiny", "fp32", 1):
            busy_b1 = p50[1]
        cells = [f"{p50[t]:8.2f} ({rows[t]['torch_threads']})" for t in (1, 2)]
        print(f"  {model:10} {precision:9}  {batch:5}   {cells[0]:11}  {cells[1]:11}  {ok}")
    if busy_b1 is not None:
        ratio = busy_b1 / quiet["latency_ms_p50"]
        print(f"bert_tiny fp32 b1, 1 client: busy / quiet P50 = {ratio:.2f} (must be <= 2)")
        if ratio > 2:
            failures.append(f"bert_tiny b1 busy/quiet = {ratio:.2f} > 2")
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
