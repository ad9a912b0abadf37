"""What every executor promises, checked on each one (as Hydra's launcher tests check every
launcher): the plugin contract (bench.config.plugin: registered under its YAML's name, typed
options that match its YAML, refused unknown keys and bad values, the base's hooks), a
scheduler environment, one handle per submitted cell, and (for schedulers) every submission
journaled before the sweep returns. A new executor fails here until it has a harness below."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.config.checks import ConfigError
from bench.executors import EXECUTORS, Executor
from bench.executors.aws_batch import AwsBatchExecutor
from bench.executors.base import read_submissions
from bench.executors.environment import INDEX_VARIABLES, LocalEnvironment, attempt_id
from bench.executors.local import LocalExecutor
from bench.executors.slurm import SlurmExecutor
from bench.plan.grid import plan_from_overrides
from bench.plan.manifest import Plan, write_manifest
from bench.store import LocalStore, Store, SweepPaths
from tests.support import plugin_contract as contract
from tests.support.fake_batch import FakeBatch


class S3NamedStore(LocalStore):
    """A local folder that names itself s3:// (aws_batch refuses any other store)."""

    def uri(self, rel: str) -> str:
        return f"s3://bucket/{rel}"


def _local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Executor, Store]:
    return LocalExecutor({"fork_server": False, "timeout_s": 120}), LocalStore(str(tmp_path))


def _aws_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Executor, Store]:
    executor = AwsBatchExecutor({"image": "bench-hf:1"}, client=FakeBatch())
    return executor, S3NamedStore(str(tmp_path))


def _slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Executor, Store]:
    """A fake sbatch on PATH that answers with a job id, as `sbatch --parsable` does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text('#!/bin/sh\necho "$$;cluster"\n')
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    executor = SlurmExecutor({"log_dir": str(tmp_path / "logs")})
    return executor, LocalStore(str(tmp_path / "store"))


HARNESSES: dict[str, Callable[[Path, pytest.MonkeyPatch], tuple[Executor, Store]]] = {
    "local": _local,
    "aws_batch": _aws_batch,
    "slurm": _slurm,
}


def test_every_executor_has_a_harness() -> None:
    assert set(HARNESSES) == set(EXECUTORS)


def test_every_executor_has_its_yaml_and_every_yaml_its_executor() -> None:
    assert contract.conf_names("executor") == set(EXECUTORS)


@pytest.mark.parametrize("name", sorted(EXECUTORS))
def test_an_executor_is_registered_under_its_yamls_name(name: str) -> None:
    executor = EXECUTORS[name]
    assert issubclass(executor, Executor) and executor.axis == "executor"
    assert executor.name == name == contract.yaml_of("executor", name)["name"]


@pytest.mark.parametrize("name", sorted(EXECUTORS))
def test_the_yaml_declares_the_typed_options_and_their_defaults(name: str) -> None:
    executor = EXECUTORS[name]
    contract.assert_options_are_the_yamls(executor, contract.declared_options("executor", name))
    executor.check(contract.yaml_of("executor", name))  # and the YAML passes its checks


@pytest.mark.parametrize("name", sorted(EXECUTORS))
def test_unknown_keys_and_bad_values_are_refused(name: str) -> None:
    executor = EXECUTORS[name]
    contract.assert_bad_input_is_refused(executor)
    numbers = [
        f.name
        for f in dataclasses.fields(executor.Options)
        if isinstance(f.default, (int, float)) and not isinstance(f.default, bool)
    ]
    for key in numbers:  # none is negative either
        with pytest.raises(ConfigError) as info:
            executor.check({"name": name, key: -1})
        assert info.value.key == f"executor.{key}"


@pytest.mark.parametrize("name", sorted(EXECUTORS))
def test_the_hooks_take_what_the_bases_take(name: str) -> None:
    assert contract.hook_mismatches(EXECUTORS[name], Executor) == []


@pytest.mark.parametrize("name", sorted(EXECUTORS))
def test_the_environment_names_the_index_and_the_attempt(name: str) -> None:
    environment = EXECUTORS[name].environment
    assert environment.attempt({}) is None
    assert environment.job_id_variable, "an attempt must be named by the scheduler's job id"
    named = {environment.job_id_variable: "1234"}
    if environment.retry_variable:
        named[environment.retry_variable] = "2"
    expected = "1234-2" if environment.retry_variable else "1234"
    assert environment.attempt(named) == expected == attempt_id(named)
    if environment is not LocalEnvironment:  # a scheduler runs arrays: its index is read
        assert environment.index_variable in INDEX_VARIABLES


def _plan() -> Plan:
    return plan_from_overrides(
        [
            "engine=null",
            "grid.axes.threads=[1,2]",
            "scenario.min_requests=5",
            "scenario.min_duration_s=0.05",
            "scenario.ci_target=0",
            "sweep_id=conformance",
        ]
    )


@pytest.mark.parametrize("name", sorted(EXECUTORS))
def test_submit_gives_one_handle_per_cell_and_leaves_a_record(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor, store = HARNESSES[name](tmp_path, monkeypatch)
    plan = _plan()
    write_manifest(store, plan)
    handles = executor.submit(plan, store, [0, 1])
    assert sorted(h.index for h in handles) == [0, 1]
    assert all(h.cell_id == plan.cells[h.index].cell_id for h in handles)
    if executor.synchronous:  # the cells ran: each has its row
        for handle in handles:
            rows = store.list(
                SweepPaths(plan.sweep_id).cell_attempts_dir(handle.cell_id), ".ok.parquet"
            )
            assert rows, f"no ok row for {handle.cell_id}"
        return
    journaled = read_submissions(store, plan.sweep_id)
    assert sorted(i for s in journaled for i in s.indices) == [0, 1]
    assert all(s.job_id for s in journaled)  # confirmed by the scheduler's answer
    states = executor.describe(executor.submissions)
    assert len(states) == len(executor.submissions)
    assert all({"job_id", "status", "cells", "children"} <= set(s) for s in states)
