"""Every task runs end to end on CPU through `bench run`: image models (a ResNet and a ViT
built from config) at images/s, T5 seq2seq generation with TTFT and TPOT that add up to its
end-to-end latency, and a real model behind the server limits, whose ramp finds the first
concurrency with a failed request."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

SHORT = [
    "scenario.min_duration_s=0.5",
    "scenario.max_duration_s=2",
    "scenario.warmup_s=0",
    "scenario.ci_target=0",
]


def _row(bench_cli, models_dir, *overrides: str) -> dict:
    proc = bench_cli("run", *overrides, f"models_dir={models_dir}", "format=json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads(proc.stdout)
    assert row["status"] == "ok", row.get("error")
    return row


@pytest.mark.parametrize(("model", "side"), [("resnet_tiny", 64), ("vit_tiny", 64)])
def test_image_models_run_at_images_per_second(bench_cli, models_dir, model, side) -> None:
    row = _row(bench_cli, models_dir, f"model={model}", "batch_size=2", *SHORT)
    assert row["task"] == "classify_image" and row["image_size"] == side
    assert row["seq_len"] == 0 and row.get("tokens_per_s") is None
    # images/s: completed requests x batch / window
    assert row["inferences_per_s"] == pytest.approx(2 * row["n"] / row["window_s"], rel=1e-6)
    assert row["usd_per_million_inferences"] > 0


def test_t5_seq2seq_reports_ttft_and_tpot_that_add_up(bench_cli, models_dir) -> None:
    row = _row(bench_cli, models_dir, "model=t5_tiny", *SHORT)
    assert row["task"] == "seq2seq" and row["new_tokens"] == 8
    ttft, tpot, e2e = row["ttft_ms_p50"], row["tpot_ms_p50"], row["latency_ms_p50"]
    assert 0 < ttft < e2e
    # per request e2e = TTFT + (n_out - 1) x TPOT; the medians of the three nearly agree
    assert ttft + 7 * tpot == pytest.approx(e2e, rel=0.2)
    assert row["tokens_per_s"] == pytest.approx(8 * row["inferences_per_s"], rel=1e-6)


def test_a_ramp_of_a_real_model_with_a_timeout_finds_the_first_failure(
    bench_cli, models_dir
) -> None:
    row = _row(
        bench_cli,
        models_dir,
        "model=bert_tiny",
        "batch_size=1",
        "scenario=ramp",
        "scenario.stages=[1,2,4,8,16,32,64]",
        "scenario.stage_duration_s=1",
        "scenario.stage_warmup_s=0.3",
        "scenario.warmup_s=0",
        "scenario.server_workers=1",  # one request at a time: the rest queue, FIFO
        "scenario.request_timeout_s=0.04",
    )
    stages = json.loads(row["stages_json"])
    first = row["first_failure_concurrency"]
    assert first is not None and first > 1, stages
    failing = next(s for s in stages if s["concurrency"] == first)
    assert failing["errors"] > 0 and not failing["meets_sla"]
    assert all(s["errors"] == 0 for s in stages if s["concurrency"] < first)
    # queueing behind one worker: the median latency grows with the concurrency
    p50s = [s["p50_ms"] for s in stages if s["concurrency"] < first]
    assert p50s == sorted(p50s)
