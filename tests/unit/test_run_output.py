"""`bench run` prints a short summary of its cell's row (the row itself with format=json);
a cell that fails is one line, its traceback on stderr only with traceback=true."""

from __future__ import annotations

import json
from typing import Any

import pytest

import bench.cell.runner as runner
from bench.cli import main
from bench.results.run_summary import run_summary

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


def test_the_summary_of_rows_that_are_not_ok() -> None:
    row = {"status": "unsupported", "cell_id": "c", "error_class": "Unsupported", "error": "no"}
    assert run_summary(row) == "unsupported: c: Unsupported: no"
    generation = {
        "status": "ok",
        "cell_id": "c",
        "n": 3,
        "latency_ms_p99_lo": 1.5,
        "ttft_ms_p99": 4.0,
        "stability": "insufficient",
        "stability_reason": "too few",
    }
    lines = run_summary(generation).splitlines()
    assert "ttft_p99_ms" in lines[1] and "1.5-?" in lines[2]
    assert lines[3] == "  stability: too few"
