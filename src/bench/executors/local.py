"""executor=local: each cell in a fresh subprocess on this machine, one after another.

A fresh process per cell keeps cells independent (no warm caches, allocator state or threads
carried over) and makes peak RSS per cell. The parent blocks in `subprocess.run` while a cell
measures (it never polls), so it takes no CPU from the measurement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

from bench import lease
from bench.executors.base import Executor, JobHandle, ProgressFn
from bench.job import save_result
from bench.plan import Plan
from bench.progress import PROGRESS_FD_VARIABLE, PROGRESS_LABEL_VARIABLE
from bench.runner import CellResult, failure_row
from bench.store import Store, SweepPaths, row_file

LOG_TAIL_CHARS = 1500


def _terminal_copy() -> int | None:
    """A copy of this process's stderr for the cell to say its phases on (None: no stderr)."""
    try:
        return os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # replaced by an object without a file
        return None


def _run_child(
    cmd: list[str], env: dict[str, str], timeout_s: float
) -> tuple[str, int | None, bytes]:
    """Run the cell's process to its end: (exited | timeout, exit code, its output). The
    cell says its phases on a copy of our stderr as they happen (bench.progress)."""
    terminal = _terminal_copy()
    if terminal is not None:
        env = {**env, PROGRESS_FD_VARIABLE: str(terminal)}
    with tempfile.TemporaryFile() as log:
        try:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout_s,
                check=False,
                pass_fds=() if terminal is None else (terminal,),
            )
            outcome, code = "exited", proc.returncode
        except subprocess.TimeoutExpired:  # run() has killed the child
            outcome, code = "timeout", None
        finally:
            if terminal is not None:
                os.close(terminal)
        log.seek(0)
        return outcome, code, log.read()


def _attempt_status(store: Store, paths: SweepPaths, cell_id: str, attempt: str) -> str | None:
    """The status of the row `attempt` wrote, or None if it wrote none."""
    for path in store.list(paths.cell_attempts_dir(cell_id), ".parquet"):
        parsed = row_file(path)
        if parsed.attempt == attempt:
            return parsed.status
    return None


def _stood_down(log_bytes: bytes) -> str:
    """Why a child that wrote no row stood down ('busy: ...', 'ok: ...'), from the one JSON
    line `bench cell` prints last; "" when it did not say so."""
    for line in reversed(log_bytes.decode(errors="replace").splitlines()):
        if line.startswith('{"cell_id"'):
            try:
                return str(json.loads(line).get("stood_down") or "")
            except json.JSONDecodeError:
                return ""
    return ""


class LocalExecutor(Executor):
    name = "local"
    synchronous = True

    def _run_one(self, plan: Plan, store: Store, index: int, label: str = "") -> JobHandle:
        cell = plan.cells[index]
        paths = SweepPaths(plan.sweep_id)
        attempt = uuid.uuid4().hex
        env = {**os.environ, "BENCH_ATTEMPT_ID": attempt, PROGRESS_LABEL_VARIABLE: label}
        cmd = [sys.executable, "-m", "bench", "cell", "--manifest", store.uri(paths.manifest)]
        cmd += ["--index", str(index)]
        timeout_s = float(self.options.get("timeout_s", 1800))
        try:
            outcome, code, log_bytes = _run_child(cmd, env, timeout_s)
        finally:  # killed on timeout (or by Ctrl-C): its lease must not outlive it
            lease.release(store, plan.sweep_id, cell.cell_id, attempt)
        store.write_bytes(paths.log(cell.cell_id, attempt), log_bytes)
        status = _attempt_status(store, paths, cell.cell_id, attempt)
        if status is not None:
            return JobHandle(cell.cell_id, index, status, job_id=attempt)
        if outcome == "exited" and code == 0 and (why := _stood_down(log_bytes)):
            # another attempt measures it, or already has: this one wrote nothing, rightly
            return JobHandle(cell.cell_id, index, "skipped", job_id=attempt, detail=why)
        tail = log_bytes.decode(errors="replace")[-LOG_TAIL_CHARS:]
        if outcome == "timeout":
            status, error_class = "timeout", "Timeout"
            message = f"cell ran past executor.timeout_s={timeout_s:g}; log tail: {tail}"
        else:
            status, error_class = "failed", "CellProcessDied"
            message = f"cell process exited with code {code} and wrote no row; log tail: {tail}"
        row = failure_row(cell, status, error_class, message)
        row["attempt_id"] = attempt  # its own attempt's file: never over another attempt's row
        save_result(store, CellResult(row=row, samples=None))
        return JobHandle(cell.cell_id, index, status, job_id=attempt, detail=message)

    def submit(
        self,
        plan: Plan,
        store: Store,
        indices: list[int],
        progress: ProgressFn | None = None,
    ) -> list[JobHandle]:
        handles = []
        for done, index in enumerate(indices, start=1):
            started = time.perf_counter()
            width = len(str(len(indices)))  # as the sweep numbers its finished lines
            handle = self._run_one(plan, store, index, f"[{done:>{width}}/{len(indices)}]")
            handles.append(handle)
            if progress is not None:
                progress(handle, done, len(indices), time.perf_counter() - started)
        return handles
