"""Users' own config, the way Hydra users keep it: a folder outside the repo with their
models, grids and instance types, given with one flag; `--cfg job`; typos that are errors,
never a silently different run; inline model overrides that replace; hub ids offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

MY_MODEL = {
    "name": "my_bert",
    "family": "bert",
    "task": "encode",
    "auto_class": "AutoModelForSequenceClassification",
    "seq_len": 16,
    "new_tokens": 0,
    "checkpoint": None,
    "architecture": {
        "model_type": "bert",
        "vocab_size": 1000,
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    },
}
MY_BOX = {
    "type": "my-box",
    "gpu_model": None,
    "gpus": 0,
    "gpu_memory_gib": 0,
    "compute_capability": None,
    "vcpus": 2,
    "memory_gib": 8,
    "usd_per_hour": 0.05,
    "price_date": "2026-12-01",
}


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """A config folder outside the repo: a model, and a grid that adds an instance type."""
    folder = tmp_path / "myconf"
    (folder / "model").mkdir(parents=True)
    (folder / "grid").mkdir()
    (folder / "model" / "my_bert.yaml").write_text(yaml.safe_dump(MY_MODEL))
    grid = {
        "grid": {"name": "my_grid", "axes": {"model": ["my_bert"], "instance": ["my-box"]}},
        "catalog": {"extra": [MY_BOX]},
        "scenario": {"min_requests": 5, "min_duration_s": 0.2, "warmup_s": 0, "ci_target": 0},
    }
    text = "# @package _global_\n" + yaml.safe_dump(grid)
    (folder / "grid" / "my_grid.yaml").write_text(text)
    return folder


@pytest.mark.slow
def test_a_users_grid_and_model_run_with_one_flag(bench_cli, user_dir, tmp_path, models_dir):
    proc = bench_cli(
        "sweep",
        "+grid=my_grid",
        "--config-dir",
        str(user_dir),
        f"models_dir={models_dir}",
        "sweep_id=mine",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import pandas as pd

    frame = pd.read_parquet(tmp_path / "results" / "mine" / "aggregated.parquet")
    assert frame[["model", "instance", "status"]].values.tolist() == [["my_bert", "my-box", "ok"]]
    assert frame["price_per_hour"].iloc[0] == pytest.approx(0.05)


def test_hydra_searchpath_works_the_same(bench_cli, user_dir):
    proc = bench_cli("plan", "+grid=my_grid", f"hydra.searchpath=[file://{user_dir}]")
    assert proc.returncode == 0, proc.stderr
    assert "my_bert" in proc.stdout and "my-box" in proc.stdout


def test_cfg_job_prints_the_first_cells_config_and_runs_nothing(bench_cli, user_dir, tmp_path):
    proc = bench_cli("run", "--cfg", "job", "model=my_bert", f"--config-dir={user_dir}")
    assert proc.returncode == 0, proc.stderr
    cell = yaml.safe_load(proc.stdout)
    assert cell["model"]["architecture"] == MY_MODEL["architecture"]
    assert cell["instance"]["type"] == "local-cpu"
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["plan", "+gird=smoke"], "gird"),
        (["plan", "+grid=my_grid"], "grid='my_grid' is not allowed"),  # no --config-dir
        (["plan", "+model.vocab=3"], "model.vocab"),
        (["plan", "--config-dir", "/no/such/folder"], "--config-dir"),
        (["run", "--cfg", "hydra"], "--cfg"),
        (["plan", "hydra.searchpath=[pkg://x]"], "hydra.searchpath"),
    ],
)
def test_typos_are_one_line_errors(bench_cli, tmp_path, args, fragment):
    proc = bench_cli(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert not (tmp_path / "results").exists()


def test_a_name_in_both_trees_is_refused(bench_cli, user_dir):
    (user_dir / "model" / "bert_tiny.yaml").write_text(yaml.safe_dump(MY_MODEL))
    proc = bench_cli("plan", "model=bert_tiny", "--config-dir", str(user_dir))
    assert proc.returncode == 2
    assert "defined twice" in proc.stderr and "bert_tiny" in proc.stderr


def test_an_inline_architecture_replaces_the_models(bench_cli):
    bloom = "{model_type: bloom, hidden_size: 14336, n_layer: 70, n_head: 112, vocab_size: 250880}"
    proc = bench_cli(
        "run", "--cfg", "job", "model=gpt_neox_20b", f"model.architecture={bloom}"
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    arch = yaml.safe_load(proc.stdout)["model"]["architecture"]
    assert set(arch) == {"model_type", "hidden_size", "n_layer", "n_head", "vocab_size"}


def test_a_hub_id_offline_is_one_clear_error(bench_cli, models_dir):
    proc = bench_cli(
        "run",
        "format=json",
        "model=bert_tiny",
        "model.checkpoint=roberta-large",
        f"models_dir={models_dir}",
        env={"HF_HUB_OFFLINE": "1"},  # never reach the network from a test
    )
    row = json.loads(proc.stdout)
    assert row["status"] == "failed"
    assert "model.checkpoint='roberta-large'" in row["error"]
    assert "Hugging Face Hub" in row["error"]
