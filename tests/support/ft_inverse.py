"""The inverse of bench's FasterTransformer converter: a converted folder back to Hugging Face
names and shapes. Tests only: it lets the round trip check that no tensor is lost or
reordered. Whether the files follow FasterTransformer's own layout is checked against facts
written down from FT's converters (tests/unit/engines/fastertransformer/test_convert.py,
test_engine.py), not against this."""

from __future__ import annotations

import configparser
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.engines.fastertransformer.convert import (
    OPT_HEAD_ROWS,
    _flag,
    layout,
    load_rank,
    read_config,
    resolve_dir,
)


def load_full(ft_dir: Path) -> dict[str, np.ndarray]:
    """Every tensor of the converted folder, its rank files concatenated back together."""
    ft_dir = resolve_dir(ft_dir)
    ini = read_config(ft_dir)
    tp = ini["bench"].getint("tensor_para_size")
    ranks = [load_rank(ft_dir, r) for r in range(tp)]
    full = {}
    for tensor in layout(ini):
        parts = [r[tensor.name] for r in ranks]
        split = tensor.split
        full[tensor.name] = parts[0] if split is None else np.concatenate(parts, axis=split)
    return full


def _unfuse_qkv(qkv: np.ndarray) -> list[np.ndarray]:
    """[in, 3, out] -> HF [out, in] q, k, v."""
    return [qkv[:, j, :].T for j in range(3)]


def _opt_from_ft(f: dict[str, np.ndarray], ini: configparser.ConfigParser) -> dict:
    bench, g = ini["bench"], ini["gpt"]
    d = bench["hf_prefix"] + "decoder."
    sd = {}
    if not _flag(bench, "embed_projection"):  # folded projections cannot be undone
        sd[d + "embed_tokens.weight"] = f["model.wte"]
        if _flag(bench, "hf_lm_head"):
            sd["lm_head.weight"] = f["model.lm_head.weight"]
    sd[d + "embed_positions.weight"] = np.concatenate([f[OPT_HEAD_ROWS], f["model.wpe"]])
    if _flag(g, "has_post_decoder_layernorm"):
        for p in ("weight", "bias"):
            sd[f"{d}final_layer_norm.{p}"] = f[f"model.final_layernorm.{p}"]
    for i in range(g.getint("num_layer")):
        h, m = f"{d}layers.{i}.", f"model.layers.{i}."
        a = h + "self_attn."
        q, k, v = _unfuse_qkv(f[m + "attention.query_key_value.weight"])
        qb, kb, vb = f[m + "attention.query_key_value.bias"]
        sd.update({a + "q_proj.weight": q, a + "k_proj.weight": k, a + "v_proj.weight": v})
        sd.update({a + "q_proj.bias": qb, a + "k_proj.bias": kb, a + "v_proj.bias": vb})
        sd[a + "out_proj.weight"] = f[m + "attention.dense.weight"].T
        sd[a + "out_proj.bias"] = f[m + "attention.dense.bias"]
        sd[h + "fc1.weight"] = f[m + "mlp.dense_h_to_4h.weight"].T
        sd[h + "fc1.bias"] = f[m + "mlp.dense_h_to_4h.bias"]
        sd[h + "fc2.weight"] = f[m + "mlp.dense_4h_to_h.weight"].T
        sd[h + "fc2.bias"] = f[m + "mlp.dense_4h_to_h.bias"]
        for p in ("weight", "bias"):
            sd[f"{h}self_attn_layer_norm.{p}"] = f[f"{m}input_layernorm.{p}"]
            sd[f"{h}final_layer_norm.{p}"] = f[f"{m}post_attention_layernorm.{p}"]
    return sd


def _gpt2_from_ft(f: dict[str, np.ndarray], ini: configparser.ConfigParser) -> dict:
    bench, g = ini["bench"], ini["gpt"]
    p = bench["hf_prefix"]
    hidden = g.getint("head_num") * g.getint("size_per_head")
    sd = {
        p + "wte.weight": f["model.wte"],
        p + "wpe.weight": f["model.wpe"],
        p + "ln_f.weight": f["model.final_layernorm.weight"],
        p + "ln_f.bias": f["model.final_layernorm.bias"],
    }
    if _flag(bench, "hf_lm_head"):
        sd["lm_head.weight"] = f.get("model.lm_head.weight", f["model.wte"])
    for i in range(g.getint("num_layer")):
        h, m = f"{p}h.{i}.", f"model.layers.{i}."
        sd[h + "attn.c_attn.weight"] = f[m + "attention.query_key_value.weight"].reshape(
            hidden, 3 * hidden
        )
        sd[h + "attn.c_attn.bias"] = f[m + "attention.query_key_value.bias"].reshape(-1)
        sd[h + "attn.c_proj.weight"] = f[m + "attention.dense.weight"]
        sd[h + "attn.c_proj.bias"] = f[m + "attention.dense.bias"]
        sd[h + "mlp.c_fc.weight"] = f[m + "mlp.dense_h_to_4h.weight"]
        sd[h + "mlp.c_fc.bias"] = f[m + "mlp.dense_h_to_4h.bias"]
        sd[h + "mlp.c_proj.weight"] = f[m + "mlp.dense_4h_to_h.weight"]
        sd[h + "mlp.c_proj.bias"] = f[m + "mlp.dense_4h_to_h.bias"]
        for q in ("weight", "bias"):
            sd[f"{h}ln_1.{q}"] = f[f"{m}input_layernorm.{q}"]
            sd[f"{h}ln_2.{q}"] = f[f"{m}post_attention_layernorm.{q}"]
    return sd


def _t5_from_ft(f: dict[str, np.ndarray], ini: configparser.ConfigParser) -> dict:
    gated = _flag(ini["structure"], "use_gated_activation")
    sd = {"shared.weight": f["shared.weight_T"]}
    if "lm_head.weight" in f:
        sd["lm_head.weight"] = f["lm_head.weight"]
    for name, array in f.items():
        if name.startswith("shared.") or name == "lm_head.weight":
            continue
        if name.endswith(".qkv.weight"):
            base = name[: -len("qkv.weight")]
            for n, part in zip("qkv", _unfuse_qkv(array), strict=True):
                sd[f"{base}{n}.weight"] = part
        elif gated and ".DenseReluDense.wi" in name:
            hf = name.replace(".wi2.", ".wi_1.").replace(".wi.", ".wi_0.")
            sd[hf] = array.T
        else:
            sd[name] = array.T if array.ndim == 2 else array
    return sd


_FROM_FT: dict[str, Callable[[dict[str, np.ndarray], configparser.ConfigParser], dict]] = {
    "opt": _opt_from_ft,
    "gpt2": _gpt2_from_ft,
    "t5": _t5_from_ft,
}


def to_hf_state_dict(ft_dir: Path, tp: int, config: Any = None) -> dict[str, Any]:
    """Reassemble a converted folder into Hugging Face names and shapes (torch tensors in the
    files' dtype): the inverse of convert_state_dict for every tensor it wrote. Tied keys the
    source had (lm_head, T5's embed_tokens) come back as copies of the embedding. Left out:
    OPT's embed_tokens / project_in / project_out / lm_head when the projections were folded.

    `ft_dir` is the `{tp}-gpu` folder or its parent. `config` (the transformers config, or
    None) is checked against config.ini: a mismatch raises ValueError.
    """
    import torch

    ft_dir = resolve_dir(ft_dir, tp)
    ini = read_config(ft_dir)
    bench = ini["bench"]
    if bench.getint("tensor_para_size") != tp:
        raise ValueError(f"{ft_dir} holds tp={bench['tensor_para_size']}, not {tp}")
    model_type = bench["model_type"]
    if config is not None:
        if getattr(config, "model_type", model_type) != model_type:
            raise ValueError(f"{ft_dir} holds a {model_type} model, config is {config.model_type}")
        vocab = ini["gpt" if ini.has_section("gpt") else "encoder"].getint("vocab_size")
        if int(config.vocab_size) != vocab:
            raise ValueError(f"{ft_dir} vocab_size {vocab} != config's {config.vocab_size}")
    full = load_full(ft_dir)
    sd = _FROM_FT[model_type](full, ini)
    embedding = sd.get("shared.weight", full.get("model.wte"))
    for key in filter(None, bench.get("tied_keys", "").split(",")):
        if key not in sd:
            sd[key] = embedding
    return {k: torch.from_numpy(np.ascontiguousarray(v).copy()) for k, v in sd.items()}
