"""plan and `--cfg job` through main: the verb's own switch never reaches Hydra, and the
composed config of the first cell is printed for the verbs that plan."""

from __future__ import annotations

from bench.cli import main


def test_plan_takes_cells_true_as_its_own(capsys) -> None:
    assert main(["plan", "engine=sleep", "cells=true"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:3] == ["index", "model", "engine"] for line in lines)  # the table


def test_cfg_job_prints_the_first_cells_config(capsys) -> None:
    assert main(["plan", "engine=sleep", "grid.axes.threads=[1,2]", "--cfg", "job"]) == 0
    captured = capsys.readouterr()
    assert "engine:\n  name: sleep" in captured.out and "threads: 1" in captured.out
    assert "(cell 1 of 2; `plan` lists them all)" in captured.err


def test_cfg_job_goes_only_with_the_verbs_that_plan(tmp_path, capsys) -> None:
    assert main(["ls", f"store.root={tmp_path}", "--cfg=job"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --cfg job goes with sweep, run or plan, not ls"
    )
