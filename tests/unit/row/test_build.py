"""bench.row.build: the columns every row has, whatever its status; a row marked as not
measured keeps its error's end; and the rows of cells the planner does not run, of unsupported
cells and of jobs that died, each under its own attempt."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from bench.config.schema import CellConfig
from bench.plan.grid import plan_from_overrides
from bench.row import build
from bench.row.schema import COLUMN_NAMES, SCHEMA_VERSION, rows_to_table
from bench.row.status import Status


@pytest.fixture(scope="module")
def cells() -> list[CellConfig]:
    """A sleep cell repeated twice (repeat 0 and 1) and an image model's cell."""
    repeated = plan_from_overrides(["engine=sleep", "repeats=2", "sweep_id=rows"]).cells
    image = plan_from_overrides(["engine=sleep", "model=vit_tiny", "sweep_id=rows"]).cells
    return [*repeated, *image]


def test_a_cell_row_names_the_cell_its_axes_and_its_attempt(cells):
    cell = cells[0]
    row = build.cell_row(cell, "attempt-1")
    assert row["schema_version"] == SCHEMA_VERSION
    assert (row["sweep_id"], row["cell_id"], row["attempt_id"]) == (
        "rows",
        cell.cell_id,
        "attempt-1",
    )
    assert (row["cell_index"], row["repeat"], row["config_id"]) == (cell.index, 0, cell.cell_id)
    for column, value in {
        "model": cell.model.name,
        "engine": "sleep",
        "precision": cell.precision,
        "batch_size": cell.batch_size,
        "threads": cell.threads,
        "instance": cell.instance.type,
        "scenario": cell.scenario.name,
        "price_per_hour": cell.price_per_hour,
    }.items():
        assert row[column] == value, column
    assert json.loads(row["config_json"]) == json.loads(json.dumps(cell.to_dict(), default=str))
    assert row["hostname"] and row["python_version"]  # the host's facts come with it
    assert set(row) <= COLUMN_NAMES and rows_to_table([row]).num_rows == 1


def test_a_repeat_shares_its_config_id_with_the_first_run(cells):
    first, again = build.cell_row(cells[0], "a"), build.cell_row(cells[1], "b")
    assert cells[1].cell_id == f"{cells[0].cell_id}-r1"
    assert again["repeat"] == 1 and again["config_id"] == first["config_id"] == cells[0].cell_id


def test_only_an_image_model_has_an_image_size(cells):
    assert build.cell_row(cells[0], "a")["image_size"] is None
    image = build.cell_row(cells[2], "a")
    assert image["task"] == "classify_image" and image["image_size"] == 64


def test_a_failed_row_keeps_the_end_of_a_long_error():
    error = "start " + "x" * build.MAX_ERROR_CHARS + " the line that says why"
    row = build.failed({"cell_id": "c"}, Status.FAILED, "BoomError", error)
    assert (row["status"], row["error_class"]) == ("failed", "BoomError")
    assert len(row["error"]) == build.MAX_ERROR_CHARS
    assert row["error"].endswith(" the line that says why") and "start" not in row["error"]
    assert build.failed({}, Status.TIMEOUT, "Timeout", "short")["error"] == "short"


def test_a_failure_row_starts_and_finishes_now_in_utc(cells):
    before = datetime.now(timezone.utc)
    row = build.failure_row(cells[0], "a1", Status.FAILED, "X", "why", warnings="borderline")
    assert row["started_at"] == row["finished_at"]
    assert before <= row["started_at"] <= datetime.now(timezone.utc)
    assert row["started_at"].tzinfo is not None
    assert (row["status"], row["error"], row["warnings"]) == ("failed", "why", "borderline")
    assert "n" not in row  # nothing was measured


def test_an_unsupported_cell_is_said_so_without_loading_anything(cells):
    row = build.unsupported_row(cells[0], "a1", "no CUDA here")
    assert (row["status"], row["error_class"], row["error"]) == (
        "unsupported",
        "Unsupported",
        "no CUDA here",
    )


@pytest.mark.parametrize(
    ("outcome", "status", "error_class"),
    [("unsupported", "unsupported", "Unsupported"), ("infeasible", "infeasible", "Infeasible")],
)
def test_the_planners_rows_are_one_attempt_per_cell_and_outcome(
    cells, outcome, status, error_class
):
    row = build.planner_row(cells[0], outcome, "needs 90 GB")
    assert row["attempt_id"] == build.PLANNER_ATTEMPT == "planner"
    assert (row["status"], row["error_class"], row["error"]) == (status, error_class, "needs 90 GB")


@pytest.mark.parametrize(
    ("status", "kept"),
    [
        (Status.FAILED, True),
        (Status.TIMEOUT, True),
        (Status.INFEASIBLE, False),
        (Status.UNSUPPORTED, False),
    ],
)
def test_a_crashed_jobs_row_carries_the_planners_warnings_only_if_it_ran(cells, status, kept):
    row = build.crash_row(cells[0], "job-7", status, "CellProcessDied", "exit 137", "tight fit")
    assert row["attempt_id"] == "job-7" and row["status"] == status.value
    assert row["warnings"] == ("tight fit" if kept else None)


def test_attempt_ids_are_fresh_hex():
    ids = {build.new_attempt_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
