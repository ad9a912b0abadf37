"""Executor registry: names used in config (executor=NAME) to classes."""

from __future__ import annotations

from bench.executors.aws_batch import AwsBatchExecutor
from bench.executors.base import Executor, JobHandle, index_from_environment
from bench.executors.local import LocalExecutor
from bench.executors.slurm import SlurmExecutor

EXECUTORS: dict[str, type[Executor]] = {
    "local": LocalExecutor,
    "aws_batch": AwsBatchExecutor,
    "slurm": SlurmExecutor,
}

__all__ = ["EXECUTORS", "Executor", "JobHandle", "index_from_environment"]
