"""Tiny FasterTransformer-convertible models built from config (OPT, GPT-2, T5, gated T5),
for the converter's and the engine's tests."""

from __future__ import annotations

import numpy as np
import torch
import transformers

H, HEADS, LAYERS, VOCAB, MAX_POS = 16, 4, 2, 64, 32

# Tiny architectures built from config. T5's inner size (heads * d_kv = 24) differs from
# d_model (16), so a transpose or split on the wrong axis cannot go unnoticed.
ARCHS = {
    "opt": dict(
        model_type="opt",
        vocab_size=VOCAB,
        hidden_size=H,
        num_hidden_layers=LAYERS,
        ffn_dim=32,
        num_attention_heads=HEADS,
        max_position_embeddings=MAX_POS,
        word_embed_proj_dim=H,
        do_layer_norm_before=True,
        bos_token_id=2,
        eos_token_id=2,
    ),
    "gpt2": dict(
        model_type="gpt2",
        vocab_size=VOCAB,
        n_embd=H,
        n_layer=LAYERS,
        n_head=HEADS,
        n_positions=MAX_POS,
        bos_token_id=1,
        eos_token_id=2,
    ),
    "t5": dict(
        model_type="t5",
        vocab_size=VOCAB,
        d_model=H,
        d_kv=6,
        num_heads=HEADS,
        d_ff=32,
        num_layers=LAYERS,
        num_decoder_layers=1,
        relative_attention_num_buckets=8,
    ),
}
ARCHS["opt_post_ln"] = {**ARCHS["opt"], "do_layer_norm_before": False}
ARCHS["t5_gated"] = {**ARCHS["t5"], "feed_forward_proj": "gated-gelu"}
ARCHS["opt_proj"] = {**ARCHS["opt"], "word_embed_proj_dim": 8}
EXACT = ["opt", "opt_post_ln", "gpt2", "t5", "t5_gated"]  # every tensor comes back


def build(name: str) -> object:
    arch = dict(ARCHS[name])
    config = transformers.AutoConfig.for_model(arch.pop("model_type"), **arch)
    torch.manual_seed(0)
    if config.model_type == "t5":
        return transformers.T5ForConditionalGeneration(config).eval()
    return transformers.AutoModelForCausalLM.from_config(config).eval()


def sd_numpy(model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def rank_slice(size: int, tp: int, rank: int) -> slice:
    return slice(rank * size // tp, (rank + 1) * size // tp)
