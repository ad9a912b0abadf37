"""A failing cell is a row, never a crashed sweep; bad input is one line, exit 2, no files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

GRID_WITH_BROKEN_CELL = """# @package _global_
grid:
  name: broken
  axes:
    model: [bert_tiny, bert_broken]
    engine: [hf]
    batch_size: [1]
scenario:
  warmup_requests: 1
  warmup_s: 0
  min_requests: 5
  min_duration_s: 0.1
  ci_target: 0.0
  max_duration_s: 5.0
"""


@pytest.mark.slow
def test_failing_cell_becomes_a_row_and_the_others_complete(
    conf_copy: Path, bench_cli, tmp_path: Path, models_dir: Path
) -> None:
    # 1024 positions on a model with 512: fails inside the model at run time.
    broken = (conf_copy / "model" / "bert_tiny.yaml").read_text()
    broken = broken.replace("name: bert_tiny", "name: bert_broken").replace(
        "seq_len: 128", "seq_len: 1024"
    )
    (conf_copy / "model" / "bert_broken.yaml").write_text(broken)
    (conf_copy / "grid" / "broken.yaml").write_text(GRID_WITH_BROKEN_CELL)

    proc = bench_cli("sweep", "+grid=broken", f"models_dir={models_dir}")
    assert proc.returncode == 1, proc.stderr
    frame = pd.read_parquet(next(tmp_path.glob("results/broken-*/aggregated.parquet")))
    by_model = frame.set_index("model")
    assert by_model.loc["bert_tiny", "status"] == "ok"
    assert by_model.loc["bert_broken", "status"] == "failed"
    assert by_model.loc["bert_broken", "error_class"]
    assert by_model.loc["bert_broken", "error"]
    assert "failed: bert_broken" in proc.stdout


def test_cell_past_its_timeout_becomes_a_timeout_row(bench_cli, tmp_path: Path) -> None:
    proc = bench_cli(
        "sweep",
        "engine=sleep",
        "engine.service_ms=20000",
        "scenario.warmup_requests=0",
        "scenario.warmup_s=0",
        "executor.timeout_s=3",
        "sweep_id=slow",
    )
    assert proc.returncode == 1
    frame = pd.read_parquet(tmp_path / "results" / "slow" / "aggregated.parquet")
    assert frame["status"].tolist() == ["timeout"]
    assert "executor.timeout_s=3" in frame["error"][0]
    assert (tmp_path / "results" / "slow" / "logs").is_dir()


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        ("model=gpt9", "model='gpt9'", "bert_tiny"),
        ("engine=tgi", "engine='tgi'", "sleep"),
        ("+grid=nope", "grid='nope'", "smoke"),
        ("precision=fp8", "precision='fp8'", "bf16"),
        ("batch_size=0", "batch_size=0", "from 1 to"),
        ("threads=0", "threads=0", "from 1 to"),
        ("tp_degree=0", "tp_degree=0", "from 1 to"),
        ("instance=x1.huge", "instance='x1.huge'", "g5.4xlarge"),
        ("batchsize=4", "batchsize='4'", "no such config key"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    bench_cli, tmp_path: Path, override: str, key: str, allowed: str
) -> None:
    proc = bench_cli("sweep", "+grid=smoke", override)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert key in lines[0] and allowed in lines[0]
    assert not (tmp_path / "results").exists()


def test_help_lists_each_verb_once_with_its_own_line(bench_cli) -> None:
    """The verbs listed are exactly the CLI's, each on a line of its own with its own help
    (a word found anywhere in the page would pass for a verb another verb's help mentions)."""
    from bench.cli.help_text import VERBS_HELP

    proc = bench_cli("--help")
    assert proc.returncode == 0
    listed = re.findall(r"^    (\w+)\s{2,}(\S.*)$", proc.stdout, flags=re.M)
    assert sorted(verb for verb, _ in listed) == sorted(VERBS_HELP)
    for verb, first_words in listed:
        assert VERBS_HELP[verb].startswith(first_words.strip()), (verb, first_words)


def test_run_prints_one_row(bench_cli) -> None:
    proc = bench_cli(
        "run",
        "engine=sleep",
        "engine.service_ms=1",
        "scenario.min_duration_s=0.2",
        "scenario.ci_target=0",
        "format=json",
    )
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert row["status"] == "ok" and row["engine"] == "sleep" and row["n"] >= 200


def test_cell_takes_its_index_from_the_scheduler(bench_cli, tmp_path: Path) -> None:
    sweep = bench_cli(
        "sweep",
        "engine=null",
        "grid.axes.threads=[1,2]",
        "scenario.min_duration_s=0.1",
        "scenario.ci_target=0",
        "sweep_id=idx",
    )
    assert sweep.returncode == 0, sweep.stderr
    manifest = tmp_path / "results" / "idx" / "manifest.json"
    (tmp_path / "results" / "idx" / "cells").rename(tmp_path / "old-cells")
    proc = bench_cli("cell", "--manifest", str(manifest), env={"AWS_BATCH_JOB_ARRAY_INDEX": "1"})
    assert proc.returncode == 0, proc.stderr
    cell_id = json.loads(manifest.read_text())["cells"][1]["cell_id"]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["cell_id"] == cell_id
    assert [p.stem for p in (tmp_path / "results" / "idx" / "cells").iterdir()] == [cell_id]
