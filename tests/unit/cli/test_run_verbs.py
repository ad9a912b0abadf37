"""The verbs that run cells, through main: `bench run` prints a short summary of its cell's
row (the row itself with format=json); a cell that fails is one line and exit 1, its traceback
on stderr only with traceback=true."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import bench.cell.runner as runner
from bench.cell import rank_group
from bench.cli import main
from bench.plan.grid import plan_from_overrides
from bench.plan.manifest import write_manifest
from bench.store import open_store

QUICK = [
    "run",
    "engine=sleep",
    "engine.service_ms=1",
    "scenario.min_requests=50",
    "scenario.min_duration_s=0.1",
    "scenario.warmup_s=0",
    "scenario.ci_target=0",
]


def test_an_ok_cell_is_a_few_lines_of_headline_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(QUICK) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("cell bert_tiny-sleep-fp32-") and len(lines) <= 8
    header, values = lines[1].split(), lines[2].split()
    assert header[:4] == ["status", "n", "p50_ms", "p99_ms"] and values[0] == "ok"
    assert {"load_s", "$/M", "stability", "inf/s"} <= set(header)
    assert int(values[1]) >= 50


def test_format_json_prints_the_row(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*QUICK, "format=json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["status"] == "ok" and row["engine"] == "sleep" and row["n"] >= 50


def _failing(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any) -> Any:
        raise RuntimeError("the engine broke\non two lines")

    monkeypatch.setattr(runner, "_measure", boom)


def test_a_failed_cell_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _failing(monkeypatch)
    assert main(QUICK) == 1
    captured = capsys.readouterr()
    (line,) = captured.out.splitlines()
    assert line.startswith("failed: bert_tiny-sleep-fp32-")
    assert ": RuntimeError: the engine broke on two lines (traceback=true prints" in line
    assert "Traceback" not in captured.err
    assert runner.traceback.__name__ == "traceback"  # the runner's own module again


def test_traceback_true_prints_it_and_the_row_keeps_the_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _failing(monkeypatch)
    assert main([*QUICK, "traceback=true", "format=json"]) == 1
    captured = capsys.readouterr()
    assert "Traceback (most recent call last)" in captured.err and "boom" in captured.err
    row = json.loads(captured.out)
    assert row["error_class"] == "RuntimeError" and row["error"].startswith("the engine broke")


def test_run_takes_one_cell(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*QUICK, "grid.axes.threads=[1,2]"]) == 2
    assert "run takes one cell; these overrides give 2: use sweep" in capsys.readouterr().err


def test_a_rank_groups_exit_code_is_runs_own(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = []

    def relaunched(cell: Any, argv: list[str]) -> int:
        asked.append(argv)
        return 7

    monkeypatch.setattr(rank_group, "run_as_rank_group", relaunched)
    assert main(QUICK) == 7
    assert asked == [QUICK]  # the same command, to run again under mpirun
    assert capsys.readouterr().out == ""  # rank 0 of the group printed it, not this process


def test_a_job_runs_its_cell_of_the_manifest_and_says_so_in_one_json_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = plan_from_overrides([*QUICK[1:], f"store.root={tmp_path}", "sweep_id=job"])
    uri = write_manifest(open_store(str(tmp_path)), plan)
    assert main(["cell", "--manifest", uri, "--index", "0"]) == 0
    said = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert said["cell_id"] == plan.cells[0].cell_id and said["status"] == "ok"
    # again: the cell has an ok row, so the job stands down and writes nothing
    assert main(["cell", "--manifest", uri, "--index", "0"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["cell_id"] == said["cell_id"] and "stood_down" in again
