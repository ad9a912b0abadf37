"""executor=local: each cell in a fresh process on this machine, one after another.

A fresh process per cell keeps cells independent (no warm caches, allocator state or threads
carried over) and makes peak RSS per cell. By default the processes are forked from a fork
server that has imported the engines' libraries once (executor.fork_server, see
executors/forkserver.py), so a cell does not pay the imports the cell before it paid;
`executor.fork_server=false` starts each as `python -m bench cell`. The parent blocks
(waiting on the child, or reading the server's answer) while a cell measures: it never polls,
so it takes no CPU from the measurement.

Nothing of a cell outlives it but its row and its log. Each cell leads a session of its own;
past its timeout, or when the sweep is interrupted (Ctrl-C, SIGTERM), it is told to stop
(SIGTERM or SIGINT to its group), given CELL_GRACE_S to stop what it started (a server),
SIGKILLed, and whatever is left in its session is ended too (bench.engines.process_groups).
Its output is written from its first line where it will be kept (executors/cell_logs.py) and
moved to `logs/` however it ends; its lease and progress record are removed after it. The
next run of a sweep sweeps up what a sweep killed outright left: orphaned cells' logs, stale
progress records, temp files of writes cut short.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.cell.runner import CellResult
from bench.config.checks import positive
from bench.engines import ENGINES
from bench.engines.process_groups import (
    CELL_GRACE_S,
    LEFTOVER_GRACE_S,
    end_session,
    first_signal,
    stop_session,
    terminate_as_exit,
)
from bench.executors import cell_logs, lease
from bench.executors.base import Executor, JobHandle, ProgressFn, crash_row
from bench.executors.environment import LocalEnvironment
from bench.executors.forkserver import ForkServer, ForkServerError
from bench.executors.job import clear_stale_progress, save_result
from bench.measure import progress as cell_progress
from bench.measure.progress import PROGRESS_FD_VARIABLE, PROGRESS_LABEL_VARIABLE
from bench.plan.manifest import Plan
from bench.row.build import new_attempt_id
from bench.row.status import Status
from bench.store import LocalStore, Store, StoreError, SweepPaths, row_file

LOG_TAIL_CHARS = 1500
# A temp file of a store write older than this was left by a process killed mid-write (a
# write takes well under a second; the temp file of a killed one is never renamed).
STALE_TEMP_S = 600.0


def _terminal_copy() -> int | None:
    """A copy of this process's stderr for the cell to say its phases on (None: no stderr)."""
    try:
        return os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # replaced by an object without a file
        return None


def _fds(fd: int | None) -> tuple[int, ...]:
    return () if fd is None else (fd,)


def _run_child(
    cmd: list[str], env: dict[str, str], timeout_s: float, terminal: int | None, log: int
) -> tuple[str, int | None]:
    """Run the cell's process, leading a session of its own, to its end: (exited | timeout,
    exit code). Its output goes to `log`; it says its phases on `terminal` (a copy of our
    stderr) as they happen. Past its time, or when the sweep is interrupted (Ctrl-C, SIGTERM),
    it is stopped with everything it started (process_groups.stop_session)."""
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        pass_fds=_fds(terminal),
        start_new_session=True,
    )

    def ended(limit_s: float) -> bool:
        try:
            proc.wait(timeout=limit_s)
            return True
        except subprocess.TimeoutExpired:
            return False

    try:
        if ended(timeout_s):
            end_session(proc.pid, LEFTOVER_GRACE_S)  # what the cell started and left running
            return "exited", proc.returncode
    except BaseException as exc:
        stop_session(proc.pid, first_signal(exc), ended, CELL_GRACE_S, LEFTOVER_GRACE_S)
        raise
    stop_session(proc.pid, signal.SIGTERM, ended, CELL_GRACE_S, LEFTOVER_GRACE_S)
    return "timeout", None


def _after_cell(store: Store, sweep_id: str, cell_id: str, attempt: str, log: Path) -> bytes:
    """What is left of a cell once its process has ended, whichever way: its lease given back
    and its progress record removed (a process stopped by force could do neither), its log
    moved from the spool to logs/. The log's bytes."""
    lease.release(store, sweep_id, cell_id, attempt)
    cell_progress.forget(store, sweep_id, cell_id, attempt)
    return cell_logs.keep(store, sweep_id, log)


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


def _tidy(store: Store, sweep_id: str) -> None:
    """Sweep up what processes killed outright left in a sweep's folder: the logs of orphaned
    cells that have ended since (to logs/), progress records of cells whose process is gone,
    temp files of store writes cut short. A courtesy: a failure is one line, not the sweep's."""
    try:
        cell_logs.adopt_orphans(store, sweep_id)
        clear_stale_progress(store, sweep_id)
        if isinstance(store, LocalStore):
            store.remove_stale_temp(sweep_id, STALE_TEMP_S)
    except (OSError, StoreError) as exc:
        print(f"tidying {sweep_id}: {exc}", file=sys.stderr)


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
        attempt = new_attempt_id()
        env = {**os.environ, "BENCH_ATTEMPT_ID": attempt, PROGRESS_LABEL_VARIABLE: label}
        if self.terminal is not None:
            env[PROGRESS_FD_VARIABLE] = str(self.terminal)
        argv = ["cell", "--manifest", store.uri(paths.manifest), "--index", str(index)]
        timeout_s = float(self.options.timeout_s)
        log, log_fd = cell_logs.spool(store, plan.sweep_id, cell.cell_id, attempt)
        try:
            outcome, code = self._run_cell_process(argv, env, timeout_s, log, log_fd)
        finally:  # timed out, killed, or interrupted (Ctrl-C) too
            os.close(log_fd)
            log_bytes = _after_cell(store, plan.sweep_id, cell.cell_id, attempt, log)
        status = _attempt_status(store, paths, cell.cell_id, attempt)
        if status is not None:
            return JobHandle(cell.cell_id, index, status, job_id=attempt)
        if outcome == "exited" and code == 0 and (why := _stood_down(log_bytes)):
            # another attempt measures it, or already has: this one wrote nothing, rightly
            return JobHandle(cell.cell_id, index, "skipped", job_id=attempt, detail=why)
        tail = log_bytes.decode(errors="replace")[-LOG_TAIL_CHARS:]
        if outcome == "timeout":
            status, error_class = Status.TIMEOUT, "Timeout"
            message = f"cell ran past executor.timeout_s={timeout_s:g}; log tail: {tail}"
        else:
            status, error_class = Status.FAILED, "CellProcessDied"
            message = f"cell process exited with code {code} and wrote no row; log tail: {tail}"
        row = crash_row(cell, attempt, status, error_class, message)
        save_result(store, CellResult(row=row, samples=None))
        return JobHandle(cell.cell_id, index, status, job_id=attempt, detail=message)

    def _run_cell_process(
        self, argv: list[str], env: dict[str, str], timeout_s: float, log: Path, log_fd: int
    ) -> tuple[str, int | None]:
        if self.server is not None:
            try:
                return self.server.run(argv, env, str(log), timeout_s)
            except ForkServerError as exc:  # the rest of the sweep in fresh processes
                print(f"fork server: {exc}; cells start as fresh processes", file=sys.stderr)
                self.server.close()
                self.server = None
        cmd = [sys.executable, "-m", "bench", *argv]
        return _run_child(cmd, env, timeout_s, self.terminal, log_fd)

    def _start(self, plan: Plan, store: Store, indices: list[int]) -> None:
        """What killed processes left in the sweep's folder swept up; the terminal copy the
        cells say their phases on, and the fork server (unless executor.fork_server=false)
        with the modules the pending cells' engines preload."""
        _tidy(store, plan.sweep_id)
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
        # SIGTERM to the sweep stops the running cell as Ctrl-C does, keeping its log
        with terminate_as_exit():
            self._start(plan, store, indices)
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
