"""engine=onnxruntime on this CPU (a tiny BERT and a tiny ResNet: measured, checked against eager
fp32, exported once), and what is refused here with its reason: the GPU providers, fp16 on
the CPU provider, generation, engine=tensorrt and torch.compile's tensorrt backend."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.cell.runner import run_cell
from bench.config.checks import ConfigError
from bench.config.schema import EngineConfig
from bench.engines.base import Inputs
from bench.engines.hf import HFEngine
from bench.engines.onnxruntime import OnnxRuntimeEngine, available_providers
from bench.plan.feasibility import decide
from bench.plan.grid import plan_from_overrides

REPO = Path(__file__).resolve().parents[3]
QUICK = [
    "scenario.warmup_requests=1",
    "scenario.warmup_s=0",
    "scenario.min_requests=3",
    "scenario.min_duration_s=0.1",
    "scenario.max_duration_s=1",
    "scenario.ci_target=0",
]
COSINE_MIN = 0.999  # the quality check's bar for encoders and image models (quality_check)
MAX_ABS_DIFF = 1e-4  # fp32 through another runtime: rounding only


def _cell(tmp_path: Path, *overrides: str) -> Any:
    return plan_from_overrides(
        ["engine=onnxruntime", *overrides, *QUICK, f"models_dir={tmp_path}"]
    ).cells[0]


def _prepared(cell: Any) -> OnnxRuntimeEngine:
    engine = OnnxRuntimeEngine(cell)
    engine.import_libraries()
    engine.prepare()
    return engine


@pytest.mark.parametrize("model", ["bert_tiny", "resnet_tiny"])
def test_a_cpu_cell_runs_agrees_with_eager_and_exports_once(tmp_path: Path, model: str) -> None:
    cell = _cell(tmp_path, f"model={model}", "quality=check")
    row = run_cell(cell).row
    assert row["status"] == "ok", row.get("error")
    assert row["quality"] == "agrees", row.get("quality_reason")
    assert row["quality_cosine"] >= COSINE_MIN and row["quality_max_abs_diff"] < MAX_ABS_DIFF
    assert row["load_s"] > 0 and row["init_s"] > 0 and row["latency_ms_p50"] > 0
    info = json.loads(row["engine_info"])
    export = info["onnx_export"]
    assert info["providers"][0] == "CPUExecutionProvider"
    assert export["cached"] is False and export["exported_s"] > 0
    assert row["checkpoint_build_s"] >= export["exported_s"]  # the export is never load_s
    onnx_file = Path(export["path"])
    written = onnx_file.stat().st_mtime_ns
    assert onnx_file.parent.parent == tmp_path  # beside the checkpoint, under models_dir
    # the next cell of the same checkpoint reuses it
    again = _prepared(dataclasses.replace(cell, batch_size=4))
    assert again.export.exported_s is None and again.export.path == onnx_file
    assert onnx_file.stat().st_mtime_ns == written


def test_padded_requests_of_varied_lengths_match_eager(tmp_path: Path) -> None:
    """The graph is shape-generic and honours the attention mask: prompts of other lengths
    than the export's, padded to the longest, give eager's logits at every real token."""
    cell = _cell(tmp_path, "model=bert_tiny")
    ort = _prepared(cell)
    ort.load()
    hf = HFEngine(dataclasses.replace(cell, engine=EngineConfig("hf", {})))
    hf.import_libraries()
    hf.prepare()
    hf.load()
    prompts = (tuple(range(5, 45)), tuple(range(900, 917)), tuple(range(40_000, 40_033)))
    inputs = Inputs(prompts=prompts, output_lens=(0, 0, 0))
    got = ort.infer(ort.batch_for(inputs))
    want = hf.infer(hf.batch_for(inputs)).start_logits.detach().numpy()
    assert got.shape == want.shape == (3, 40)
    for row, prompt in enumerate(prompts):
        real = slice(0, len(prompt))
        np.testing.assert_allclose(got[row, real], want[row, real], atol=MAX_ABS_DIFF)


@pytest.mark.skipif(
    "CUDAExecutionProvider" in available_providers(), reason="this onnxruntime has CUDA"
)
def test_provider_cuda_is_unsupported_here_naming_the_provider(tmp_path: Path) -> None:
    row = run_cell(_cell(tmp_path, "engine.provider=cuda", "device=cuda")).row
    assert row["status"] == "unsupported"
    assert "engine.provider=cuda" in row["error"] and "CUDAExecutionProvider" in row["error"]
    # planned for this CPU (device=auto): refused before the host is asked
    reason = decide(_cell(tmp_path, "engine.provider=tensorrt")).reason
    assert "provider=tensorrt runs on a CUDA GPU" in reason
    assert decide(_cell(tmp_path, "engine.provider=cuda", "instance=g5.xlarge")).outcome == "run"


def test_a_missing_onnxruntime_is_a_reason_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name)
    )
    reason = OnnxRuntimeEngine.host_reason(_cell(tmp_path))
    assert reason == "onnxruntime is not installed here (pip install onnxruntime)"


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["precision=fp16"], "provider=cpu runs fp32 only"),
        (["precision=bf16"], "not bf16"),
        (["model=opt_tiny"], "does not run generate models (generation through ONNX Runtime"),
        (["instance=g5.xlarge"], "provider=cpu runs on the host's CPUs"),
    ],
)
def test_what_onnxruntime_refuses_says_why(
    tmp_path: Path, overrides: list[str], words: str
) -> None:
    decision = decide(_cell(tmp_path, *overrides), this_host=True)
    assert decision.outcome == "unsupported" and words in decision.reason


def test_a_misspelt_provider_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"engine\.provider"):
        plan_from_overrides(["engine=onnxruntime", "engine.provider=rocm"])


@pytest.mark.skipif(importlib.util.find_spec("torch_tensorrt") is not None, reason="installed")
def test_engine_tensorrt_is_unsupported_here(tmp_path: Path) -> None:
    row = run_cell(_cell(tmp_path, "engine=tensorrt")).row
    assert row["status"] == "unsupported"
    assert row["error"].startswith("engine tensorrt compiles for a CUDA GPU, and this cell runs")
    row = run_cell(_cell(tmp_path, "engine=tensorrt", "device=cuda")).row
    assert row["status"] == "unsupported"
    assert row["error"].startswith("engine tensorrt: torch-tensorrt is not installed here")
    assert decide(_cell(tmp_path, "engine=tensorrt", "instance=g5.xlarge")).outcome == "run"


@pytest.mark.skipif(importlib.util.find_spec("torch_tensorrt") is not None, reason="installed")
def test_torch_compile_with_the_tensorrt_backend_is_refused_by_plan(tmp_path: Path) -> None:
    def plan(*overrides: str) -> dict[str, Any]:
        command = [sys.executable, "-m", "bench", "plan", "engine=torch_compile", *overrides]
        done = subprocess.run(
            [*command, "format=json", f"store.root={tmp_path}/r"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(done.stdout)["cells"][0]

    cpu = plan("engine.backend=tensorrt")
    assert cpu["decision"] == "unsupported"
    assert "backend=tensorrt compiles for a CUDA GPU (torch-tensorrt)" in cpu["reason"]
    gpu = plan("engine.backend=tensorrt", "device=cuda")
    assert gpu["decision"] == "unsupported"
    assert "backend=tensorrt: torch-tensorrt is not installed here" in gpu["reason"]
    assert plan("engine.backend=inductor")["decision"] == "run"
