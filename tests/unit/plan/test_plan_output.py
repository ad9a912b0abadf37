"""`bench plan`: a summary first (cells by decision, the sweep's own cost, where the per-cell
overhead comes from), the table of cells only with cells=true, everything with format=json;
its overhead for AWS Batch from Batch rows in the store, else Batch's own default; and the
architecture figures it reads through transformers kept on disk, so a plan imports neither
torch nor transformers once it has counted a model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import bench.plan.feasibility as feasibility
from bench.cli import main
from bench.plan.grid import plan_from_overrides
from bench.plan.history import DEFAULT_OVERHEAD_S, cell_overhead
from bench.store import open_store

BERT_G5 = ["plan", "+grid=bert_g5", "executor=aws_batch"]


def _plan(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main([*args]) == 0
    return capsys.readouterr().out


def test_the_summary_comes_without_the_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _plan(capsys, *BERT_G5, f"store.root={tmp_path}")
    lines = out.splitlines()
    assert lines[0].startswith("plan bert_g5-") and "240 cells of grid bert_g5" in lines[0]
    assert "executor aws_batch" in lines[0]
    assert "  batch_size: 1, 4, 8, 16, 32" in lines and "decisions: run 240" in lines
    assert any(line.startswith("total: $") and " .. $" in line for line in lines)
    assert len(lines) < 30 and not any(line.lstrip().startswith("index") for line in lines)
    assert "cells=true" in lines[-1] and "format=json" in lines[-1]


def test_cells_true_adds_a_line_per_cell_under_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _plan(capsys, *BERT_G5, "cells=true", f"store.root={tmp_path}")
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("index"))
    assert lines[0].startswith("plan bert_g5-") and header > 5  # the summary first
    assert len(lines) - header - 1 == 240
    assert main([*BERT_G5, "cells=yes"]) == 2
    assert capsys.readouterr().err == "error: cells='yes' is not allowed; must be true or false\n"


def test_format_json_keeps_every_cell_and_the_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = json.loads(_plan(capsys, *BERT_G5, "format=json", f"store.root={tmp_path}"))
    assert len(report["cells"]) == 240 and report["decisions"] == {"run": 240}
    assert report["grid"] == "bert_g5" and report["executor"] == "aws_batch"


def _sweep(root: Path, sweep_id: str, executor: str, in_job_s: float, rows: int = 3) -> None:
    """A collected sweep in a local store: a manifest and ok rows that spent `in_job_s`
    beyond their 10 s window."""
    import polars as pl

    folder = root / sweep_id
    folder.mkdir(parents=True)
    created = datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat()
    manifest = {"grid": "g", "created_at": created, "executor": {"name": executor}, "cells": []}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    starts = [start + timedelta(minutes=10 * i) for i in range(rows)]
    pl.DataFrame(
        {
            "status": ["ok"] * rows,
            "started_at": starts,
            "finished_at": [s + timedelta(seconds=10 + in_job_s) for s in starts],
            "window_s": [10.0] * rows,
        }
    ).write_parquet(folder / "aggregated.parquet")


def test_batch_overhead_comes_from_batch_rows_not_a_local_sweep(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    _sweep(tmp_path, "local-cpu-sweep", "local", in_job_s=2.0)
    found = cell_overhead(store, "aws_batch", serial=False, fallback_s=120.0)
    assert found.seconds == DEFAULT_OVERHEAD_S["aws_batch"] == 300.0
    assert found.source.startswith("the aws_batch default (image pull, container start")
    assert "plan.cell_overhead_s=S sets another" in found.source
    _sweep(tmp_path, "on-batch", "aws_batch", in_job_s=95.0)
    found = cell_overhead(store, "aws_batch", serial=False, fallback_s=120.0)
    assert found.seconds == pytest.approx(95.0) and found.rows == 3
    assert found.source.startswith("measured: median of 3 ok rows of aws_batch sweeps on-batch")


def test_a_given_plan_cell_overhead_replaces_the_batch_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    given = ["format=json", f"store.root={tmp_path}", "plan.cell_overhead_s=60"]
    report = json.loads(_plan(capsys, *BERT_G5, *given))
    assert report["cell_overhead_s"] == 60 and report["cell_overhead_source"].startswith(
        "plan.cell_overhead_s: no ok rows of an earlier aws_batch sweep"
    )
    report = json.loads(_plan(capsys, *BERT_G5, "format=json", f"store.root={tmp_path}"))
    assert report["cell_overhead_s"] == 300
    local = json.loads(_plan(capsys, "plan", "format=json", f"store.root={tmp_path}"))
    assert local["cell_overhead_s"] == 120  # the local executor has no default of its own


def test_a_models_figures_are_counted_once_then_read_from_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.plan.memory_estimate as memory_estimate

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (cell,) = plan_from_overrides(["model=bert_tiny", "instance=g5.xlarge"]).cells
    feasibility._params.cache_clear()
    feasibility._shape.cache_clear()
    first = feasibility.cell_estimate(cell)
    assert (tmp_path / "bench" / "architectures.json").is_file()

    def never(*args: object) -> None:
        raise AssertionError("counted again")

    monkeypatch.setattr(memory_estimate, "count_parameters", never)
    monkeypatch.setattr(memory_estimate, "architecture_shape", never)
    feasibility._params.cache_clear()
    feasibility._shape.cache_clear()
    assert feasibility.cell_estimate(cell) == first
    feasibility._params.cache_clear()
    feasibility._shape.cache_clear()


def test_an_unwritable_cache_costs_only_the_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bench").write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (cell,) = plan_from_overrides(["model=bert_tiny", "instance=g5.xlarge"]).cells
    feasibility._params.cache_clear()
    assert feasibility.model_parameters(cell.model) > 0
    feasibility._params.cache_clear()


def test_a_planned_grid_imports_neither_torch_nor_transformers_once_counted(
    tmp_path: Path,
) -> None:
    """Counting on the meta device was 4 of the 4.5 s `plan +grid=bert_g5` took."""
    code = (
        "import sys\nfrom bench.cli import main\n"
        f"code = main({[*BERT_G5, f'store.root={tmp_path}']!r})\n"
        "print(code, 'torch' in sys.modules, 'transformers' in sys.modules, file=sys.stderr)"
    )
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    for imports in ("0 True True", "0 False False"):  # counted, then read from the cache
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            check=False,
            timeout=300,
        )
        assert done.stderr.strip().splitlines()[-1] == imports, done.stderr[-2000:]
