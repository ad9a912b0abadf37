"""What a cell is doing now, said as it happens: its phases in the sweep's terminal, in the
cell's log, and in the store for `bench status` from anywhere.

Phases: import (the engine's libraries), prepare (find or build the checkpoint), load, warmup,
measure (once per measured window: a ramp has one per stage), quality (when the cell's
outputs are checked: bench.measure.quality_check), write. A phase change is said
between the timed brackets, never inside one: the line and the store write (one small PUT on
S3) happen before the next phase's clock starts.

Where it goes:
- the cell's own output (its log in the store), always;
- the sweep's terminal, when the local executor passes the cell a copy of it (the file
  descriptor in BENCH_PROGRESS_FD): the parent keeps blocking on the cell's process and
  polls nothing, so it takes no CPU from the measurement;
- `<sweep_id>/progress/<cell_id>.json` (phase, when it began, the attempt, its process and
  host), removed when the cell's row is written, or when the cell's process is stopped (its
  `finally` blocks run on SIGINT and SIGTERM); a record whose process was killed outright is
  removed by the executor that ran it (`forget`) or by the sweep's next run, and `bench
  status` shows only the record of the attempt holding the cell's lease.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from bench.store import Store, SweepPaths

PROGRESS_FD_VARIABLE = "BENCH_PROGRESS_FD"
PROGRESS_LABEL_VARIABLE = "BENCH_PROGRESS_LABEL"  # the sweep's count, e.g. [3/16]
CLEAR_LINE = "\r\x1b[K"  # to the line's start, erase it
PHASES = ("import", "prepare", "load", "warmup", "measure", "quality", "write")


def progress_path(sweep_id: str, cell_id: str) -> str:
    return SweepPaths(sweep_id).progress(cell_id)


def _terminal() -> TextIO | None:
    """The sweep's terminal, if the executor passed it (never the cell's own stdout)."""
    fd = os.environ.get(PROGRESS_FD_VARIABLE)
    if not fd:
        return None
    try:
        return open(int(fd), "w", buffering=1, closefd=False)
    except (OSError, ValueError):  # not passed to this process after all
        return None


@dataclass
class CellProgress:
    store: Store | None
    sweep_id: str
    cell_id: str
    attempt: str
    terminal: TextIO | None = field(default_factory=_terminal)
    phase: str | None = None
    since: float = 0.0
    label: str = field(default_factory=lambda: os.environ.get(PROGRESS_LABEL_VARIABLE, ""))

    def enter(self, phase: str, detail: str = "") -> None:
        now = time.monotonic()
        took = f" (after {self.phase} {now - self.since:.1f} s)" if self.phase else ""
        said = f"{phase}{' ' + detail if detail else ''}{took}"
        line = f"{self.label or ' '} {self.cell_id}: {said}"
        self.phase, self.since = phase, now
        print(line, flush=True)
        if self.terminal is not None:
            try:  # a terminal gets one line per cell, rewritten in place; a file every line
                tty = self.terminal.isatty()
                self.terminal.write(f"{CLEAR_LINE}{line}" if tty else line + "\n")
                self.terminal.flush()
            except OSError:  # the sweep's terminal went away: the log still has it
                self.terminal = None
        if self.store is not None:
            record = {"phase": phase, "detail": detail, "since": time.time()}
            record.update(attempt=self.attempt, pid=os.getpid(), host=socket.gethostname())
            try:
                self.store.write_bytes(
                    progress_path(self.sweep_id, self.cell_id), json.dumps(record).encode()
                )
            except Exception as exc:  # progress is a courtesy: never the reason a cell fails
                print(f"  (progress not stored: {exc})", file=sys.stderr)

    def finish(self) -> None:
        if self.store is None:
            return
        # already gone, or the store is down: the released lease says the cell ended anyway
        with contextlib.suppress(Exception):
            self.store.delete(progress_path(self.sweep_id, self.cell_id))


_current: CellProgress | None = None


def begin(progress: CellProgress | None) -> None:
    """The cell this process measures now (None: say nothing, e.g. `bench run`'s own)."""
    global _current
    _current = progress


def enter(phase: str, detail: str = "") -> None:
    """Say that the current cell enters `phase` (nothing when no cell began)."""
    if _current is not None:
        _current.enter(phase, detail)


def forget(store: Store, sweep_id: str, cell_id: str, attempt: str) -> bool:
    """Remove a cell's progress record if `attempt` wrote it (its process was killed before it
    could); never another attempt's. Whether it removed one."""
    said = read_phase(store, sweep_id, cell_id)
    if not isinstance(said, dict) or said.get("attempt") != attempt:
        return False
    store.delete(progress_path(sweep_id, cell_id))
    return True


def read_phase(store: Store, sweep_id: str, cell_id: str) -> dict | None:
    """The stored progress record of a cell, or None."""
    try:
        return json.loads(store.read_bytes(progress_path(sweep_id, cell_id)))
    except (FileNotFoundError, ValueError):
        return None
