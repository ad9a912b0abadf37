"""executor=local: each cell in a fresh process on this machine, one after another.

A fresh process per cell keeps cells independent (no warm caches, allocator state or threads
carried over) and makes peak RSS per cell. By default the processes are forked from a fork
server that has imported the engines' libraries once (executor.fork_server, see
executors/forkserver.py), so a cell does not pay the imports the cell before it paid;
`executor.fork_server=false` starts each as `python -m bench cell`. The parent blocks
(in `subprocess.run`, or reading the server's answer) while a cell measures: it never polls,
so it takes no CPU from the measurement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.config.checks import positive
from bench.engines import ENGINES
from bench.executors import lease
from bench.executors.base import Executor, JobHandle, ProgressFn, crash_row
from bench.executors.environment import LocalEnvironment
from bench.executors.forkserver import ForkServer, ForkServerError
from bench.executors.job import save_result
from bench.measure.progress import PROGRESS_FD_VARIABLE, PROGRESS_LABEL_VARIABLE
from bench.measure.runner import CellResult
from bench.plan.manifest import Plan
from bench.results.store import Store, SweepPaths, row_file

LOG_TAIL_CHARS = 1500


def _terminal_copy() -> int | None:
    """A copy of this process's stderr for the cell to say its phases on (None: no stderr)."""
    try:
        return os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # replaced by an object without a file
        return None


def _fds(fd: int | None) -> tuple[int, ...]:
    return () if fd is None else (fd,)


def _run_forked(
    server: ForkServer, argv: list[str], env: dict[str, str], timeout_s: float
) -> tuple[str, int | None, bytes]:
    """_run_child's answer, the cell forked from the fork server."""
    with tempfile.NamedTemporaryFile(prefix="bench-cell-", suffix=".log") as log:
        outcome, code = server.run(argv, env, log.name, timeout_s)
        return outcome, code, Path(log.name).read_bytes()


def _run_child(
    cmd: list[str], env: dict[str, str], timeout_s: float, terminal: int | None
) -> tuple[str, int | None, bytes]:
    """Run the cell's process to its end: (exited | timeout, exit code, its output). The
    cell says its phases on `terminal` (a copy of our stderr) as they happen."""
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
                pass_fds=_fds(terminal),
            )
            outcome, code = "exited", proc.returncode
        except subprocess.TimeoutExpired:  # run() has killed the child
            outcome, code = "timeout", None
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


@dataclass(frozen=True)
class LocalOptions:
    timeout_s: float = 1800.0  # a cell still running after this becomes a `timeout` row
    fork_server: bool = True  # fork cells from a process that imported their libraries once


class LocalExecutor(Executor):
    name = "local"
    synchronous = True
    Options = LocalOptions
    environment = LocalEnvironment
    options: LocalOptions

    @classmethod
    def validate(cls, options: LocalOptions) -> None:
        positive("executor.timeout_s", options.timeout_s)

    server: ForkServer | None = None
    terminal: int | None = None

    @property
    def attempt_limit_s(self) -> float:
        return float(self.options.timeout_s)

    def _run_one(self, plan: Plan, store: Store, index: int, label: str = "") -> JobHandle:
        cell = plan.cells[index]
        paths = SweepPaths(plan.sweep_id)
        attempt = uuid.uuid4().hex
        env = {**os.environ, "BENCH_ATTEMPT_ID": attempt, PROGRESS_LABEL_VARIABLE: label}
        if self.terminal is not None:
            env[PROGRESS_FD_VARIABLE] = str(self.terminal)
        argv = ["cell", "--manifest", store.uri(paths.manifest), "--index", str(index)]
        timeout_s = float(self.options.timeout_s)
        try:
            outcome, code, log_bytes = self._run_cell_process(argv, env, timeout_s)
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
        row = crash_row(cell, status, error_class, message)
        row["attempt_id"] = attempt  # its own attempt's file: never over another attempt's row
        save_result(store, CellResult(row=row, samples=None))
        return JobHandle(cell.cell_id, index, status, job_id=attempt, detail=message)

    def _run_cell_process(
        self, argv: list[str], env: dict[str, str], timeout_s: float
    ) -> tuple[str, int | None, bytes]:
        if self.server is not None:
            try:
                return _run_forked(self.server, argv, env, timeout_s)
            except ForkServerError as exc:  # the rest of the sweep in fresh processes
                print(f"fork server: {exc}; cells start as fresh processes", file=sys.stderr)
                self.server.close()
                self.server = None
        cmd = [sys.executable, "-m", "bench", *argv]
        return _run_child(cmd, env, timeout_s, self.terminal)

    def _start(self, plan: Plan, indices: list[int]) -> None:
        """The terminal copy the cells say their phases on, and the fork server (unless
        executor.fork_server=false) with the modules the pending cells' engines preload."""
        self.terminal = _terminal_copy()
        if not self.options.fork_server or not indices:
            return
        preload = sorted({m for i in indices for m in ENGINES[plan.cells[i].engine.name].preload})
        try:
            self.server = ForkServer(preload, pass_fds=_fds(self.terminal))
        except (ForkServerError, OSError) as exc:
            print(f"fork server: {exc}; cells start as fresh processes", file=sys.stderr)

    def _stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.terminal is not None:
            os.close(self.terminal)
            self.terminal = None

    def submit(
        self,
        plan: Plan,
        store: Store,
        indices: list[int],
        progress: ProgressFn | None = None,
    ) -> list[JobHandle]:
        self._start(plan, indices)
        try:
            return self._submit(plan, store, indices, progress)
        finally:
            self._stop()

    def _submit(
        self, plan: Plan, store: Store, indices: list[int], progress: ProgressFn | None
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
