"""`bench sweep`: plan -> manifest -> run the pending cells -> collect.

Resume: a cell with an `ok` attempt in the store is not run again (force=true runs it anyway);
a cell with only other attempts, or none, runs. A job stands down when another attempt holds
the cell's lease (another sweep, an orphan), so a cell is never measured twice at once.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import pyarrow as pa

from bench.cell.runner import CellResult
from bench.config.checks import ConfigError
from bench.executors import Executor, JobHandle, executor_class, lease
from bench.executors.base import ProgressFn, read_submissions
from bench.executors.job import cell_statuses, save_result
from bench.measure.progress import CLEAR_LINE
from bench.plan.feasibility import decide
from bench.plan.manifest import Plan, write_manifest
from bench.plan.preflight import check_this_host
from bench.results.collect import Collected, collect
from bench.row.build import planner_row
from bench.row.status import RAN_AND_FAILED, Status
from bench.store import Store, StoreError, SweepPaths, manifest_json, open_store


def _check_same_grid(store: Store, plan: Plan) -> None:
    """A sweep folder holds one grid: refuse to mix a different one into it."""
    if (manifest := manifest_json(store, plan.sweep_id)) is None:
        return
    old = {c["cell_id"] for c in manifest["cells"]}
    if old != {c.cell_id for c in plan.cells}:
        raise ConfigError(
            "sweep_id",
            plan.sweep_id,
            f"{store.uri(SweepPaths(plan.sweep_id).manifest)} holds a different grid "
            f"({len(old)} cells); "
            "choose another sweep_id",
        )


def write_planner_rows(store: Store, plan: Plan, this_host: bool) -> set[int]:
    """Rows for the cells the planner decides not to run (bench.plan.feasibility.decide),
    before anything is submitted, so that they never cost a job: unsupported ones, and
    infeasible ones unless run_infeasible. With `this_host` (cells run here) the host's own
    checks count too. Returns their indices."""
    done = set()
    for index, cell in enumerate(plan.cells):
        decision = decide(cell, this_host)
        if decision.outcome == "unsupported" or (
            decision.outcome == "infeasible" and not plan.run_infeasible
        ):
            row = planner_row(cell, decision.outcome, decision.reason)
        else:
            continue
        save_result(store, CellResult(row=row, samples=None))
        done.add(index)
    return done


def pending_indices(store: Store, plan: Plan, settled: set[int] = frozenset()) -> list[int]:
    """Cells to run: all with force, else those without an ok attempt; never `settled` ones."""
    statuses = {} if plan.force else cell_statuses(store, plan.sweep_id)
    return [
        index
        for index, cell in enumerate(plan.cells)
        if index not in settled and Status.OK not in statuses.get(cell.cell_id, ())
    ]


def progress_printer(stream: TextIO, walls: dict[str, float] | None = None) -> ProgressFn:
    """One line per finished cell: count, status, id, its time and the time left (estimated);
    each cell's wall seconds go into `walls` (for time_split)."""
    spent: list[float] = []

    def show(handle: JobHandle, done: int, total: int, seconds: float) -> None:
        spent.append(seconds)
        if walls is not None:
            walls[handle.cell_id] = seconds
        left = (total - done) * sum(spent) / len(spent)
        width = len(str(total))
        why = f"  {handle.detail}" if handle.state == "skipped" else ""
        over = CLEAR_LINE if stream.isatty() else ""  # the cell's live phase line, if any
        print(
            f"{over}[{done:>{width}}/{total}] {handle.state:<8} {handle.cell_id}  "
            f"({seconds:.1f} s, ~{left:.0f} s left){why}",
            file=stream,
            flush=True,
        )

    return show


def make_executor(options: dict[str, Any]) -> Executor:
    return executor_class(options)(options)


def submissions_table(states: list[dict[str, Any]]) -> str:
    """The scheduler's view, one line per job."""
    lines = []
    for s in states:
        children = " ".join(f"{k}={v}" for k, v in sorted(s["children"].items()))
        lines.append(
            f"{s['job_id']}  {s['name']}  {s['instance']}  queue={s['queue']}  "
            f"cells={s['cells']}  {s['status']}  {children}  {s['reason']}".rstrip()
        )
    return "\n".join(lines)


def _leave_to_active_submissions(
    executor: Executor, store: Store, plan: Plan, pending: list[int], stream: TextIO
) -> list[int]:
    """Pending cells less those an earlier submission of this sweep may still be running."""
    active = executor.still_active(read_submissions(store, plan.sweep_id))
    covered = {index for sub in active for index in sub.indices}
    left = [index for index in pending if index not in covered]
    if len(left) < len(pending):
        jobs = ", ".join(sub.job_id for sub in active)
        print(
            f"{len(pending) - len(left)} cells are in submissions still queued or running "
            f"({jobs}): not submitted again (force=true submits them anyway)",
            file=stream,
            flush=True,
        )
    return left


LEASE_POLL_S = 1.0


def _wait_for_other_attempts(
    store: Store, plan: Plan, handles: list[JobHandle], stream: TextIO
) -> None:
    """Cells this sweep left to another attempt (it held their lease): wait until it gives
    them back, so the collect that follows sees their rows rather than calling them missing.
    Bounded by each lease's own expiry."""
    busy = [h.cell_id for h in handles if h.state == "skipped" and h.detail.startswith("busy:")]
    if not busy:
        return
    print(f"waiting for {len(busy)} cells another attempt is measuring", file=stream, flush=True)
    while any(lease.holder_of(store, plan.sweep_id, cell_id) for cell_id in busy):
        time.sleep(LEASE_POLL_S)  # a blocking sleep between polls; nothing spins


def _stopped_by_the_store(exc: StoreError) -> StoreError:
    """The store failed mid-sweep (an S3 outage past the retry budget, a full disk): one line
    (the CLI's exit 2) saying the store, not a cell, stopped the sweep, and how to go on."""
    return StoreError(
        f"{exc}; the sweep stopped because the store failed, not a cell: the rows written "
        "so far are kept, and the same command resumes once the store answers"
    )


def run_sweep(plan: Plan, stream: TextIO | None = None) -> Collected | None:
    """Write the manifest, run the pending cells with the plan's executor, collect.

    With a scheduler, returns None right after submitting unless plan.wait, in which case it
    waits for the jobs and collects. Progress goes to `stream` (stderr when None, looked up at
    the call: a default bound at import would outlive a replaced sys.stderr).
    """
    stream = stream or sys.stderr
    store = open_store(plan.store_root)
    executor = make_executor(plan.executor)
    if executor.synchronous:  # the cells run on this host: what it lacks, before any write
        check_this_host(plan)
    executor.check_ready(plan, store)
    _check_same_grid(store, plan)
    manifest_uri = write_manifest(store, plan)
    unsupported = write_planner_rows(store, plan, this_host=executor.synchronous)
    pending = plan.run_order(pending_indices(store, plan, unsupported))
    skipped = len(plan.cells) - len(pending) - len(unsupported)
    print(
        f"sweep {plan.sweep_id}: {len(plan.cells)} cells, {len(pending)} to run, "
        f"{skipped} already ok, {len(unsupported)} unsupported or infeasible; "
        f"manifest {manifest_uri}",
        file=stream,
        flush=True,
    )
    if not executor.synchronous and not plan.force:
        pending = _leave_to_active_submissions(executor, store, plan, pending, stream)
    walls: dict[str, float] = {}
    try:
        handles = executor.submit(plan, store, pending, progress=progress_printer(stream, walls))
        _wait_for_other_attempts(store, plan, handles, stream)
    except StoreError as exc:
        raise _stopped_by_the_store(exc) from exc
    if not executor.synchronous:  # each submission was journaled as it was made
        for sub in executor.submissions:
            print(
                f"submitted {sub.job_id}  {sub.name}  {sub.instance}  cells={len(sub.indices)}"
                f"  queue={sub.queue}",
                file=stream,
                flush=True,
            )
        if not plan.wait:
            follow = f"python -m bench status {plan.sweep_id} store.root={plan.store_root}"
            print(f"follow it with: {follow}", file=stream)
            return None
        executor.wait(executor.submissions, executor.poll_s)
        print(submissions_table(executor.describe(executor.submissions)), file=stream)
    collected = collect(store, plan.sweep_id)
    # this run's attempts: the aggregate keeps each cell's best row, which may be older
    attempts = {h.cell_id: h.job_id for h in handles if h.job_id and executor.synchronous}
    collected.failed_now = sorted(
        h.cell_id for h in handles if executor.synchronous and h.state in RAN_AND_FAILED
    )
    if walls and (split := time_split(collected.table, walls, attempts)):
        print(split, file=stream, flush=True)
    return collected


def time_split(
    table: pa.Table, walls: dict[str, float], attempts: dict[str, str] | None = None
) -> str | None:
    """Where the cells' wall time went: the measured windows against imports, loading and the
    rest (process start, checkpoint, warmup, summarising, writing), over the ok cells this
    sweep ran (`attempts`: this run's attempt per cell; a cell whose row in the aggregate is
    an older attempt's is not counted); None when it ran none."""
    columns = ["cell_id", "attempt_id", "status", "window_s", "import_s", "load_s"]
    ok = [
        row
        for row in table.select(columns).to_pylist()
        if row["cell_id"] in walls
        and row["status"] == Status.OK
        and (attempts is None or attempts.get(row["cell_id"]) == row["attempt_id"])
    ]
    wall = sum(walls[row["cell_id"]] for row in ok)
    if not ok or wall <= 0:
        return None
    measuring, imports, load = (
        sum(row[k] or 0.0 for row in ok) for k in ("window_s", "import_s", "load_s")
    )
    rest = max(wall - measuring - imports - load, 0.0)
    return (
        f"time: {wall:.1f} s in {len(ok)} ok cells, {measuring:.1f} s ({measuring / wall:.0%}) "
        f"measuring; outside it: imports {imports:.1f} s, load {load:.1f} s, the rest (process "
        f"start, checkpoint, warmup, summary, writing) {rest:.1f} s"
    )
