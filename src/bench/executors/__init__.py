"""Executor registry: names used in config (executor=NAME) to classes."""

from __future__ import annotations

from bench.executors.base import Executor, JobHandle, index_from_environment
from bench.executors.local import LocalExecutor

EXECUTORS: dict[str, type[Executor]] = {"local": LocalExecutor}

__all__ = ["EXECUTORS", "Executor", "JobHandle", "index_from_environment"]
