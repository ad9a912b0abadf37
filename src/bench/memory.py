"""Memory estimates for hosting a model, from the SageMaker large-model-inference guide.

- LBME (lower bound): parameters x bytes per parameter (int8 1, fp16/bf16 2, fp32 4; mixed
  precision amp_fp16 / amp_bf16 keeps fp32 weights: 4).
- LMME (loaded, per GPU before dividing): LBME x an engine multiplier.
  Accelerate (pipeline partitioning, nothing replicated): 1.15 on one GPU,
  1.15 + 0.035 x partitions on several. DeepSpeed / FasterTransformer (tensor parallel, some
  modules replicated): 1.20 on one GPU; on several, a multiplier by architecture and dtype.
  transformers eager and torch.compile hold one plain copy: treated like Accelerate's single
  GPU (1.15).
- RMME per GPU (at run time): multiplier x LMME / partitions, the multiplier given for
  sequences of 1024 tokens (GPT 1.1 + 0.05 (p-1), BLOOM 1.15 + 0.05 (p-1), OPT 1.2 + 0.1 (p-1)),
  scaled by sequence length / 1024 and by batch size.

Taken literally, the sequence scaling puts a short sequence's RMME below the weights
themselves (128 tokens: x 0.125); `rmme_per_gpu` therefore never returns less than
LMME / partitions unless `literal=True`. Units: bytes; GB below means 1e9 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BYTES_PER_PARAM = {"int8": 1, "fp16": 2, "bf16": 2, "fp32": 4}
WEIGHT_PRECISION = {"amp_fp16": "fp32", "amp_bf16": "fp32"}  # autocast: weights stay fp32
TENSOR_PARALLEL_ENGINES = ("deepspeed", "fastertransformer")
FAMILY_GROUPS = {
    "gpt2": "gpt",
    "gpt_neo": "gpt",
    "gpt_neox": "gpt",
    "gptj": "gpt",
    "gpt_bigcode": "gpt",
    "bloom": "bloom",
    "opt": "opt",
}
# DeepSpeed / FasterTransformer LMME multipliers on several GPUs: group -> dtype -> multiplier.
TP_LMME = {
    "gpt": {"fp32": 1.45, "fp16": 1.55, "bf16": 1.55, "int8": 1.55},
    "bloom": {"fp32": 1.5, "fp16": 1.55, "bf16": 1.55, "int8": 1.55},
    "opt": {"fp32": 1.55, "fp16": 1.75, "bf16": 1.75, "int8": 1.75},
    "other": {"fp32": 1.5, "fp16": 1.5, "bf16": 1.5, "int8": 1.5},
}
# RMME multiplier at 1024 tokens: (base, per extra partition). The guide gives no figure for
# other architectures; they take GPT's.
RMME_BASE = {"gpt": (1.1, 0.05), "bloom": (1.15, 0.05), "opt": (1.2, 0.1), "other": (1.1, 0.05)}
REFERENCE_SEQ_LEN = 1024


def family_group(family: str) -> str:
    return FAMILY_GROUPS.get(family, "other")


def lbme(params: int, precision: str) -> float:
    """Lower-bound memory estimate: bytes to hold the parameters."""
    return float(params * BYTES_PER_PARAM[weight_precision(precision)])


def weight_precision(precision: str) -> str:
    """The dtype the weights are held in (mixed precision holds fp32 weights)."""
    return WEIGHT_PRECISION.get(precision, precision)


def lmme_multiplier(engine: str, partitions: int, family: str, precision: str) -> float:
    if engine in TENSOR_PARALLEL_ENGINES:
        table = TP_LMME[family_group(family)]
        return 1.20 if partitions == 1 else table[weight_precision(precision)]
    return 1.15 if partitions == 1 else 1.15 + 0.035 * partitions


def lmme(params: int, precision: str, engine: str, partitions: int, family: str) -> float:
    """Loaded-model memory estimate, bytes (all partitions together)."""
    return lmme_multiplier(engine, partitions, family, precision) * lbme(params, precision)


def rmme_multiplier(family: str, partitions: int, seq_len: int, batch_size: int) -> float:
    base, per_partition = RMME_BASE[family_group(family)]
    return (base + per_partition * (partitions - 1)) * seq_len / REFERENCE_SEQ_LEN * batch_size


def rmme_per_gpu(
    lmme_bytes: float,
    family: str,
    partitions: int,
    seq_len: int,
    batch_size: int,
    literal: bool = False,
) -> float:
    """Runtime memory estimate per GPU, bytes (floored at LMME / partitions unless literal)."""
    estimate = rmme_multiplier(family, partitions, seq_len, batch_size) * lmme_bytes / partitions
    return estimate if literal else max(estimate, lmme_bytes / partitions)


@dataclass(frozen=True)
class Estimate:
    params: int
    lbme_gb: float
    lmme_gb: float
    rmme_per_gpu_gb: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "lbme_gb": round(self.lbme_gb, 2),
            "lmme_gb": round(self.lmme_gb, 2),
            "rmme_per_gpu_gb": round(self.rmme_per_gpu_gb, 2),
        }


def estimate(
    params: int,
    precision: str,
    engine: str,
    partitions: int,
    family: str,
    seq_len: int,
    batch_size: int,
) -> Estimate:
    """All three estimates for one configuration, in GB (1e9 bytes)."""
    loaded = lmme(params, precision, engine, partitions, family)
    runtime = rmme_per_gpu(loaded, family, partitions, seq_len, batch_size)
    return Estimate(params, lbme(params, precision) / 1e9, loaded / 1e9, runtime / 1e9)


def count_parameters(auto_class_name: str, architecture: dict[str, Any]) -> int:
    """Parameters of an architecture, counted exactly by building it on the meta device
    (shapes only, no memory, no weights)."""
    import torch
    import transformers

    arch = dict(architecture)
    config = transformers.AutoConfig.for_model(arch.pop("model_type"), **arch)
    with torch.device("meta"):
        model = getattr(transformers, auto_class_name).from_config(config)
    return sum(p.numel() for p in model.parameters())
