"""Local cells forked from a server that imported their libraries once: the imports leave the
cell's time, nothing else about the cell changes, and a broken server costs nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from bench.executors.forkserver import ForkServer, ForkServerError
from tests.conftest import run_cli

QUICK = [
    "model=bert_tiny",
    "scenario.min_requests=30",
    "scenario.min_duration_s=0.3",
    "scenario.max_duration_s=2",
    "scenario.ci_target=0",
]


def _rows(tmp_path: Path, sweep_id: str) -> pd.DataFrame:
    return pd.read_parquet(tmp_path / "results" / sweep_id / "aggregated.parquet")


def test_forked_cells_skip_the_imports_a_fresh_process_pays(tmp_path: Path) -> None:
    forked = run_cli(["sweep", *QUICK, "grid.axes.threads=[1,2]", "sweep_id=forked"], tmp_path)
    fresh = run_cli(
        ["sweep", *QUICK, "grid.axes.threads=[1]", "executor.fork_server=false", "sweep_id=fresh"],
        tmp_path,
    )
    assert forked.returncode == 0 and fresh.returncode == 0, forked.stderr + fresh.stderr
    forked_rows, fresh_rows = _rows(tmp_path, "forked"), _rows(tmp_path, "fresh")
    assert (forked_rows["status"] == "ok").all() and (fresh_rows["status"] == "ok").all()
    for info in forked_rows["engine_info"]:
        assert (
            json.loads(info)["fork_server_preload"]
            == "torch,transformers,transformers.modeling_utils"
        )
    assert "fork_server_preload" not in json.loads(fresh_rows["engine_info"][0])
    # the fresh process imports torch and transformers' loader (seconds); a forked cell only
    # its architecture's modeling module
    assert forked_rows["import_s"].max() < fresh_rows["import_s"].min() / 2, (
        forked_rows["import_s"].tolist(),
        fresh_rows["import_s"].tolist(),
    )
    # each forked cell is its own process: its own pid in its log, its own peak RSS
    assert forked_rows["peak_rss_mb"].notna().all()
    # the thread policy is the cell's own, as in a fresh process (2 clients: 1 torch thread)
    assert (
        sorted(forked_rows["torch_threads"])
        == sorted([max(1, len(os.sched_getaffinity(0)) // t) for t in (1, 2)])
        or forked_rows["cpus_busy_at_start"].max() > 0
    )  # a busy host gets fewer: see threads.py


def test_a_cell_past_its_timeout_is_killed_through_the_server(tmp_path: Path) -> None:
    proc = run_cli(
        [
            "sweep", "engine=sleep", "scenario.min_duration_s=30", "scenario.max_duration_s=30",
            "executor.timeout_s=3", "sweep_id=slow",
        ],
        tmp_path,
    )  # fmt: skip
    assert "] timeout " in proc.stderr, proc.stderr
    assert _rows(tmp_path, "slow")["status"].tolist() == ["timeout"]


def test_a_server_that_cannot_start_says_so() -> None:
    with pytest.raises(ForkServerError, match=r"did not start|exited"):
        ForkServer(["no_such_module_anywhere"])


def test_a_sweep_whose_server_fails_runs_its_cells_as_fresh_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a sitecustomize that breaks only the server's start: the cells still run, unforked
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import sys\nif 'bench.executors.forkserver' in sys.orig_argv:\n    raise SystemExit(3)\n"
    )
    env = {"PYTHONPATH": f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = run_cli(["sweep", "engine=sleep", *QUICK[1:], "sweep_id=fallback"], tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "fork server:" in proc.stderr and "fresh processes" in proc.stderr
    rows = _rows(tmp_path, "fallback")
    assert rows["status"].tolist() == ["ok"]
    assert "fork_server_preload" not in json.loads(rows["engine_info"][0])
