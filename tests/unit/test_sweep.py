"""bench.sweep's parts: a sweep folder holds one grid; the planner's rows are written before
anything is submitted; the cells to run are those without an ok attempt (all with force);
a line per finished cell with the time left; the scheduler's view a line per job; and where a
sweep's wall time went. (Whole sweeps through the CLI: tests/integration/.)"""

from __future__ import annotations

import dataclasses
import io
from datetime import datetime, timezone

import pytest

from bench.config.checks import ConfigError
from bench.executors.base import JobHandle
from bench.plan.grid import plan_from_overrides
from bench.plan.manifest import Plan, write_manifest
from bench.row.schema import rows_to_table
from bench.store import LocalStore, StoreError, SweepPaths
from bench.sweep import (
    _check_same_grid,
    _stopped_by_the_store,
    pending_indices,
    progress_printer,
    submissions_table,
    time_split,
    write_planner_rows,
)

SWEEP = "unit-sweep"


@pytest.fixture(scope="module")
def plan() -> Plan:
    """Four sleep cells: two on this CPU, two on a Neuron instance no engine runs."""
    return plan_from_overrides(
        [
            "engine=sleep",
            f"sweep_id={SWEEP}",
            "grid.axes.threads=[1,2]",
            "grid.axes.instance=[local-cpu,inf2.xlarge]",
        ]
    )


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(str(tmp_path))


def test_a_sweep_folder_holds_one_grid(store, plan):
    _check_same_grid(store, plan)  # nothing there yet
    write_manifest(store, plan)
    _check_same_grid(store, plan)  # the same grid again: a resume
    other = plan_from_overrides(["engine=sleep", f"sweep_id={SWEEP}", "threads=3"])
    with pytest.raises(ConfigError) as refused:
        _check_same_grid(store, other)
    message = str(refused.value)
    assert refused.value.key == "sweep_id" and "holds a different grid (4 cells)" in message
    assert message.endswith("choose another sweep_id")


def test_cells_the_planner_will_not_run_get_their_rows_before_any_job(store, plan):
    done = write_planner_rows(store, plan, this_host=False)
    neuron = {i for i, c in enumerate(plan.cells) if c.instance.type == "inf2.xlarge"}
    assert done == neuron and len(done) == 2
    for index in done:
        cell_id = plan.cells[index].cell_id
        path = SweepPaths(SWEEP).attempt_row(cell_id, "planner", "unsupported")
        (row,) = store.read_table(path).to_pylist()
        assert row["error_class"] == "Unsupported" and "Neuron" in row["error"]
    # the pending cells leave them out; an ok attempt settles a cell; force runs it anyway
    assert pending_indices(store, plan, done) == sorted(set(range(4)) - neuron)
    first = min(set(range(4)) - neuron)
    ok = {"cell_id": plan.cells[first].cell_id, "status": "ok"}
    store.write_table(
        SweepPaths(SWEEP).attempt_row(plan.cells[first].cell_id, "a1", "ok"), rows_to_table([ok])
    )
    assert first not in pending_indices(store, plan, done)
    forced = dataclasses.replace(plan, force=True)
    assert pending_indices(store, forced, done) == sorted(set(range(4)) - neuron)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_each_finished_cell_is_a_line_with_the_time_left():
    stream, walls = io.StringIO(), {}
    show = progress_printer(stream, walls)
    show(JobHandle("cell-a", 0, "ok"), 1, 12, 2.0)
    show(JobHandle("cell-b", 1, "skipped", detail="busy: another attempt"), 2, 12, 4.0)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[ 1/12] ok       cell-a  (2.0 s, ~22 s left)"  # 11 left x 2.0 s
    assert lines[1] == "[ 2/12] skipped  cell-b  (4.0 s, ~30 s left)  busy: another attempt"
    assert walls == {"cell-a": 2.0, "cell-b": 4.0}
    tty = Tty()
    progress_printer(tty)(JobHandle("c", 0, "failed"), 1, 1, 1.0)
    assert tty.getvalue().startswith("\r\x1b[K[1/1] failed")  # over the cell's live line


def test_the_schedulers_view_is_a_line_per_job():
    states = [
        {"job_id": "42", "name": "sw-g5", "instance": "g5.xlarge", "queue": "gpu", "cells": 3,
         "status": "ACTIVE", "children": {"RUNNING": 1, "PENDING": 2}, "reason": ""},
        {"job_id": "43", "name": "sw-cpu", "instance": "local-cpu", "queue": None, "cells": 1,
         "status": "UNKNOWN", "children": {}, "reason": "squeue is not on PATH"},
    ]  # fmt: skip
    assert submissions_table(states).splitlines() == [
        "42  sw-g5  g5.xlarge  queue=gpu  cells=3  ACTIVE  PENDING=2 RUNNING=1",
        "43  sw-cpu  local-cpu  queue=None  cells=1  UNKNOWN    squeue is not on PATH",
    ]


def _rows(*rows: dict) -> object:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return rows_to_table([{"started_at": now, "finished_at": now, **row} for row in rows])


def test_the_time_split_counts_this_runs_ok_cells_only():
    table = _rows(
        {"cell_id": "a", "attempt_id": "now", "status": "ok", "window_s": 5.0, "import_s": 2.0,
         "load_s": 1.0},
        {"cell_id": "b", "attempt_id": "before", "status": "ok", "window_s": 5.0},
        {"cell_id": "c", "attempt_id": "now", "status": "failed"},
    )  # fmt: skip
    walls = {"a": 10.0, "b": 10.0, "c": 3.0}
    line = time_split(table, walls, {"a": "now", "b": "now", "c": "now"})
    assert line == (
        "time: 10.0 s in 1 ok cells, 5.0 s (50%) measuring; outside it: imports 2.0 s, "
        "load 1.0 s, the rest (process start, checkpoint, warmup, summary, writing) 2.0 s"
    )
    assert "in 2 ok cells" in time_split(table, walls)  # every attempt, when not told which
    assert time_split(table, {"c": 3.0}) is None  # no ok cell ran


def test_a_store_that_fails_mid_sweep_is_said_to_be_the_reason_and_how_to_go_on():
    said = str(_stopped_by_the_store(StoreError("write s3://b/x: endpoint unreachable")))
    assert said.startswith("write s3://b/x: endpoint unreachable; the sweep stopped because")
    assert "the same command resumes" in said and "\n" not in said
