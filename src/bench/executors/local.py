"""executor=local: each cell in a fresh subprocess on this machine, one after another.

A fresh process per cell keeps cells independent (no warm caches, allocator state or threads
carried over) and makes peak RSS per cell. The parent blocks in `subprocess.run` while a cell
measures (it never polls), so it takes no CPU from the measurement.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid

from bench.executors.base import Executor, JobHandle, ProgressFn
from bench.job import save_result
from bench.plan import Plan
from bench.runner import CellResult, failure_row
from bench.store import Store, SweepPaths

LOG_TAIL_CHARS = 1500


def _row_attempt(store: Store, path: str) -> tuple[str | None, str | None]:
    """(attempt_id, status) of the row at path, or (None, None) if there is none."""
    if not store.exists(path):
        return None, None
    row = store.read_table(path).select(["attempt_id", "status"]).to_pylist()[0]
    return row["attempt_id"], row["status"]


class LocalExecutor(Executor):
    name = "local"
    synchronous = True

    def _run_one(self, plan: Plan, store: Store, index: int) -> JobHandle:
        cell = plan.cells[index]
        paths = SweepPaths(plan.sweep_id)
        attempt = uuid.uuid4().hex
        env = {**os.environ, "BENCH_ATTEMPT_ID": attempt}
        cmd = [sys.executable, "-m", "bench", "cell", "--manifest", store.uri(paths.manifest)]
        cmd += ["--index", str(index)]
        timeout_s = float(self.options.get("timeout_s", 1800))
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
                )
                outcome, code = "exited", proc.returncode
            except subprocess.TimeoutExpired:  # run() has killed the child
                outcome, code = "timeout", None
            log.seek(0)
            log_bytes = log.read()
        store.write_bytes(paths.log(cell.cell_id), log_bytes)
        row_attempt, status = _row_attempt(store, paths.cell(cell.cell_id))
        if row_attempt == attempt:
            return JobHandle(cell.cell_id, index, status or "failed", job_id=attempt)
        tail = log_bytes.decode(errors="replace")[-LOG_TAIL_CHARS:]
        if outcome == "timeout":
            status, error_class = "timeout", "Timeout"
            message = f"cell ran past executor.timeout_s={timeout_s:g}; log tail: {tail}"
        else:
            status, error_class = "failed", "CellProcessDied"
            message = f"cell process exited with code {code} and wrote no row; log tail: {tail}"
        row = failure_row(cell, status, error_class, message)
        row["attempt_id"] = attempt
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
            handle = self._run_one(plan, store, index)
            handles.append(handle)
            if progress is not None:
                progress(handle, done, len(indices), time.perf_counter() - started)
        return handles
