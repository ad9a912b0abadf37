"""The seed studies' grids: each one's `plan` renders with its cost, and a CPU miniature of
each (tiny models of the same tasks, instance local-cpu, the other axes as the grid has them,
some cut to one value to keep CI short) runs with every cell `ok` or an honest `unsupported`."""

from __future__ import annotations

import pandas as pd
import pytest

SEED_GRIDS = ("seed004_g5_vs_g4dn", "seed003_mme", "seed002_lmi", "seed001_ft")
SHORT = [
    "scenario.warmup_requests=2",
    "scenario.warmup_s=0",
    "scenario.min_requests=10",
    "scenario.min_duration_s=0.3",
    "scenario.max_duration_s=2",
    "scenario.ci_target=0",
]
MINIATURES = {
    "seed004_g5_vs_g4dn": [
        "grid.axes.model=[bert_tiny,resnet_tiny]",
        "grid.axes.instance=[local-cpu]",
        "grid.axes.batch_size=[8]",
    ],
    "seed003_mme": [  # two short user stages over the models that fit in 40 MiB
        "grid.axes.model=[resnet_tiny,bert_tiny]",
        "grid.axes.instance=[local-cpu]",
        "scenario.user_stages=[{users:1,spawn_rate:10,duration_s:1},{users:2,spawn_rate:10,duration_s:1}]",
        "scenario.warmup_s=0",
        "scenario.think_min_s=0",
        "scenario.think_max_s=0",
        "scenario.memory_cap_mb=40",
    ],
    # the GPU-sized tensor-parallel degrees and precisions pinned to what a CPU runs
    "seed002_lmi": ["model=opt_tiny", "instance=local-cpu", "precision=bf16", "tp_degree=1"],
    "seed001_ft": ["model=t5_tiny", "instance=local-cpu", "precision=bf16", "tp_degree=1"],
}


@pytest.mark.parametrize("grid", SEED_GRIDS)
def test_the_seed_grid_plans_with_its_cost(bench_cli, grid) -> None:
    proc = bench_cli(
        "plan", f"+grid={grid}", "executor=aws_batch"
    )  # GPU studies: planned for Batch
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "total: $" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("grid", SEED_GRIDS)
def test_the_cpu_miniature_runs(bench_cli, models_dir, tmp_path, grid) -> None:
    proc = bench_cli(
        "sweep",
        f"+grid={grid}",
        *MINIATURES[grid],
        *SHORT,
        f"models_dir={models_dir}",
        f"sweep_id=mini-{grid}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    frame = pd.read_parquet(tmp_path / "results" / f"mini-{grid}" / "aggregated.parquet")
    assert set(frame["status"]) <= {"ok", "unsupported"}, frame[["cell_id", "error"]]
    assert (frame["status"] == "ok").any()
    assert frame.loc[frame["status"] == "unsupported", "error"].str.len().gt(10).all()
    if grid == "seed003_mme":  # PyTorch runs here; the TensorRT provider needs CUDA
        assert set(frame["scenario"]) == {"multi_model"}
        assert frame["task"].tolist().count("classify_image") == 2
        eager = frame[frame["engine"] == "hf"]
        assert (eager["status"] == "ok").all() and (eager["max_models_loaded"] >= 1).all()
        tensorrt = frame[frame["engine"] == "onnxruntime"]
        assert (tensorrt["status"] == "unsupported").all() and len(tensorrt) == 2
