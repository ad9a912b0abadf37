"""The executor interface: submit cells, get handles back; results are read from the store.

Every scheduler's array index is read in one place, `index_from_environment`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.plan import Plan
from bench.store import Store

# The variable each scheduler sets to an array child's index, in the order they are tried.
INDEX_VARIABLES = ("AWS_BATCH_JOB_ARRAY_INDEX", "SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX")


def index_from_environment(environ: dict[str, str] | None = None) -> int:
    """The array index the scheduler gave this job; ValueError when none is set."""
    environ = dict(os.environ) if environ is None else environ
    for name in INDEX_VARIABLES:
        value = environ.get(name)
        if value is not None and value != "":
            if not (value.isascii() and value.isdigit()):
                raise ValueError(f"{name}={value!r} is not a non-negative integer")
            return int(value)
    raise ValueError(f"no --index given and none of {', '.join(INDEX_VARIABLES)} is set")


@dataclass
class JobHandle:
    """One submitted cell. `state` is the scheduler's view; the row in the store is the truth."""

    cell_id: str
    index: int
    state: str  # e.g. ok | failed | timeout for local; SUBMITTED/RUNNING/... for schedulers
    job_id: str | None = None
    detail: str = ""


ProgressFn = Callable[[JobHandle, int, int, float], None]


class Executor(ABC):
    """Runs the cells of a plan whose manifest is already in the store."""

    name: str

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    @abstractmethod
    def submit(
        self,
        plan: Plan,
        store: Store,
        indices: list[int],
        progress: ProgressFn | None = None,
    ) -> list[JobHandle]:
        """Start the cells at `indices`; return a handle per cell."""
