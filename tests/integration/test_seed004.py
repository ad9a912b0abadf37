"""Seed 004 end to end on CPU: a short sweep of the study's shape (a tiny BERT and the tiny
YOLOS detector, two instance labels priced as g5.4xlarge and g4dn.4xlarge, more than one
client thread and batch size) reports every plot of the study and its "G5 over G4dn" table,
throughput in the study's units; a bad `ratio=` is one line."""

from __future__ import annotations

import pandas as pd
import pytest

SWEEP = "seed004-mini"
SHORT = [
    "grid.axes.model=[bert_tiny,yolos_mini]",
    "grid.axes.precision=[fp32]",
    "grid.axes.batch_size=[1,8]",
    "grid.axes.threads=[1,2]",
    "scenario.min_requests=5",
    "scenario.min_duration_s=0.3",
    "scenario.max_duration_s=1",
]
PLOTS = ("throughput-vs-p99", "throughput-vs-p95", "vs-batch-size", "cost-vs-batch-size")


@pytest.mark.slow
def test_a_seed004_shaped_sweep_reports_its_curves_and_ratio_table(bench_cli, models_dir, tmp_path):
    proc = bench_cli(
        "sweep", "+grid=seed004_cpu", *SHORT, f"models_dir={models_dir}", f"sweep_id={SWEEP}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "results" / SWEEP
    frame = pd.read_parquet(folder / "aggregated.parquet")
    assert len(frame) == 16 and set(frame["status"]) == {"ok"}, frame[["cell_id", "error"]]
    prices = frame.groupby("instance")["price_per_hour"].first().to_dict()
    assert prices == {"cpu-g5": 1.624, "cpu-g4dn": 1.204}
    assert dict(zip(frame["model"], frame["task"], strict=True)) == {
        "bert_tiny": "encode",
        "yolos_mini": "classify_image",  # a detector: one forward pass over images
    }

    proc = bench_cli("report", SWEEP)  # two instance types: the ratio table by itself
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = folder / "report"
    for model in ("bert_tiny", "yolos_mini"):
        for plot in PLOTS:
            assert (report / f"{model}-{plot}.png").read_bytes()[:4] == b"\x89PNG", (model, plot)
    markdown = (report / "report.md").read_text()
    ratios = markdown.split("## cpu-g5 over cpu-g4dn")[1].split("## Plots")[0]
    assert "cpu-g5 over cpu-g4dn, 4 configuration(s) at 1 client thread(s)" in ratios
    assert "| sentences/s |" in ratios and "| images/s |" in ratios
    assert "| throughput cpu-g5 | throughput cpu-g4dn | throughput x |" in ratios

    assert "## cpu-g5 over" not in bench_cli("report", SWEEP, "ratio=off").stdout
    bad = bench_cli("report", SWEEP, "ratio=cpu-g5/g4dn.4xlarge")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "g4dn.4xlarge has no ok rows here (has: cpu-g5, cpu-g4dn)" in bad.stderr
    malformed = bench_cli("report", SWEEP, "ratio=cpu-g5")
    assert malformed.returncode == 2 and "INSTANCE_A/INSTANCE_B" in malformed.stderr
