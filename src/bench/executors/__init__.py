"""Executor registry: names used in config (executor=NAME) to classes."""

from __future__ import annotations

from typing import Any

from bench.config.checks import choice
from bench.executors.aws_batch import AwsBatchExecutor
from bench.executors.base import Executor, JobHandle
from bench.executors.local import LocalExecutor
from bench.executors.slurm import SlurmExecutor

EXECUTORS: dict[str, type[Executor]] = {
    "local": LocalExecutor,
    "aws_batch": AwsBatchExecutor,
    "slurm": SlurmExecutor,
}


def executor_class(options: dict[str, Any]) -> type[Executor]:
    """The executor `options` name (ConfigError naming the allowed ones)."""
    name = options.get("name", "local")
    return EXECUTORS[choice("executor", name, tuple(EXECUTORS))]


def check_executor(options: dict[str, Any]) -> None:
    """A registered executor, and options it takes (ConfigError otherwise)."""
    executor_class(options).check(options)


__all__ = ["EXECUTORS", "Executor", "JobHandle", "check_executor", "executor_class"]
