"""What each scheduler tells a job through its environment, one class per scheduler: the
variable holding the job's array index, and those naming the attempt (the job id and its
retry number). A job reads them here and nowhere else."""

from __future__ import annotations

import os
import re
from typing import ClassVar

from bench.row.build import new_attempt_id


class JobEnvironment:
    """A scheduler's variables (None: it sets no such variable)."""

    index_variable: ClassVar[str | None] = None
    job_id_variable: ClassVar[str | None] = None
    retry_variable: ClassVar[str | None] = None

    @classmethod
    def attempt(cls, environ: dict[str, str]) -> str | None:
        """The job id, with its retry number where there is one; None outside this scheduler."""
        value = environ.get(cls.job_id_variable) if cls.job_id_variable else None
        if not value:
            return None
        if cls.retry_variable and (number := environ.get(cls.retry_variable)):
            value = f"{value}-{number}"
        return value


class LocalEnvironment(JobEnvironment):
    """executor=local names each attempt itself (it also writes a crashed cell's row)."""

    job_id_variable = "BENCH_ATTEMPT_ID"


class AwsBatchEnvironment(JobEnvironment):
    index_variable = "AWS_BATCH_JOB_ARRAY_INDEX"
    job_id_variable = "AWS_BATCH_JOB_ID"
    retry_variable = "AWS_BATCH_JOB_ATTEMPT"


class SlurmEnvironment(JobEnvironment):
    index_variable = "SLURM_ARRAY_TASK_ID"
    job_id_variable = "SLURM_JOB_ID"
    retry_variable = "SLURM_RESTART_COUNT"


class IndexedJobEnvironment(JobEnvironment):
    """A Kubernetes Indexed Job (`bench cell` in a pod: no executor submits it yet)."""

    index_variable = "JOB_COMPLETION_INDEX"


# In the order they are asked: bench's own attempt id first (a local cell), then the schedulers.
ENVIRONMENTS: tuple[type[JobEnvironment], ...] = (
    LocalEnvironment,
    AwsBatchEnvironment,
    SlurmEnvironment,
    IndexedJobEnvironment,
)
INDEX_VARIABLES = tuple(e.index_variable for e in ENVIRONMENTS if e.index_variable)


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


def attempt_id(environ: dict[str, str] | None = None) -> str:
    """One id per execution: the scheduler's job id (and retry number) where there is one,
    else a fresh uuid; only letters, digits, '-' and '_', since it names the attempt's files."""
    environ = dict(os.environ) if environ is None else environ
    for environment in ENVIRONMENTS:
        if value := environment.attempt(environ):
            return re.sub(r"[^A-Za-z0-9_-]", "-", value)[:128]
    return new_attempt_id()
