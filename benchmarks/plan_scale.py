"""How long `bench plan` takes over large grids, and how fast a too-large grid is refused.

Writes user grids over the sleep engine (axes threads x batch_size x engine.service_ms) of
1,000, 10,000 and 100,000 cells into a temporary config folder, then times
`python -m bench plan --config-dir DIR +grid=NAME` in a fresh process, `--runs` times each
(imports, composing, expanding, the feasibility verdicts and the printed table: what a user
waits for; the table goes to a file). Reports the median wall time, the process's CPU time
(user + system: on a shared machine the wall time also counts other processes' turns) and its
peak RSS. Then times the refusal of a 1e7-cell grid (exit 2, one line naming
grid.max_cells), which must come from the axes' lengths alone.

    python benchmarks/plan_scale.py [--runs 3] [--sizes 1000,10000,100000]
                                    [--baseline-src OLD/src --baseline-max 1000]

`--baseline-src` also times an older checkout's planner (its `src` folder first on
PYTHONPATH) on the sizes up to --baseline-max (the planner before bounded grids copied the
whole config per cell: 1,000 cells took 35 s, 10,000 over 120 s).
Targets: 100,000 cells in under 10 s; the 1e7-cell refusal in under 3 s.
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
from pathlib import Path

import yaml

# cells -> (threads, batch sizes, service times): their product
SHAPES = {1_000: (10, 10, 10), 10_000: (10, 10, 100), 100_000: (10, 100, 100)}
TARGET_S = {100_000: 10.0}
REFUSAL_TARGET_S = 3.0


def write_grid(folder: Path, cells: int) -> str:
    threads, batches, services = SHAPES[cells]
    name = f"scale{cells}"
    grid = {
        "grid": {
            "name": name,
            "axes": {
                "engine": ["sleep"],
                "threads": list(range(1, threads + 1)),
                "batch_size": list(range(1, batches + 1)),
                "engine.service_ms": [round(0.5 * (i + 1), 1) for i in range(services)],
            },
        }
    }
    (folder / "grid").mkdir(parents=True, exist_ok=True)
    (folder / "grid" / f"{name}.yaml").write_text("# @package _global_\n" + yaml.safe_dump(grid))
    return name


def run(args: list[str], cwd: Path, src: str | None = None) -> dict:
    """`python -m bench ARGS` in a fresh process: wall and CPU seconds, peak RSS, exit code,
    stderr, lines printed."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench", *args], cwd=cwd, env=env, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own CPU time and peak RSS
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        lines = sum(1 for _ in out)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux: KiB
        "rc": proc.returncode,
        "stderr": stderr,
        "lines": lines,
    }


def time_plan(folder: Path, cells: int, runs: int, src: str | None = None) -> dict:
    name = write_grid(folder, cells)
    results = []
    for _ in range(runs):
        got = run(["plan", "--config-dir", str(folder), f"+grid={name}"], folder, src)
        if got["rc"] != 0:
            raise RuntimeError(got["stderr"][-2000:])
        results.append(got)
    wall = statistics.median(r["wall_s"] for r in results)
    return {
        "planner": "baseline" if src else "bench",
        "cells": cells,
        "wall_s": round(wall, 2),
        "wall_runs_s": [round(r["wall_s"], 2) for r in results],
        "cpu_s": round(statistics.median(r["cpu_s"] for r in results), 2),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in results), 1),
        "lines_printed": results[0]["lines"],
        "target_s": TARGET_S.get(cells),
        "within_target": wall < TARGET_S[cells] if cells in TARGET_S else None,
    }


def time_refusal(folder: Path) -> dict:
    ten = "[" + ",".join(str(i) for i in range(1, 11)) + "]"
    axes = ["threads", "batch_size", "seed", "engine.service_ms", "engine.sigma"]
    axes += ["engine.max_concurrency", "scenario.warmup_requests"]
    got = run(["plan", "engine=sleep", *(f"grid.axes.{a}={ten}" for a in axes)], folder)
    line = got["stderr"].strip()
    assert got["rc"] == 2 and "10,000,000 cells" in line and "grid.max_cells" in line, line
    return {
        "refused_cells": 10_000_000,
        "wall_s": round(got["wall_s"], 2),
        "cpu_s": round(got["cpu_s"], 2),
        "rc": got["rc"],
        "message": line,
        "target_s": REFUSAL_TARGET_S,
        "within_target": got["wall_s"] < REFUSAL_TARGET_S,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--baseline-src", default=None, help="an older checkout's src folder")
    parser.add_argument("--baseline-max", type=int, default=1000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(json.dumps({"cpus": os.cpu_count(), "load_avg_1m_at_start": os.getloadavg()[0]}))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for cells in sizes:
            print(json.dumps(time_plan(folder, cells, args.runs)), flush=True)
            if args.baseline_src and cells <= args.baseline_max:
                print(json.dumps(time_plan(folder, cells, 1, args.baseline_src)), flush=True)
        print(json.dumps(time_refusal(folder)), flush=True)
    print(json.dumps({"load_avg_1m_at_end": os.getloadavg()[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
