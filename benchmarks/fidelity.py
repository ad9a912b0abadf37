"""Does bench measure what a plain timing loop measures? The same cell, both ways, alternating.

Pairs of processes, one of each kind, take turns measuring (the other one idle, blocked on its
stdin): a bench worker that runs the cell through `bench.cell.runner.run_cell`, what `bench run`
calls (thread policy, engine imports, load, warmup, the closed loop, the summary), and a
plain loop that loads the same checkpoint once, runs a few warmup calls, then calls the model
in `threads` Python threads for the same number of seconds, each call bracketed by
`time.perf_counter_ns()`. The plain loop uses the intra-op threads and OpenMP wait policy the
bench row reports, so the comparison is of the measuring, not of the thread settings.

Why turns within a pair of processes: on a shared 2-core VM the speed of the same loop wanders
by +-25% over tens of seconds (one process, 1 s windows: 2.3-4.2 ms), whatever the process.
Back-to-back windows of the two sides see nearly the same machine; a fresh process per window
spends ~8 s in imports between them, and the ratios then measure the host's drift. Which side
goes first alternates, so a steady drift cancels in the median.

Why several pairs of processes (`--processes`, default 7, each `--windows` 3 turns after one
discarded window per side): a process keeps its own speed for its whole life. Two identical
plain loops in two long-lived processes differed by 0.90-1.11 in their medians (the A/A
control below), so one pair of processes cannot tell a 10% difference from which process got
the luckier memory layout. Fresh pairs make that offset a random draw per pair, which the
median over pairs averages out.

Prints bench / plain for P50 and throughput per turn and the medians of their ratios over all
turns; both must be within 10%.

`--same-process` separates bench's measuring from everything a process brings (allocation,
imports, the host's drift between turns): one process loads the model through the bench
engine, then alternates short windows of bench's closed loop (`run_closed_loop` over the
engine's request) and the plain loop over the very same model object. `--cell` picks another
encoder cell for it, on CUDA too: the plain loop then synchronises the device after each call.

`--control` is the A/A test of this check: the plain loop against a second, identical plain
loop process, in the same pairs and turns. Its ratios would be 1.000 on a quiet machine; how
far they stray is the noise floor of the bench / plain ratios on this one.

Usage: python benchmarks/fidelity.py [--processes 7] [--windows 3] [--seconds 5] [--threads 1,2]
       python benchmarks/fidelity.py --same-process [--windows 15] [--seconds 1]
           [--cell "model=bert_base batch_size=16 precision=fp16 device=cuda"]
       python benchmarks/fidelity.py --control [--processes 7] [--windows 3] [--seconds 5]

`--forked`: each bench worker forks itself after importing the hf engine's preload modules and
measures in the forked child, as a local sweep's cells are started by the fork server
(executors/forkserver.py): the same check, for cells that did not pay those imports.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from typing import IO, Any

TOLERANCE = 0.10
CELL = ["model=bert_tiny", "batch_size=4", "model.seq_len=32", "precision=fp32"]


def json_of(command: list[str], env: dict[str, str] | None = None) -> dict:
    """Run a command in a fresh process; its stdout (or last line) as JSON; exits on failure."""
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed:\n{out.stderr[-2000:]}")
    try:
        return json.loads(out.stdout)  # `bench run ... format=json`: its row, one JSON document
    except json.JSONDecodeError:
        return json.loads(out.stdout.strip().splitlines()[-1])  # after a library's chatter


def cell_overrides(threads: int, seconds: float, base: list[str] = CELL) -> list[str]:
    return [
        *base,
        f"threads={threads}",
        f"scenario.min_duration_s={seconds}",
        f"scenario.max_duration_s={seconds}",
        "scenario.ci_target=0",
        "scenario.min_requests=1",
        "scenario.warmup_requests=5",
    ]


class Worker:
    """A child process that answers each line on its stdin with one JSON line."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )

    def measure(self) -> dict[str, Any]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write("measure\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.process.args[2:4]} exited ({self.process.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def serve(measure: Any, out: IO[str]) -> None:
    """Measure once per line on stdin; one JSON line each on `out`."""
    for _ in sys.stdin:
        out.write(json.dumps(measure(), default=str) + "\n")
        out.flush()


def fork_after_preload() -> None:
    """Become a process forked from one that imported the hf engine's preload, as the local
    executor's fork server forks cells (`--forked`): the parent waits and exits with us."""
    import importlib

    from bench.cell.runner import FORK_SERVER_PRELOAD_VARIABLE
    from bench.engines.hf import HFEngine

    for name in HFEngine.preload:
        importlib.import_module(name)
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status))
    os.environ[FORK_SERVER_PRELOAD_VARIABLE] = ",".join(HFEngine.preload)


def run_bench_worker(overrides: list[str]) -> None:
    if os.environ.get("FIDELITY_FORKED"):
        fork_after_preload()
    from bench.cell.runner import run_cell
    from bench.plan.grid import plan_from_overrides

    cell = plan_from_overrides(overrides).cells[0]
    out = sys.stdout
    sys.stdout = sys.stderr  # libraries' chatter must not interleave with the JSON lines

    def measure() -> dict[str, Any]:
        row = run_cell(cell).row
        if row["status"] != "ok":
            raise SystemExit(f"bench row is {row['status']}: {row.get('error')}")
        keep = ("latency_ms_p50", "inferences_per_s", "checkpoint", "torch_threads")
        return {k: row[k] for k in (*keep, "omp_wait_policy")}

    serve(measure, out)


def plain_loop(
    model: Any,
    batch: dict[str, Any],
    threads: int,
    seconds: float,
    batch_size: int = 4,
    autocast: str | None = None,
) -> dict[str, float]:
    """The loop itself: what an engineer would write to time a model by hand. On CUDA each
    call ends with `torch.cuda.synchronize()` (the whole device: the plain way), under
    `torch.autocast` for a mixed precision."""
    import contextlib
    import threading
    import time

    import numpy as np
    import torch

    latencies: list[list[int]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)
    on_cuda = next(model.parameters()).is_cuda
    sync = torch.cuda.synchronize if on_cuda else (lambda: None)

    def mode() -> contextlib.AbstractContextManager:
        if autocast is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda" if on_cuda else "cpu", dtype=getattr(torch, autocast))

    def client(mine: list[int]) -> None:
        with torch.inference_mode(), mode():
            for _ in range(5):
                model(**batch)
            sync()
            start.wait()
            deadline = time.perf_counter_ns() + int(seconds * 1e9)
            while (t0 := time.perf_counter_ns()) < deadline:
                model(**batch)
                sync()
                mine.append(time.perf_counter_ns() - t0)

    workers = [threading.Thread(target=client, args=(m,)) for m in latencies]
    began = time.perf_counter_ns()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = (time.perf_counter_ns() - began) / 1e9
    pooled = np.concatenate([np.asarray(m) for m in latencies])
    p50 = float(np.percentile(pooled, 50, method="inverted_cdf")) / 1e6
    return {"p50_ms": p50, "inferences_per_s": pooled.size * batch_size / elapsed}


def run_plain_worker(checkpoint: str, threads: int, torch_threads: int, seconds: float) -> None:
    """The plain side: load the checkpoint by hand, then time it on every line of stdin."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    torch.set_num_threads(torch_threads)
    model = AutoModelForQuestionAnswering.from_pretrained(checkpoint).eval()
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (4, 32), generator=generator)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    serve(lambda: plain_loop(model, batch, threads, seconds), sys.stdout)


def same_process(threads: int, pairs: int, seconds: float, base: list[str] = CELL) -> list[str]:
    """bench's closed loop and the plain loop over one model object, alternating windows."""
    from bench.engines import ENGINES
    from bench.engines.hf import AUTOCAST_DTYPES
    from bench.measure import threads as thread_policy
    from bench.measure.loadgen import run_closed_loop
    from bench.measure.metrics import nearest_rank_ms
    from bench.measure.scenarios import request_for
    from bench.plan.grid import plan_from_overrides

    cell = plan_from_overrides(cell_overrides(threads, seconds, base)).cells[0]
    policy = thread_policy.plan_policy(cell.threads, cell.torch_threads)
    engine = ENGINES[cell.engine.name](cell)
    engine.import_libraries()
    thread_policy.apply_torch_threads(policy)
    engine.prepare()
    engine.load()
    batch = engine.make_batch()
    request = request_for(engine, cell)

    def bench_window() -> Window:  # the row's P50 and throughput, as bench computes them
        result = run_closed_loop(request, engine.synchronize, threads, cell.scenario)
        p50 = nearest_rank_ms(result.latency_ns, 50)
        return {"p50_ms": p50, "inferences_per_s": result.n * cell.batch_size / result.window_s}

    print(
        f"same process, {' '.join(base)}, on {engine.device}, {seconds:g} s windows, {threads} "
        f"client(s), torch threads {policy.intra_op_threads}: bench loop / plain loop"
    )
    autocast = AUTOCAST_DTYPES.get(cell.precision)

    def plain() -> Window:
        return plain_loop(engine.model, batch, threads, seconds, cell.batch_size, autocast)

    plain()  # first windows pay one-off costs
    bench_window()

    try:
        return report(threads, alternate(bench_window, plain, pairs))
    finally:
        engine.close()


def plain_worker(row: dict, threads: int, seconds: float) -> Worker:
    """The plain loop's process, with the bench row's thread settings."""
    env = dict(os.environ)
    if row["omp_wait_policy"].startswith("default"):  # bench left libgomp's default
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = row["omp_wait_policy"]
    args = ["--plain", row["checkpoint"], "--threads", str(threads)]
    args += ["--torch-threads", str(row["torch_threads"]), "--seconds", str(seconds)]
    return Worker(args, env)


Window = dict[str, float]  # p50_ms, inferences_per_s


def report(threads: int, pairs: list[tuple[Window, Window]]) -> list[str]:
    """Print each (bench, plain) pair and the medians of their ratios; the failures, as lines."""
    p50_ratios = [b["p50_ms"] / p["p50_ms"] for b, p in pairs]
    rate_ratios = [b["inferences_per_s"] / p["inferences_per_s"] for b, p in pairs]
    for k, (b, p) in enumerate(pairs):
        print(
            f"  pair {k + 1}: P50 {b['p50_ms']:.3f} vs {p['p50_ms']:.3f} ms ({p50_ratios[k]:.3f});"
            f" throughput {b['inferences_per_s']:.1f} vs {p['inferences_per_s']:.1f}/s"
            f" ({rate_ratios[k]:.3f})"
        )
    plain_p50s = [p["p50_ms"] for _, p in pairs]
    print(
        f"  the plain loop alone, window to window: P50 {min(plain_p50s):.3f}-"
        f"{max(plain_p50s):.3f} ms (the noise floor these ratios sit on)"
    )
    failures = []
    for name, ratios in (("P50", p50_ratios), ("throughput", rate_ratios)):
        median = statistics.median(ratios)
        verdict = "within" if abs(median - 1) <= TOLERANCE else "OUTSIDE"
        print(f"  median {name} ratio {median:.3f}: {verdict} {TOLERANCE:.0%}")
        if verdict != "within":
            failures.append(f"{threads} client(s) {name} {median:.3f}")
    return failures


def alternate(
    bench: Callable[[], Window], plain: Callable[[], Window], pairs: int
) -> list[tuple[Window, Window]]:
    """`pairs` turns of both sides; who goes first alternates, so a steady drift cancels."""
    measured = []
    for pair in range(pairs):
        if pair % 2 == 0:
            measured.append((bench(), plain()))
        else:
            loop = plain()
            measured.append((bench(), loop))
    return measured


def bench_worker(threads: int, seconds: float) -> tuple[Worker, dict[str, Any]]:
    """A bench worker and its first row (checkpoint, thread settings; a discarded window)."""
    worker = Worker(["--bench", json.dumps(cell_overrides(threads, seconds))])
    return worker, worker.measure()


def in_process_pairs(
    start: Callable[[], tuple[Worker, Worker]], processes: int, windows: int
) -> list[tuple[Window, Window]]:
    """`windows` alternating turns in each of `processes` fresh pairs of workers."""
    turns = []
    for _ in range(processes):
        first, second = start()
        try:
            second.measure()  # each side's first window pays one-off costs: neither counts
            turns += alternate(first.measure, second.measure, windows)
        finally:
            first.close()
            second.close()
    return turns


def as_window(row: dict[str, Any]) -> Window:
    return {"p50_ms": row["latency_ms_p50"], "inferences_per_s": row["inferences_per_s"]}


class BenchSide(Worker):
    """A bench worker whose measure() answers a Window, like the plain loop's."""

    def measure(self) -> dict[str, Any]:
        return as_window(super().measure())


def compare(threads: int, processes: int, windows: int, seconds: float) -> list[str]:
    """Alternating windows of a bench and a plain worker, in fresh pairs; the failures."""
    probe, settings = bench_worker(threads, seconds)  # the row's checkpoint and thread settings
    probe.close()
    print(
        f"tiny BERT b4 s32, CPU, {seconds:g} s, {threads} client(s), torch threads "
        f"{settings['torch_threads']}, {settings['omp_wait_policy']}: bench / plain, "
        f"{processes} pairs of processes x {windows} turns"
    )

    def start() -> tuple[Worker, Worker]:
        bench = BenchSide(["--bench", json.dumps(cell_overrides(threads, seconds))])
        plain = plain_worker(settings, threads, seconds)
        bench.measure()
        return bench, plain

    return report(threads, in_process_pairs(start, processes, windows))


def control(threads: int, processes: int, windows: int, seconds: float) -> list[str]:
    """The A/A test: two identical plain-loop processes, with bench's thread settings."""
    probe, settings = bench_worker(threads, seconds)
    probe.close()
    print(
        f"A/A control, {seconds:g} s, {threads} client(s): plain / an identical plain, "
        f"{processes} pairs of processes x {windows} turns"
    )

    def start() -> tuple[Worker, Worker]:
        one = plain_worker(settings, threads, seconds)
        one.measure()
        return one, plain_worker(settings, threads, seconds)

    return report(threads, in_process_pairs(start, processes, windows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=7, help="fresh pairs of processes")
    parser.add_argument("--windows", type=int, default=None, help="turns (3; 15 in-process)")
    parser.add_argument("--seconds", type=float, default=None, help="window (5 s; 1 s in-process)")
    parser.add_argument("--same-process", action="store_true", help="one process")
    parser.add_argument("--control", action="store_true", help="plain vs plain (A/A)")
    parser.add_argument("--threads", default="1,2", help="client-thread counts to compare")
    parser.add_argument(
        "--cell",
        default=" ".join(CELL),
        help="with --same-process: the cell's overrides (e.g. 'model=bert_base device=cuda')",
    )
    parser.add_argument(
        "--forked", action="store_true", help="bench workers forked after the preload imports"
    )
    parser.add_argument("--bench", metavar="OVERRIDES", help=argparse.SUPPRESS)
    parser.add_argument("--plain", metavar="CHECKPOINT", help=argparse.SUPPRESS)
    parser.add_argument("--torch-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.forked:  # the bench workers (started below) read it
        os.environ["FIDELITY_FORKED"] = "1"
    if args.bench:
        run_bench_worker(json.loads(args.bench))
        return 0
    if args.plain:
        run_plain_worker(args.plain, int(args.threads), args.torch_threads, args.seconds)
        return 0
    seconds = args.seconds or (1.0 if args.same_process else 5.0)
    windows = args.windows or (15 if args.same_process else 3)
    failures = []
    for threads in [int(t) for t in args.threads.split(",")]:
        if args.same_process:
            failures += same_process(threads, windows, seconds, args.cell.split())
        else:
            measure = control if args.control else compare
            failures += measure(threads, args.processes, windows, seconds)
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
