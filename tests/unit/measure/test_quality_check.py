"""The output check (`quality`): eager fp32 against itself agrees exactly, an engine whose
weights were perturbed is flagged, and the comparison's verdicts follow its rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.cell.runner import run_cell
from bench.config.checks import ConfigError
from bench.config.schema import EngineConfig
from bench.engines import ENGINES
from bench.engines.hf import HFEngine
from bench.measure import quality_check
from bench.plan.grid import plan_from_overrides

QUICK = [
    "scenario.warmup_requests=1",
    "scenario.warmup_s=0",
    "scenario.min_requests=3",
    "scenario.min_duration_s=0.1",
    "scenario.max_duration_s=2",
    "scenario.ci_target=0",
]


class PerturbedEngine(HFEngine):
    """transformers eager with noise of NOISE x each weight tensor's spread added after
    loading: a kernel or conversion that computes something else."""

    name = "perturbed"
    noise = 0.3

    def initialize(self) -> dict[str, Any]:
        import torch

        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for weights in self.model.parameters():
                if weights.numel() > 1:
                    spread = float(weights.float().std())
                    weights.add_(
                        torch.randn(weights.shape, generator=generator) * spread * self.noise
                    )
        return super().initialize()


def _row(tmp_path: Path, *overrides: str, engine: str | None = None) -> dict[str, Any]:
    cell = plan_from_overrides([*overrides, *QUICK, f"models_dir={tmp_path}"]).cells[0]
    if engine is not None:
        cell = dataclasses.replace(cell, engine=EngineConfig(engine, {}))
    row = run_cell(cell).row
    assert row["status"] == "ok", row.get("error")
    return row


@pytest.mark.parametrize("model", ["bert_tiny", "opt_tiny"])
def test_eager_fp32_against_itself_agrees_exactly(tmp_path: Path, model: str) -> None:
    row = _row(tmp_path, f"model={model}", "quality=check")
    assert row["quality"] == "agrees" and row["quality_reason"] is None, row
    assert row["quality_max_abs_diff"] == 0.0 and row["quality_cosine"] == 1.0
    assert row["quality_reference"] == "computed" and row["quality_check_s"] > 0
    if model == "opt_tiny":  # every new token of every sequence compared
        assert row["quality_tokens_compared"] == row["batch_size"] * row["new_tokens"]
        assert row["quality_token_agreement"] == 1.0 and row["quality_first_mismatch"] is None
    # the reference is kept: the next cell of the same model and batch reads it
    again = _row(tmp_path, f"model={model}", "quality=check")
    assert again["quality_reference"] == "cached" and again["quality"] == "agrees"


@pytest.mark.parametrize("model", ["bert_tiny", "opt_tiny"])
def test_a_perturbed_engine_is_flagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    monkeypatch.setitem(ENGINES, PerturbedEngine.name, PerturbedEngine)
    row = _row(tmp_path, f"model={model}", "quality=check", engine=PerturbedEngine.name)
    assert row["quality"] == "differs", row
    assert row["quality_max_abs_diff"] > 0.01 and row["quality_cosine"] < 0.999
    if model == "opt_tiny":
        assert row["quality_token_agreement"] < 1.0
        assert row["quality_first_mismatch"] is not None
        assert "greedy tokens differ" in row["quality_reason"]
    else:
        assert "cosine" in row["quality_reason"]


def test_auto_checks_transformed_cells_only() -> None:
    def asked(*overrides: str) -> bool:
        cell = plan_from_overrides(list(overrides)).cells[0]
        return quality_check.asked(cell, ENGINES[cell.engine.name])

    assert not asked("engine=hf")  # the reference itself
    assert asked("engine=hf", "precision=bf16")
    assert asked("engine=torch_compile") and asked("engine=deepspeed")
    assert not asked("engine=torch_compile", "quality=off")
    assert asked("engine=hf", "quality=check")


def test_auto_leaves_an_fp32_eager_row_unchecked(tmp_path: Path) -> None:
    row = _row(tmp_path, "model=bert_tiny")
    assert not any(key.startswith("quality") for key in row)


def test_an_engine_without_model_outputs_says_why(tmp_path: Path) -> None:
    row = _row(tmp_path, "engine=null", "quality=check")
    assert row["quality"] == "unsupported"
    assert row["quality_reason"] == "engine null runs no model: no outputs to compare"


def test_a_bad_quality_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="quality"):
        plan_from_overrides(["quality=maybe"])


def _tokens(*rows: list[int]) -> dict[str, np.ndarray]:
    return {"logits": np.ones((len(rows), 3)), "tokens": np.array(rows)}


def test_compare_finds_the_first_differing_token() -> None:
    reference = _tokens([5, 6, 7, 8], [1, 2, 3, 4])
    assert quality_check.compare(reference, _tokens([5, 6, 7, 8], [1, 2, 3, 4]))["quality"] == (
        "agrees"
    )
    got = quality_check.compare(reference, _tokens([5, 6, 7, 9], [1, 2, 0, 4]))
    assert got["quality"] == "differs" and got["quality_first_mismatch"] == 2
    assert got["quality_token_agreement"] == 6 / 8
    # generated with a beam axis (FasterTransformer): (batch, beam, ids), the prompt before
    beamed = {"logits": np.ones((2, 3)), "tokens": np.array([[[0, 5, 6, 7, 8]], [[0, 1, 2, 3, 4]]])}
    assert quality_check.compare(reference, beamed)["quality"] == "agrees"


def test_tokens_alone_are_compared_when_the_engine_gives_no_logits() -> None:
    reference = _tokens([5, 6, 7, 8])
    assert quality_check.compare(reference, {"tokens": np.array([[5, 6, 7, 8]])}) == {
        "quality_tokens_compared": 4,
        "quality_token_agreement": 1.0,
        "quality_first_mismatch": None,
        "quality": "agrees",
        "quality_reason": None,
    }


def test_compare_holds_logits_to_the_cosine_floor() -> None:
    reference = {"logits": np.linspace(-1, 1, 100)}
    close = {"logits": reference["logits"] + 1e-4}
    assert quality_check.compare(reference, close)["quality"] == "agrees"
    far = {"logits": reference["logits"][::-1].copy()}
    assert quality_check.compare(reference, far)["quality"] == "differs"
    shaped = {"logits": np.ones(3)}
    verdict = quality_check.compare(reference, shaped)
    assert verdict["quality"] == "unsupported" and "shaped" in verdict["quality_reason"]
