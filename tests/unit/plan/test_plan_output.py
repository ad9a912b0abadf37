"""`bench plan`: a summary first (cells by decision, the sweep's own cost, where the per-cell
overhead comes from), the table of cells only with cells=true, everything with format=json; a
given plan.cell_overhead_s in place of Batch's default; and a plan that imports neither torch
nor transformers once it has counted a model. (The overhead measured from earlier sweeps:
test_history.py; the architecture figures kept on disk: test_arch_cache.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main

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
