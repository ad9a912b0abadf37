"""Seed 003's summary: per model and instance, each engine's four metrics and the compiled
engine over PyTorch."""

from __future__ import annotations

import pandas as pd

from bench.results.report import build_report
from bench.results.report_mme import multi_model_table


def _rows() -> pd.DataFrame:
    common = {
        "model": "resnet50",
        "instance": "g5.2xlarge",
        "status": "ok",
        "batch_size": 1,
        "threads": 1,
        "tp_degree": 1,
        "scenario": "multi_model",
        "n": 5000,
        "usd_per_million_inferences": 1.0,
        "inferences_per_s": 100.0,
        "latency_ms_p50": 10.0,
        "latency_ms_p99": 30.0,
        "load_s": 1.0,
        "init_s": 0.1,
    }
    eager = {
        **common,
        "engine": "hf",
        "precision": "fp32",
        "engine_info": "{}",
        "max_models_loaded": 70,
        "warm_latency_ms_p50": 20.0,
        "warm_latency_ms_p99": 60.0,
        "max_rps_without_failure": 200.0,
        "max_users_before_failure": 120,
    }
    compiled = {
        **common,
        "engine": "onnxruntime",
        "precision": "fp16",
        "engine_info": '{"provider": "tensorrt"}',
        "max_models_loaded": 34,
        "warm_latency_ms_p50": 5.0,
        "warm_latency_ms_p99": 15.0,
        "max_rps_without_failure": 600.0,
        "max_users_before_failure": 200,
    }
    other = {**eager, "scenario": "latency", "model": "bert_base"}  # not a multi_model row
    return pd.DataFrame([eager, compiled, other])  # fmt: skip


def test_the_compiled_engine_is_set_against_pytorch() -> None:
    table = multi_model_table(_rows())
    assert list(table["engine"]) == ["PyTorch (hf)", "onnxruntime tensorrt fp16"]
    compiled = table.iloc[1]
    assert compiled["models loaded x"] == 0.49  # 34 of the 70 PyTorch models fit
    assert compiled["P50 ms (warm) x"] == 0.25
    assert compiled["max requests/s without failure x"] == 3.0
    assert compiled["max users before a failure x"] == round(200 / 120, 2)


def test_the_report_carries_the_summary_only_for_multi_model_sweeps() -> None:
    frame = _rows()
    assert "Multi-model endpoint" in build_report(frame, "s", None).markdown
    plain = frame[frame["scenario"] != "multi_model"]
    assert "Multi-model endpoint" not in build_report(plain, "s", None).markdown
