"""A real cell's phases, timed and measured apart: imports, load, memory, precision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.plan.grid import plan_from_overrides

QUICK = [
    "scenario.min_requests=20",
    "scenario.min_duration_s=0.2",
    "scenario.max_duration_s=2",
    "scenario.ci_target=0",
]


@pytest.mark.slow
def test_load_time_excludes_imports_whether_or_not_the_checkpoint_was_built(
    bench_cli, tmp_path: Path
) -> None:
    """The first run builds the checkpoint, the second finds it; load_s is the same short
    read both times (a tiny BERT: well under 0.5 s), and the imports are counted apart."""
    models = tmp_path / "fresh-models"
    rows = []
    for _ in range(2):
        proc = bench_cli("run", "model=bert_tiny", f"models_dir={models}", *QUICK, "format=json")
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows.append(json.loads(proc.stdout))
    built, found = rows
    assert built["checkpoint_build_s"] is not None and "checkpoint_build_s" not in found
    for row in rows:
        assert row["load_s"] <= 0.5, row["load_s"]
        assert row["import_s"] > row["load_s"]  # torch + transformers + modeling code
    # the host memory the model added, and a measurement peak that is at least what was held
    for row in rows:
        assert row["rss_after_load_mb"] >= row["rss_after_import_mb"] > 100
        assert row["model_rss_mb"] == pytest.approx(
            row["rss_after_load_mb"] - row["rss_after_import_mb"]
        )
        assert row["peak_rss_scope"] == "measurement"
        assert row["sync_scope"] == "host" and row["omp_wait_policy"]


def test_amp_bf16_on_cpu_keeps_fp32_weights_and_autocasts_the_call(models_dir: Path) -> None:
    """Mixed precision is not a cast: the weights stay fp32 and the matmuls run in bf16
    under torch.autocast, so a linear layer's output comes back bf16; the cast precision
    holds bf16 weights instead."""
    import torch

    from bench.engines.hf import HFEngine

    def engine(precision: str) -> HFEngine:
        cell = plan_from_overrides(
            ["model=bert_tiny", f"precision={precision}", f"models_dir={models_dir}"]
        ).cells[0]
        made = HFEngine(cell)
        made.import_libraries()
        made.prepare()
        made.load()
        return made

    amp, cast = engine("amp_bf16"), engine("bf16")
    assert {p.dtype for p in amp.model.parameters()} == {torch.float32}
    assert {p.dtype for p in cast.model.parameters()} == {torch.bfloat16}
    assert amp.infer(amp.make_batch()).start_logits.dtype == torch.bfloat16
    assert amp.describe()["precision_method"] == "autocast"
    assert cast.describe()["precision_method"] == "cast"
    fp32 = engine("fp32")
    assert fp32.infer(fp32.make_batch()).start_logits.dtype == torch.float32


def test_an_amp_row_on_cpu(models_dir: Path) -> None:
    from bench.cell.runner import run_cell

    cell = plan_from_overrides(
        ["model=bert_tiny", "precision=amp_bf16", f"models_dir={models_dir}", *QUICK]
    ).cells[0]
    row = run_cell(cell).row
    assert row["status"] == "ok", row.get("error")
    assert row["precision"] == "amp_bf16" and row["precision_method"] == "autocast"
