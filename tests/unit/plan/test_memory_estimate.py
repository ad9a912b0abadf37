"""The memory estimates reproduce the large-model-inference guide's formulas and numbers."""

from __future__ import annotations

import pytest

from bench.plan.memory_estimate import (
    count_parameters,
    estimate,
    lbme,
    lmme_multiplier,
    rmme_multiplier,
    rmme_per_gpu,
)

NEOX_20B = {
    "model_type": "gpt_neox",
    "vocab_size": 50432,
    "hidden_size": 6144,
    "num_hidden_layers": 44,
    "num_attention_heads": 64,
    "intermediate_size": 24576,
    "max_position_embeddings": 2048,
    "rotary_pct": 0.25,
    "use_parallel_residual": True,
    "tie_word_embeddings": False,
}


@pytest.mark.parametrize(
    ("precision", "per_param"), [("int8", 1), ("fp16", 2), ("bf16", 2), ("fp32", 4)]
)
def test_lbme_is_bytes_per_parameter(precision, per_param):
    assert lbme(1_000_000, precision) == 1_000_000 * per_param


def test_lmme_multipliers():
    assert lmme_multiplier("accelerate", 1, "opt", "fp16") == 1.15
    assert lmme_multiplier("accelerate", 4, "opt", "fp16") == pytest.approx(1.15 + 0.035 * 4)
    assert lmme_multiplier("deepspeed", 1, "opt", "fp16") == 1.20
    assert lmme_multiplier("fastertransformer", 1, "gpt2", "fp32") == 1.20
    table = {
        ("gpt_neox", "fp32"): 1.45,
        ("gpt2", "fp16"): 1.55,
        ("gptj", "int8"): 1.55,
        ("bloom", "fp32"): 1.5,
        ("bloom", "fp16"): 1.55,
        ("opt", "fp32"): 1.55,
        ("opt", "fp16"): 1.75,
        ("opt", "int8"): 1.75,
        ("bert", "fp32"): 1.5,
        ("t5", "fp16"): 1.5,
    }
    for (family, precision), multiplier in table.items():
        assert lmme_multiplier("deepspeed", 2, family, precision) == multiplier


def test_rmme_multipliers_scale_with_partitions_sequence_and_batch():
    assert rmme_multiplier("gpt2", 1, 1024, 1) == pytest.approx(1.1)
    assert rmme_multiplier("gpt_neox", 4, 1024, 1) == pytest.approx(1.1 + 0.05 * 3)
    assert rmme_multiplier("bloom", 2, 1024, 1) == pytest.approx(1.15 + 0.05)
    assert rmme_multiplier("opt", 3, 1024, 1) == pytest.approx(1.2 + 0.1 * 2)
    assert rmme_multiplier("opt", 1, 2048, 4) == pytest.approx(1.2 * 2 * 4)
    # RMME per GPU = multiplier x LMME / partitions
    assert rmme_per_gpu(100.0, "opt", 2, 1024, 1) == pytest.approx(1.3 * 100 / 2)
    # Literal seed scaling for a short sequence goes below the weights; the default floors it.
    assert rmme_per_gpu(100.0, "gpt2", 2, 128, 1, literal=True) == pytest.approx(
        1.15 * 0.125 * 100 / 2
    )
    assert rmme_per_gpu(100.0, "gpt2", 2, 128, 1) == 50.0


def test_gpt_neox_20b_worked_numbers():
    params = count_parameters("AutoModelForCausalLM", NEOX_20B)
    assert params == pytest.approx(20.55e9, rel=0.005)  # counted from the architecture
    single = estimate(params, "fp16", "deepspeed", 1, "gpt_neox", 1024, 1)
    assert single.lbme_gb == pytest.approx(41.1, abs=0.1)  # "about 45 GB" loaded: LMME 49.3
    assert single.lmme_gb == pytest.approx(1.2 * 41.1, abs=0.2)
    assert single.rmme_per_gpu_gb < 80 * 2**30 / 1e9  # one copy per 80 GB A100 (p4de)
    assert single.rmme_per_gpu_gb > 40 * 2**30 / 1e9  # but not on a 40 GB A100 (p4d)
    two_way = estimate(params, "fp16", "accelerate", 2, "gpt_neox", 512, 1)
    assert two_way.rmme_per_gpu_gb == pytest.approx((1.15 + 0.07) * 41.11 / 2, abs=0.1)
    assert two_way.rmme_per_gpu_gb < 24 * 2**30 / 1e9  # 2-way on g5.12xlarge's 24 GiB A10Gs
