"""A sweep's live status, read from its store and writing nothing: its submissions as their
schedulers see them, the cells being measured now (their lease holders and the phase each
said it is in) and its rows so far against the manifest's cells (`bench status`)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.executors import executor_class, lease
from bench.executors.base import read_submissions
from bench.measure import progress
from bench.results.collect import collect
from bench.store import Store


@dataclass(frozen=True)
class Measuring:
    """A cell whose lease is held now."""

    cell_id: str
    holder: str  # the lease holder, described: attempt, pid, host, since when
    phase: str | None  # the phase the holder's attempt last said it entered (None: unsaid)
    phase_s: float  # how long ago it entered it


@dataclass(frozen=True)
class SweepStatus:
    sweep_id: str
    jobs: list[list[dict[str, Any]]]  # per executor, each submission as its scheduler says
    measuring: list[Measuring]
    cells: int  # in the manifest
    rows: Counter[str]  # the rows so far, by status
    pending: int  # cells with no row that nobody is measuring

    def summary(self) -> str:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.rows.items())) or "none"
        return (
            f"sweep {self.sweep_id}: {self.cells} cells; rows: {statuses}; "
            f"running {len(self.measuring)}; pending (no row yet) {self.pending}"
        )


def _jobs(store: Store, sweep_id: str, configured: Mapping[str, Any]) -> list[list[dict]]:
    """The scheduler's view of each journaled submission, asked of the executor that made it
    (with the composed config's options when it names that executor)."""
    by_executor: dict[str, list] = {}
    for submission in read_submissions(store, sweep_id):
        by_executor.setdefault(submission.executor, []).append(submission)
    jobs = []
    for name, submissions in by_executor.items():
        options = {**(configured if configured.get("name") == name else {}), "name": name}
        jobs.append(executor_class(options)(options).describe(submissions))
    return jobs


def _measuring(store: Store, sweep_id: str, now: float) -> list[Measuring]:
    found = []
    for cell_id, holder in lease.holders(store, sweep_id):
        said = progress.read_phase(store, sweep_id, cell_id)
        # a phase record another attempt left behind says nothing of this one
        if said is not None and said.get("attempt") == holder.attempt:
            phase, phase_s = str(said["phase"]), now - float(said["since"])
        else:
            phase, phase_s = None, 0.0
        found.append(Measuring(cell_id, holder.describe(), phase, phase_s))
    return found


def sweep_status(store: Store, sweep_id: str, configured: Mapping[str, Any]) -> SweepStatus:
    """The status of `sweep_id` (its manifest in `store`); `configured`: the composed
    config's executor options, for asking a scheduler about its submissions."""
    jobs = _jobs(store, sweep_id, configured)
    measuring = _measuring(store, sweep_id, time.time())
    collected = collect(store, sweep_id, write=False)
    running = {m.cell_id for m in measuring}
    return SweepStatus(
        sweep_id=sweep_id,
        jobs=jobs,
        measuring=measuring,
        cells=len(collected.expected),
        rows=Counter(collected.table.column("status").to_pylist()),
        pending=sum(1 for c in collected.missing if c not in running),
    )
