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

The guide then multiplies the whole multiplier by the batch size, which multiplies the weights
too (GPT-NeoX-20B at batch 8 would ask 8 copies of itself per GPU). bench keeps the seed's
figure at batch 1 and adds, per extra sequence, what a sequence adds at run time, from the
architecture: for generation its KV cache (2 x layers x kv-heads x head-dim x tokens x bytes),
for an encoder the largest activation of one layer (tokens x max(intermediate, 4 x hidden) plus
the attention scores heads x tokens^2), divided over the partitions. The literal batch-scaled
figure is still reported beside it (`rmme_literal_per_gpu_gb`).

Taken literally, the sequence scaling puts a short sequence's RMME below the weights
themselves (128 tokens: x 0.125); `rmme_per_gpu` therefore never returns less than
LMME / partitions unless `literal=True`. Units: bytes; GB below means 1e9 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.engines import ENGINES

BYTES_PER_PARAM = {"int8": 1, "fp16": 2, "bf16": 2, "fp32": 4}
WEIGHT_PRECISION = {"amp_fp16": "fp32", "amp_bf16": "fp32"}  # autocast: weights stay fp32
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


def given_parameters(params: float | None, lbme_gb: float | None, precision: str) -> int | None:
    """A parameter count from `fit params=` or `fit lbme_gb=` (the guide's "if the LBME is
    30 GB"), None when neither is given."""
    if params is not None:
        return int(params)
    if lbme_gb is not None:
        return int(lbme_gb * 1e9 / BYTES_PER_PARAM[weight_precision(precision)])
    return None


def weight_precision(precision: str) -> str:
    """The dtype the weights are held in (mixed precision holds fp32 weights)."""
    return WEIGHT_PRECISION.get(precision, precision)


def lmme_multiplier(engine: str, partitions: int, family: str, precision: str) -> float:
    if ENGINES[engine].capability.tensor_parallel:  # the capability table says who splits
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


def runtime_per_gpu(
    lmme_bytes: float,
    family: str,
    partitions: int,
    seq_len: int,
    batch_size: int,
    bytes_per_sequence: float,
) -> float:
    """Runtime memory per GPU, bytes: the seed's RMME at batch 1 plus what each further
    sequence adds (`bytes_per_sequence`, split over the partitions); weights are never
    multiplied by the batch size."""
    first = rmme_per_gpu(lmme_bytes, family, partitions, seq_len, 1)
    return first + (batch_size - 1) * bytes_per_sequence / partitions


@dataclass(frozen=True)
class Estimate:
    params: int
    lbme_gb: float
    lmme_gb: float
    rmme_per_gpu_gb: float
    rmme_literal_per_gpu_gb: float = 0.0  # the guide's batch-scaled figure, for comparison
    per_sequence_gb: float = 0.0  # KV cache or activations one more sequence adds (all GPUs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "lbme_gb": round(self.lbme_gb, 2),
            "lmme_gb": round(self.lmme_gb, 2),
            "rmme_per_gpu_gb": round(self.rmme_per_gpu_gb, 2),
            "rmme_literal_per_gpu_gb": round(self.rmme_literal_per_gpu_gb, 2),
            "per_sequence_gb": round(self.per_sequence_gb, 3),
        }


def estimate(
    params: int,
    precision: str,
    engine: str,
    partitions: int,
    family: str,
    seq_len: int,
    batch_size: int,
    bytes_per_sequence: float = 0.0,
) -> Estimate:
    """All three estimates for one configuration, in GB (1e9 bytes)."""
    loaded = lmme(params, precision, engine, partitions, family)
    runtime = runtime_per_gpu(loaded, family, partitions, seq_len, batch_size, bytes_per_sequence)
    literal = rmme_per_gpu(loaded, family, partitions, seq_len, batch_size, literal=True)
    return Estimate(
        params,
        lbme(params, precision) / 1e9,
        loaded / 1e9,
        runtime / 1e9,
        literal / 1e9,
        bytes_per_sequence / 1e9,
    )


def bytes_per_sequence(shape: dict[str, int], tokens: int, precision: str, kv_cache: bool) -> float:
    """What one more sequence of `tokens` adds at run time: its KV cache for generation, the
    largest one-layer activation for an encoder. `shape`: layers, hidden, heads, kv_heads,
    intermediate (0 where unknown: nothing is added)."""
    element = BYTES_PER_PARAM.get(precision, 2)  # autocast: activations in fp16/bf16
    hidden, heads = shape.get("hidden", 0), max(1, shape.get("heads", 1))
    if kv_cache:
        head_dim = hidden / heads
        kv_heads = shape.get("kv_heads") or heads
        return 2.0 * shape.get("layers", 0) * kv_heads * head_dim * tokens * element
    widest = max(shape.get("intermediate", 0), 4 * hidden)
    return float(tokens * widest * element + heads * tokens * tokens * element)


def hf_config(architecture: dict[str, Any]) -> Any:
    """transformers' config for an architecture dict (`model_type` plus its keys)."""
    import transformers

    arch = dict(architecture)
    return transformers.AutoConfig.for_model(arch.pop("model_type"), **arch)


def architecture_shape(architecture: dict[str, Any]) -> dict[str, int]:
    """Layers, hidden size, heads, KV heads and intermediate size of an architecture, read
    through transformers' config (which maps each family's own key names)."""
    config = hf_config(architecture)
    config = getattr(config, "text_config", None) or config  # multimodal configs nest it

    def first(*names: str) -> int:
        for name in names:
            value = getattr(config, name, None)
            if isinstance(value, int):
                return value
        return 0

    return {
        "layers": first("num_hidden_layers", "num_layers", "n_layer"),
        "hidden": first("hidden_size", "d_model", "n_embd", "word_embed_proj_dim"),
        "heads": first("num_attention_heads", "num_heads", "n_head"),
        "kv_heads": first("num_key_value_heads"),
        "intermediate": first("intermediate_size", "ffn_dim", "d_ff", "n_inner"),
    }


def count_parameters(auto_class_name: str, architecture: dict[str, Any]) -> int:
    """Parameters of an architecture, counted exactly by building it on the meta device
    (shapes only, no memory, no weights)."""
    import torch
    import transformers

    with torch.device("meta"):
        model = getattr(transformers, auto_class_name).from_config(hf_config(architecture))
    return sum(p.numel() for p in model.parameters())
