"""Executor registry: names used in config (executor=NAME) to classes."""

from __future__ import annotations

from typing import Any

from bench.config.checks import choice
from bench.config.plugin import discover
from bench.executors.base import Executor, JobHandle

# every Executor subclass under this package that names itself: an executor is its module
# and its conf/executor/NAME.yaml (tests/unit/executors/test_conformance.py)
EXECUTORS: dict[str, type[Executor]] = discover(__name__, Executor)


def executor_class(options: dict[str, Any]) -> type[Executor]:
    """The executor `options` name (ConfigError naming the allowed ones)."""
    name = options.get("name", "local")
    return EXECUTORS[choice("executor", name, tuple(EXECUTORS))]


def check_executor(options: dict[str, Any]) -> None:
    """A registered executor, and options it takes (ConfigError otherwise)."""
    executor_class(options).check(options)


__all__ = ["EXECUTORS", "Executor", "JobHandle", "check_executor", "executor_class"]
