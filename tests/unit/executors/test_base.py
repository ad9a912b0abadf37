"""bench.executors.base: what every executor shares: options typed and checked before anything
is written, a queue per instance type, a journal of submissions kept beside the sweep (older
files listing several included), the pending cells grouped per instance type in manifest order,
and the submissions a scheduler may still be running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.config.checks import ConfigError
from bench.executors.base import (
    JobHandle,
    Submission,
    crash_row,
    group_by_instance,
    handles_for,
    instance_queue,
    journal_submission,
    read_submissions,
)
from bench.executors.local import LocalExecutor
from bench.executors.slurm import SlurmExecutor
from bench.plan.grid import plan_from_overrides
from bench.plan.manifest import Plan
from bench.row.status import Status
from bench.store import LocalStore, SweepPaths


@pytest.fixture(scope="module")
def plan() -> Plan:
    """Four sleep cells over two instance types, interleaved in manifest order."""
    return plan_from_overrides(
        [
            "engine=sleep",
            "sweep_id=exec",
            "grid.axes.threads=[1,2]",
            "grid.axes.instance=[local-cpu,g5.xlarge]",
        ]
    )


def _submission(name: str, indices: list[int], job_id: str = "") -> Submission:
    return Submission("slurm", job_id, name, "g5.xlarge", indices, array=name, queue="gpu")


def test_a_queue_per_instance_type_is_named_as_the_cloud_template_names_it():
    assert instance_queue("bench-", "g5.xlarge") == "bench-g5-xlarge"
    assert instance_queue("", "p4d.24xlarge") == "p4d-24xlarge"


def test_options_are_typed_and_checked_and_the_name_key_is_the_executors_own():
    executor = LocalExecutor({"name": "local", "timeout_s": 60, "fork_server": False})
    assert executor.options.timeout_s == 60 and executor.options.fork_server is False
    with pytest.raises(ConfigError) as unknown:
        LocalExecutor({"timeout_seconds": 60})
    assert unknown.value.key == "executor.timeout_seconds" and "timeout_s" in str(unknown.value)
    with pytest.raises(ConfigError, match=r"executor\.timeout_s=0 .* > 0"):
        LocalExecutor({"timeout_s": 0})


def test_an_executor_without_a_poll_option_polls_every_30_s():
    assert LocalExecutor({}).poll_s == 30.0
    assert SlurmExecutor({"poll_s": 2.5}).poll_s == 2.5
    assert LocalExecutor({"timeout_s": 90}).attempt_limit_s == 90.0


def test_a_submission_is_one_line_of_status():
    state = _submission("arr", [3, 5], "42").state("ACTIVE", {"RUNNING": 1}, "")
    assert state == {
        "job_id": "42",
        "name": "arr",
        "instance": "g5.xlarge",
        "queue": "gpu",
        "cells": 2,
        "status": "ACTIVE",
        "children": {"RUNNING": 1},
        "reason": "",
    }


def test_the_journal_keeps_each_submission_and_reads_older_files_of_several(tmp_path):
    store = LocalStore(str(tmp_path))
    first = _submission("a1", [0, 2])
    rel = journal_submission(store, "exec", first)
    assert rel == SweepPaths("exec").submission("a1")
    first.job_id = "101"  # the scheduler answered: written again, over the unconfirmed one
    journal_submission(store, "exec", first)
    older = [
        {"executor": "aws_batch", "job_id": "j2", "name": "b1", "instance": "g5.xlarge",
         "indices": [1]},
        {"executor": "aws_batch", "job_id": "j3", "name": "b2", "instance": "g5.xlarge",
         "indices": [3], "array": None, "queue": "q"},
    ]  # fmt: skip
    store.write_bytes(SweepPaths("exec").submission("older"), json.dumps(older).encode())
    found = {s.name: s for s in read_submissions(store, "exec")}
    assert set(found) == {"a1", "b1", "b2"}
    assert found["a1"] == _submission("a1", [0, 2], "101")
    assert (found["b2"].queue, found["b1"].queue) == ("q", None)
    assert read_submissions(store, "no-sweep") == []


def test_pending_cells_are_grouped_per_instance_type_in_manifest_order(plan):
    types = [cell.instance.type for cell in plan.cells]
    groups = group_by_instance(plan, [3, 0, 1, 2])
    assert list(groups) == [types[3], types[0] if types[0] != types[3] else types[1]]
    for instance, indices in groups.items():
        assert all(types[i] == instance for i in indices)
        assert indices == [i for i in [3, 0, 1, 2] if types[i] == instance]
    assert sorted(i for indices in groups.values() for i in indices) == [0, 1, 2, 3]


def test_each_submitted_cell_gets_a_handle(plan):
    handles = handles_for(plan, [_submission("a", [0, 2], "7"), _submission("b", [1], "8")])
    assert handles == [
        JobHandle(plan.cells[0].cell_id, 0, "SUBMITTED", job_id="7"),
        JobHandle(plan.cells[2].cell_id, 2, "SUBMITTED", job_id="7"),
        JobHandle(plan.cells[1].cell_id, 1, "SUBMITTED", job_id="8"),
    ]


def test_a_jobs_crash_row_is_its_attempts_with_the_planners_warnings(plan):
    row = crash_row(plan.cells[0], "job-9", Status.TIMEOUT, "Timeout", "ran past 60 s")
    assert (row["attempt_id"], row["status"], row["error"]) == ("job-9", "timeout", "ran past 60 s")
    assert row["cell_id"] == plan.cells[0].cell_id and "warnings" in row


def test_submissions_the_scheduler_cannot_be_asked_about_count_as_still_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Without squeue the state is UNKNOWN: submitting the same cells again risks paying
    twice, so they are left to the submission."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no squeue here
    slurm = SlurmExecutor({})
    mine, other = _submission("a", [0], "5"), Submission("aws_batch", "j", "b", "g5.xlarge", [1])
    assert slurm.still_active([mine, other]) == [mine]
    assert slurm.describe([mine])[0]["reason"] == "squeue is not on PATH"
