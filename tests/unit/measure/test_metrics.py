"""Metric formulas against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from bench.measure.loadgen import LoadResult
from bench.measure.metrics import (
    latency_summary,
    nearest_rank_ms,
    summarize,
    tokens_per_inference,
    usd_per_million,
)
from bench.plan.grid import plan_from_overrides

MS = 1_000_000  # ns per ms


def _ns(ms_values) -> np.ndarray:
    return (np.asarray(ms_values, dtype=np.int64) * MS).astype(np.int64)


def test_nearest_rank_on_1_to_100_ms():
    latencies = _ns(range(1, 101))
    rng = np.random.default_rng(0)
    rng.shuffle(latencies)  # order must not matter
    assert nearest_rank_ms(latencies, 50) == 50.0
    assert nearest_rank_ms(latencies, 90) == 90.0
    assert nearest_rank_ms(latencies, 95) == 95.0
    assert nearest_rank_ms(latencies, 99) == 99.0
    assert nearest_rank_ms(latencies, 100) == 100.0


def test_nearest_rank_on_10_samples():
    latencies = _ns([7, 3, 9, 1, 5, 10, 2, 8, 4, 6])
    assert nearest_rank_ms(latencies, 99) == 10.0  # rank ceil(9.9) = 10: the max
    assert nearest_rank_ms(latencies, 90) == 9.0  # rank 9
    assert nearest_rank_ms(latencies, 50) == 5.0  # rank 5, never interpolated
    assert nearest_rank_ms(latencies, 51) == 6.0  # rank ceil(5.1) = 6


def test_nearest_rank_is_always_a_sample():
    latencies = _ns([10, 20, 30, 40])
    assert nearest_rank_ms(latencies, 50) == 20.0
    assert nearest_rank_ms(latencies, 60) == 30.0  # rank ceil(2.4) = 3
    assert nearest_rank_ms(latencies, 99) == 40.0


def test_nearest_rank_keeps_sub_ms_resolution():
    assert nearest_rank_ms(np.array([1_500_000], dtype=np.int64), 50) == 1.5


def test_usd_per_million_design_example():
    # g5.4xlarge at $1.624/h serving 723 inferences/s costs $0.62 per million
    assert usd_per_million(1.624, 723) == pytest.approx(0.6239, abs=1e-4)
    assert usd_per_million(1.624, 723) == pytest.approx(1.624 / 3600 / 723 * 1e6)


def test_usd_per_million_scales():
    assert usd_per_million(3.6, 1) == pytest.approx(1000.0)
    assert usd_per_million(0.0, 10) == 0.0


@pytest.mark.parametrize("rate", [0, 0.0, -1.0])
def test_usd_per_million_without_throughput_is_none(rate):
    assert usd_per_million(1.0, rate) is None


def test_latency_summary():
    summary = latency_summary(_ns([1, 2, 3, 4]), 0.95, 20)
    assert summary["latency_ms_mean"] == pytest.approx(2.5)
    assert summary["latency_ms_std"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert summary["latency_ms_min"] == 1.0
    assert summary["latency_ms_max"] == 4.0
    assert summary["latency_ms_p50"] == 2.0
    assert summary["latency_ms_p99"] == 4.0
    # four samples support no percentile's interval: every one is flagged, none hidden
    assert summary["percentile_flags"] == (
        "p50 interval unbounded at both ends: n=4 < 6 at 95%; p90 unsupported: n=4 < 10; "
        "p95 unsupported: n=4 < 20; p99 unsupported: n=4 < 100; "
        "fix: scenario.min_requests=368 (and max_duration_s to match)"
    )
    assert summary["latency_ms_p50_hi"] is None and summary["latency_ms_p99_hi"] is None


def test_latency_summary_of_one_sample_has_no_std():
    summary = latency_summary(_ns([3]), 0.95, 20)
    assert summary["latency_ms_std"] is None  # one sample has no spread to report
    assert summary["latency_ms_p50"] == summary["latency_ms_p99"] == 3.0


def _result(n: int, window_s: float) -> LoadResult:
    latency = _ns(np.arange(1, n + 1))
    sent = np.arange(n, dtype=np.int64) * 1000
    return LoadResult(
        thread=np.zeros(n, dtype=np.int16),
        scheduled_ns=sent,
        sent_ns=sent,
        done_ns=sent + latency,
        ttft_ns=np.full(n, -1, dtype=np.int64),
        ok=np.ones(n, dtype=bool),
        token_gaps_ns=np.zeros(0, dtype=np.int64),
        window_s=window_s,
        warmup_n=6,
        stop_reason="targets_met",
    )


@pytest.fixture(scope="module")
def encode_cell():
    return plan_from_overrides(["engine=null", "batch_size=4", "price_per_hour=1.624"]).cells[0]


@pytest.fixture(scope="module")
def generate_cell():
    overrides = ["engine=null", "model=opt_tiny", "batch_size=2", "price_per_hour=2.0"]
    return plan_from_overrides(overrides).cells[0]


def test_summarize_encode(encode_cell):
    assert encode_cell.model.task == "encode"
    assert tokens_per_inference(encode_cell) == encode_cell.model.seq_len == 128
    row = summarize(_result(n=100, window_s=2.0), encode_cell)
    assert row["n"] == 100
    assert row["warmup_n"] == 6
    assert row["window_s"] == 2.0
    assert row["stop_reason"] == "targets_met"
    assert row["requests_per_s"] == pytest.approx(50.0)
    inferences = 100 * 4 / 2.0
    assert row["inferences_per_s"] == pytest.approx(inferences)
    assert row["tokens_per_s"] == pytest.approx(inferences * 128)
    assert row["usd_per_million_inferences"] == pytest.approx(1.624 / 3600 / inferences * 1e6)
    assert row["usd_per_million_tokens"] == pytest.approx(1.624 / 3600 / (inferences * 128) * 1e6)
    assert row["latency_ms_p50"] == 50.0
    assert row["latency_ms_p99"] == 99.0


def test_summarize_generate_counts_new_tokens(generate_cell):
    assert generate_cell.model.task == "generate"
    new_tokens = generate_cell.model.new_tokens
    assert tokens_per_inference(generate_cell) == new_tokens == 8
    row = summarize(_result(n=30, window_s=1.5), generate_cell)
    inferences = 30 * 2 / 1.5
    assert row["inferences_per_s"] == pytest.approx(inferences)
    assert row["tokens_per_s"] == pytest.approx(inferences * new_tokens)
    assert row["usd_per_million_inferences"] == pytest.approx(2.0 / 3600 / inferences * 1e6)


def test_summarize_zero_window_has_no_cost(encode_cell):
    row = summarize(_result(n=1, window_s=0.0), encode_cell)
    assert row["inferences_per_s"] == 0.0
    assert row["usd_per_million_inferences"] is None
    assert row["usd_per_million_tokens"] is None


@pytest.mark.parametrize(
    ("instance", "inferences_per_s", "seed_usd"),
    [
        ("g5.4xlarge", 723, 0.6),  # BERT bs32 fp32
        ("g4dn.4xlarge", 154, 2.2),
        ("g5.4xlarge", 870, 0.5),  # mixed precision
        ("g4dn.4xlarge", 410, 0.8),
        ("g5.4xlarge", 160, 2.8),  # bs1 fp32
        ("g4dn.4xlarge", 116, 2.9),
    ],
)
def test_cost_reproduces_the_g5_study(instance, inferences_per_s, seed_usd):
    # The study's $/M column from its throughput column and the catalog's on-demand prices
    # (its instance table swaps the two prices; its cost column uses the right ones).
    price = plan_from_overrides([f"instance={instance}"]).cells[0].price_per_hour
    assert usd_per_million(price, inferences_per_s) == pytest.approx(seed_usd, abs=0.05)
