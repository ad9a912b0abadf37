"""The smoke grid end to end on CPU, as the README runs it: sweep -> Parquet -> pandas.
Then resume: a second sweep runs nothing; deleting one cell's row re-runs only that cell."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> dict:
    work = tmp_path_factory.mktemp("smoke")
    args = ["sweep", "+grid=smoke", f"models_dir={models_dir}"]
    first = run_cli(args, work)
    aggregated = sorted(work.glob("results/smoke-*/aggregated.parquet"))
    return {"work": work, "args": args, "first": first, "aggregated": aggregated}


def _ran(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """Cell ids the sweep's progress display says it ran: its finished lines
    ("[k/N] STATUS CELL (...)"), not a cell's phase lines ("[k/N] CELL: PHASE ...")."""
    lines = [line for line in proc.stderr.splitlines() if line.startswith("[")]
    finished = [line.split("]", 1)[1].split() for line in lines]
    return [words[1] for words in finished if len(words) > 1 and not words[0].endswith(":")]


def test_smoke_sweep_leaves_one_ok_row_per_cell(smoke: dict) -> None:
    assert smoke["first"].returncode == 0, smoke["first"].stderr[-3000:]
    assert len(smoke["aggregated"]) == 1
    frame = pd.read_parquet(smoke["aggregated"][0])
    assert len(frame) == 12 and frame["cell_id"].is_unique
    assert (frame["status"] == "ok").all(), frame[["cell_id", "error"]]
    assert set(frame["model"]) == {"bert_tiny", "opt_tiny"}
    assert set(frame["precision"]) == {"fp32", "bf16"}
    assert (frame["latency_ms_p50"] <= frame["latency_ms_p90"]).all()
    assert (frame["latency_ms_p90"] <= frame["latency_ms_p99"]).all()
    assert (frame["inferences_per_s"] > 0).all() and (frame["tokens_per_s"] > 0).all()
    assert (frame["n"] >= 30).all() and (frame["load_s"] > 0).all()
    # load_s is the read alone, the imports counted apart, built checkpoint or not
    assert (frame["load_s"] <= 0.5).all(), frame[["cell_id", "load_s"]]
    # the fork server imported torch and transformers before forking each cell: a cell
    # imports only its architecture's modeling code (a fresh process: seconds)
    assert frame["engine_info"].str.contains("fork_server_preload").all()
    assert (frame["import_s"] < 1.5).all(), frame[["cell_id", "import_s"]]
    # the grid is long enough for most cells to reach a stability verdict
    assert set(frame["stability"]) <= {"stable", "drifting", "insufficient"}
    assert (frame["stability"] != "insufficient").sum() >= 8, frame[["cell_id", "stability_reason"]]
    # the printed table explains the words it uses, in one line each
    printed = smoke["first"].stdout
    for word in set(frame["stability"]):
        assert f"  {word}: " in printed
    expected_cost = frame["price_per_hour"] / 3600 / frame["inferences_per_s"] * 1e6
    pd.testing.assert_series_equal(
        frame["usd_per_million_inferences"], expected_cost, check_names=False, rtol=1e-9
    )
    decoders = frame[frame["task"] == "generate"]
    tokens = decoders["inferences_per_s"] * decoders["new_tokens"]
    pd.testing.assert_series_equal(decoders["tokens_per_s"], tokens, check_names=False)
    assert frame["started_at"].dt.tz is not None and (frame["params"] > 0).all()


def test_plan_prices_the_next_smoke_sweep_from_the_last_ones_measured_overhead(smoke: dict):
    """The fixed 120 s a cell guessed 0.54 h for a sweep that takes minutes; measured from
    the store's last smoke sweep, the overhead is seconds a cell, so even the estimate's most
    is under what the fixed guess made its least. (How close the estimate comes to the
    sweep's wall time is a reading of the host: docs/benchmarks.md.)"""
    proc = run_cli(["plan", "+grid=smoke", "format=json"], smoke["work"])
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["cell_overhead_source"].startswith("measured: median of 12 ok rows")
    least, most = report["hours_total"] * 3600, report["hours_total_max"] * 3600
    assert least <= most
    fixed_guess_least = 12 * (120 + 2)  # the smoke grid's 12 cells, each 120 s + a 2 s window
    assert most < fixed_guess_least, (least, most)
    text = run_cli(["plan", "+grid=smoke"], smoke["work"]).stdout
    assert "overhead: measured" in text and " .. $" in text


def test_report_of_the_smoke_sweep(smoke: dict) -> None:
    sweep_id = smoke["aggregated"][0].parent.name
    proc = run_cli(["report", sweep_id, "sla.p99_ms=50"], smoke["work"])
    assert proc.returncode == 0, proc.stderr
    folder = smoke["aggregated"][0].parent / "report"
    assert "data:image/png;base64," in (folder / "index.html").read_text()
    frame = pd.read_parquet(smoke["aggregated"][0])
    models = sorted(set(frame.loc[frame["status"] == "ok", "model"]))
    # per model: throughput vs P99 and vs P95 (a curve per batch size over 1 and 2 threads),
    # latency and throughput vs batch, cost vs batch (no ramp); one load-time plot for the sweep
    plots = ("throughput-vs-p99", "throughput-vs-p95", "vs-batch-size", "cost-vs-batch-size")
    expected = {"load-time-per-engine.png"} | {
        f"{model}-{plot}.png" for model in models for plot in plots
    }
    assert {path.name for path in folder.glob("*.png")} == expected
    assert "## Recommendation (P99 <= 50 ms)" in (folder / "report.md").read_text()


def test_samples_hold_every_measured_request(smoke: dict) -> None:
    sweep_dir = smoke["aggregated"][0].parent
    frame = pd.read_parquet(smoke["aggregated"][0])
    for row in frame.itertuples():
        samples = pd.read_parquet(sweep_dir / "samples" / row.cell_id / f"{row.attempt_id}.parquet")
        assert len(samples) == row.n
        # the row's percentiles are nearest-rank ones (numpy's inverted_cdf): exactly those
        for q, column in ((50, "latency_ms_p50"), (90, "latency_ms_p90"), (99, "latency_ms_p99")):
            exact = np.percentile(samples["latency_ns"], q, method="inverted_cdf") / 1e6
            assert exact == pytest.approx(getattr(row, column), rel=1e-12), column


def test_rerun_runs_nothing_and_deleting_one_row_reruns_only_it(smoke: dict) -> None:
    again = run_cli(smoke["args"], smoke["work"])
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 to run, 12 already ok" in again.stderr
    assert _ran(again) == []

    sweep_dir = smoke["aggregated"][0].parent
    victim = sorted((sweep_dir / "cells").glob("*/*.ok.parquet"))[5]  # a cell's one attempt
    victim.unlink()
    third = run_cli(smoke["args"], smoke["work"])
    assert third.returncode == 0, third.stderr[-2000:]
    assert _ran(third) == [victim.parent.name]
    assert len(list(victim.parent.glob("*.ok.parquet"))) == 1  # its new attempt's row
    assert len(pd.read_parquet(smoke["aggregated"][0])) == 12
