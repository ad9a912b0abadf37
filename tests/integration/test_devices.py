"""Device placement: GPU cells on CUDA; a GPU instance's cell never runs on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_gpu_instance_without_cuda_fails_instead_of_measuring_the_cpu(
    bench_cli, models_dir: Path
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has CUDA")
    proc = bench_cli("run", "instance=g5.xlarge", f"models_dir={models_dir}", "format=json")
    assert proc.returncode == 1
    row = json.loads(proc.stdout)
    assert row["status"] == "failed" and row["error_class"] == "NoGPUError"
    assert "g5.xlarge" in row["error"]


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "amp_fp16", "amp_bf16"])
@pytest.mark.parametrize("model", ["bert_tiny", "opt_tiny"])
def test_hf_on_cuda(bench_cli, models_dir: Path, model: str, precision: str) -> None:
    proc = bench_cli(
        "run",
        "format=json",
        f"model={model}",
        f"precision={precision}",
        "device=cuda",
        "batch_size=4",
        "threads=2",
        "scenario.min_requests=50",
        "scenario.min_duration_s=0.5",
        "scenario.ci_target=0",
        f"models_dir={models_dir}",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = json.loads(proc.stdout)
    assert row["device"].startswith("cuda") and row["status"] == "ok"
    assert row["peak_gpu_mem_mb"] > 0 and row["gpu_name"]
    assert row["latency_ms_p50"] <= row["latency_ms_p99"]
    # each client on its own stream; memory per device, peaks reset after load
    assert row["sync_scope"] == "stream"
    assert row["precision_method"] == {"fp32": "none", "fp16": "cast", "bf16": "cast"}.get(
        precision, "autocast"
    )
    devices = json.loads(row["gpu_memory_json"])
    assert devices and all(d["reserved_peak_mb"] >= d["allocated_peak_mb"] for d in devices)
    assert row["peak_gpu_reserved_mb"] >= row["peak_gpu_mem_mb"]
    assert row["gpu_used_mb"] >= row["peak_gpu_reserved_mb"]
    assert row["import_s"] > 0 and row["load_s"] > 0
    # NVML telemetry of the window: the GPU was working and clocked, the memory is the copy's
    assert row["gpu_telemetry"] == "nvml" and row["telemetry_samples"] >= 1
    assert 0 <= row["gpu_util_pct_mean"] <= 100 and row["gpu_sm_clock_mhz_min"] > 0
    assert row["gpu_power_w_max"] > 0 and row["gpu_mem_used_mb_max"] >= row["peak_gpu_mem_mb"]


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("engine", "quantization"),
    [
        ("hf", "bitsandbytes LLM.int8()"),
        ("accelerate", "bitsandbytes LLM.int8()"),
        ("deepspeed", "DeepSpeed inference int8 (kernel injection)"),
    ],
)
def test_int8_on_cuda(bench_cli, models_dir: Path, engine: str, quantization: str) -> None:
    """int8 on a GPU: LLM.int8() through transformers' loader (hf, accelerate's device map) or
    DeepSpeed's int8 kernels. Without bitsandbytes or DeepSpeed the row says `unsupported`."""
    proc = bench_cli(
        "run",
        "format=json",
        "model=opt_tiny",
        f"engine={engine}",
        "precision=int8",
        "device=cuda",
        "scenario.min_requests=30",
        "scenario.min_duration_s=0.5",
        "scenario.ci_target=0",
        f"models_dir={models_dir}",
    )
    row = json.loads(proc.stdout)
    if row["status"] == "unsupported":
        pytest.skip(row["error"])
    assert proc.returncode == 0 and row["status"] == "ok", proc.stdout + proc.stderr
    assert row["precision_method"] == "quantized" and row["device"].startswith("cuda")
    assert json.loads(row["engine_info"]).get("quantization") == quantization
