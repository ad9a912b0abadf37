"""The executor interface: submit cells, get handles back; results are read from the store.
Each executor has typed options read and checked as every plugin's are (bench.config.plugin;
conf/executor/NAME.yaml declares the same keys and defaults, a test holds them equal) and
names the environment its jobs run in (bench.executors.environment)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from bench.config.plugin import Plugin
from bench.config.schema import CellConfig
from bench.executors.environment import JobEnvironment
from bench.plan.manifest import Plan
from bench.row import build
from bench.row.status import Status
from bench.store import Store, SweepPaths


def instance_queue(prefix: str, instance_type: str) -> str:
    """A queue (Batch) or partition (Slurm) per instance type, as jobs/batch.yaml names them:
    bench-g5-xlarge."""
    return f"{prefix}{instance_type.replace('.', '-')}"


@dataclass
class JobHandle:
    """One submitted cell. `state` is the scheduler's view; the row in the store is the truth."""

    cell_id: str
    index: int
    state: str  # e.g. ok | failed | timeout for local; SUBMITTED/RUNNING/... for schedulers
    job_id: str | None = None
    detail: str = ""


ProgressFn = Callable[[JobHandle, int, int, float], None]


class Executor(Plugin, ABC):
    """Runs the cells of a plan whose manifest is already in the store.

    A synchronous executor (local) has run every cell when `submit` returns; a scheduler's
    returns at once, leaves what it submitted in `self.submissions`, and answers `describe`
    (the scheduler's view, for `bench status`) and `wait`.
    """

    axis = "executor"
    synchronous: bool = False
    # The scheduler states (as `describe` reports them) in which a submission may still run
    # its cells: a re-submitted sweep leaves those cells to it.
    active_states: tuple[str, ...] = ()

    environment: ClassVar[type[JobEnvironment]] = JobEnvironment

    def __init__(self, options: dict[str, Any]) -> None:
        # conf/executor/NAME.yaml or the manifest's `executor`, checked before anything is
        # written
        self.options = self.check(options)
        self.submissions: list[Submission] = []

    def check_ready(self, plan: Plan, store: Store) -> None:
        """Raise ConfigError before anything is written if this executor cannot run the plan
        here (its client missing, a setting the plan needs unset, a store it cannot use)."""

    def describe(self, submissions: list[Submission]) -> list[dict[str, Any]]:
        """The scheduler's state of each submission (job id, status, children per state)."""
        return []

    @property
    def attempt_limit_s(self) -> float | None:
        """The longest one attempt of a cell may run before this executor (or its scheduler)
        kills it; None: no limit. A cell's lease lasts this long plus a margin."""
        return None

    @property
    def poll_s(self) -> float:
        """Seconds between the scheduler's status polls when the sweep waits."""
        return float(getattr(self.options, "poll_s", 30.0))

    def wait(self, submissions: list[Submission], poll_s: float) -> None:
        """Block until every submission has finished."""

    def still_active(self, submissions: list[Submission]) -> list[Submission]:
        """This executor's submissions the scheduler may still be running."""
        mine = [s for s in submissions if s.executor == self.name]
        states = self.describe(mine)
        return [
            s
            for s, state in zip(mine, states, strict=True)
            if state["status"] in self.active_states
        ]

    @abstractmethod
    def submit(
        self,
        plan: Plan,
        store: Store,
        indices: list[int],
        progress: ProgressFn | None = None,
    ) -> list[JobHandle]:
        """Start the cells at `indices`; return a handle per cell."""


@dataclass
class Submission:
    """One scheduler job (usually an array) covering some cells of a sweep."""

    executor: str
    job_id: str
    name: str
    instance: str
    indices: list[int]  # manifest indices; array child i runs indices[i]
    array: str | None = None  # array map name passed to `bench cell --array`
    queue: str | None = None

    def state(self, status: str, children: dict[str, int], reason: str) -> dict[str, Any]:
        """One line of `bench status`: this submission as its scheduler sees it."""
        return {
            "job_id": self.job_id,
            "name": self.name,
            "instance": self.instance,
            "queue": self.queue,
            "cells": len(self.indices),
            "status": status,
            "children": children,
            "reason": reason,
        }


class SubmissionFailed(RuntimeError):
    """The scheduler refused or did not answer a submission; what was submitted before it is
    journaled."""


UNCONFIRMED = "UNCONFIRMED"  # journaled, but the scheduler never answered with a job id


def journal_submission(store: Store, sweep_id: str, submission: Submission) -> str:
    """Keep one submission next to the sweep (for `bench status`, `wait` and re-submission):
    written before the scheduler is asked (job_id "") and again once it answers, so a failure
    part-way still leaves a record of every array that may be running."""
    import json
    from dataclasses import asdict

    rel = SweepPaths(sweep_id).submission(submission.name)
    store.write_bytes(rel, json.dumps(asdict(submission), indent=1).encode())
    return rel


def read_submissions(store: Store, sweep_id: str) -> list[Submission]:
    """Every journaled submission (files of one, and older files listing several)."""
    import json

    found = []
    for rel in store.list(SweepPaths(sweep_id).submissions_dir, ".json"):
        data = json.loads(store.read_bytes(rel))
        found += [Submission(**d) for d in (data if isinstance(data, list) else [data])]
    return found


def group_by_instance(plan: Plan, indices: list[int]) -> dict[str, list[int]]:
    """Pending cells per instance type, in manifest order (one queue/partition per type)."""
    groups: dict[str, list[int]] = {}
    for index in indices:
        groups.setdefault(plan.cells[index].instance.type, []).append(index)
    return groups


def handles_for(plan: Plan, submissions: list[Submission]) -> list[JobHandle]:
    """One SUBMITTED handle per cell the submissions cover."""
    return [
        JobHandle(plan.cells[i].cell_id, i, "SUBMITTED", job_id=s.job_id)
        for s in submissions
        for i in s.indices
    ]


def crash_row(
    cell: CellConfig, attempt_id: str, status: Status, error_class: str, error: str
) -> dict[str, Any]:
    """The row of a job that died or ran out of time without writing its own
    (bench.row.build.crash_row), with the planner's warnings for the cell."""
    from bench.plan.feasibility import planner_warnings  # it may import transformers

    return build.crash_row(cell, attempt_id, status, error_class, error, planner_warnings(cell))
