"""`bench sweep`: plan -> manifest -> run the pending cells -> collect.

Resume: a cell whose row in the store is `ok` is not run again (force=true runs it anyway);
a cell with any other row, or none, runs.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from bench.collect import Collected, collect
from bench.config import ConfigError
from bench.executors import EXECUTORS, JobHandle
from bench.executors.base import ProgressFn
from bench.job import write_manifest
from bench.plan import Plan
from bench.store import Store, SweepPaths, open_store


def _check_same_grid(store: Store, plan: Plan) -> None:
    """A sweep folder holds one grid: refuse to mix a different one into it."""
    paths = SweepPaths(plan.sweep_id)
    if not store.exists(paths.manifest):
        return
    old = {c["cell_id"] for c in json.loads(store.read_bytes(paths.manifest))["cells"]}
    if old != {c.cell_id for c in plan.cells}:
        raise ConfigError(
            "sweep_id",
            plan.sweep_id,
            f"{store.uri(paths.manifest)} holds a different grid ({len(old)} cells); "
            "choose another sweep_id",
        )


def pending_indices(store: Store, plan: Plan) -> list[int]:
    """Cells to run: all with force, else those without an ok row."""
    paths = SweepPaths(plan.sweep_id)
    pending = []
    for index, cell in enumerate(plan.cells):
        path = paths.cell(cell.cell_id)
        if not plan.force and store.exists(path):
            status = store.read_table(path).column("status")[0].as_py()
            if status == "ok":
                continue
        pending.append(index)
    return pending


def progress_printer(stream: TextIO) -> ProgressFn:
    """One line per finished cell: count, status, id, its time and the time left (estimated)."""
    spent: list[float] = []

    def show(handle: JobHandle, done: int, total: int, seconds: float) -> None:
        spent.append(seconds)
        left = (total - done) * sum(spent) / len(spent)
        width = len(str(total))
        print(
            f"[{done:>{width}}/{total}] {handle.state:<8} {handle.cell_id}  "
            f"({seconds:.1f} s, ~{left:.0f} s left)",
            file=stream,
            flush=True,
        )

    return show


def run_sweep(plan: Plan, stream: TextIO = sys.stderr) -> Collected:
    """Write the manifest, run the pending cells with the plan's executor, collect."""
    store = open_store(plan.store_root)
    executor_name = plan.executor.get("name", "local")
    if executor_name not in EXECUTORS:
        raise ConfigError("executor", executor_name, "allowed: " + ", ".join(EXECUTORS))
    _check_same_grid(store, plan)
    manifest_uri = write_manifest(store, plan)
    pending = pending_indices(store, plan)
    skipped = len(plan.cells) - len(pending)
    print(
        f"sweep {plan.sweep_id}: {len(plan.cells)} cells, {len(pending)} to run, "
        f"{skipped} already ok; manifest {manifest_uri}",
        file=stream,
        flush=True,
    )
    executor = EXECUTORS[executor_name](plan.executor)
    executor.submit(plan, store, pending, progress=progress_printer(stream))
    return collect(store, plan.sweep_id)
