"""Hugging Face checkpoints -> FasterTransformer (v5.3) weight files, and back.

FasterTransformer's torch ops do not read Hugging Face checkpoints: its examples first run a
converter that writes one raw binary file per tensor (per tensor-parallel rank for the split
ones) plus a `config.ini`, and the example loaders (examples/pytorch/gpt/utils/gpt.py,
examples/pytorch/t5/utils/ft_encoder.py) read those files back with `np.fromfile`. This module
writes the same layout as FT's own converters, for the three families bench runs on FT:

* OPT   - as examples/pytorch/gpt/utils/huggingface_opt_convert.py
* GPT-2 - as examples/pytorch/gpt/utils/huggingface_gpt_convert.py
* T5    - as examples/pytorch/t5/utils/huggingface_t5_ckpt_convert.py

The layout (all of it is FT's, except what is marked "bench-only"):

* Files are raw little-endian fp32 or fp16 (`ndarray.tofile`), C order, no header; the shape
  comes from config.ini. A tensor split across TP ranks is written once per rank as
  `NAME.{rank}.bin`; a tensor every rank needs whole (layernorms, embeddings, the biases added
  after a row-parallel matmul) is written once, without a rank suffix, as `NAME.bin`.
* Weights are stored [in, out] (torch.nn.Linear's [out, in] transposed; GPT-2's Conv1D is
  [in, out] already, so FT's GPT-2 converter does not transpose).
* GPT family (OPT, GPT-2), names under `model.`:
  - `layers.{i}.attention.query_key_value.weight` [hidden, 3, hidden]: q, k, v fused, split on
    the last axis, so rank r holds [hidden, 3, hidden/tp] (its heads of q, k and v);
    `...query_key_value.bias` [3, hidden] split the same way ([3, hidden/tp]).
  - `layers.{i}.attention.dense.weight` [hidden, hidden] split on axis 0 (its input: the
    rank's heads); `attention.dense.bias` not split.
  - `layers.{i}.mlp.dense_h_to_4h.weight` [hidden, inter] and its bias split on the output
    axis; `layers.{i}.mlp.dense_4h_to_h.weight` [inter, hidden] split on axis 0, its bias not.
  - `layers.{i}.input_layernorm.*`, `layers.{i}.post_attention_layernorm.*`,
    `final_layernorm.*` (when the model has one), `wte` [vocab, hidden], `wpe`
    [max_pos, hidden] and `lm_head.weight` [vocab, hidden] are not split.
  - OPT: `wpe` drops the first 2 rows of `embed_positions` (OPT's position offset), as FT's
    converter does; they are kept in the bench-only file `bench.opt.embed_positions_head.bin`
    so that the conversion can be undone exactly. A model whose word_embed_proj_dim differs
    from hidden_size (opt-350m) gets project_in folded into `wte` and project_out into
    `lm_head.weight`, as FT does; that cannot be undone, so the tests' inverse leaves those
    tensors out. FT always writes OPT's `lm_head.weight` (the tied embedding).
  - GPT-2: `lm_head.weight` is written only when the head is not tied to `wte` (FT's GPT-2
    converter reads GPT2Model, which has no head; gpt.py then shares `wte`).
  - config.ini `[gpt]`: head_num, size_per_head, inter_size, num_layer, vocab_size, start_id,
    end_id, weight_data_type, tensor_para_size, max_pos_seq_len, layernorm_eps,
    layernorm_type (pre_layernorm / post_layernorm), activation_type (Relu / Gelu),
    has_post_decoder_layernorm (1 / 0), model_name.
* T5 (names are Hugging Face's, without a `model.` prefix):
  - Encoder self-attention q, k, v stay separate, each [d_model, inner] split on the output
    axis; the decoder's self-attention q, k, v are fused into
    `decoder.block.{i}.layer.0.SelfAttention.qkv.weight` [d_model, 3, inner] split on the last
    axis; cross-attention (`EncDecAttention`) q, k, v stay separate and split on the output.
  - Every attention output `o` [inner, d_model] and `DenseReluDense.wo` [d_ff, d_model] split
    on axis 0; `DenseReluDense.wi` [d_model, d_ff] split on axis 1 (gated models: `wi_0` is
    written as `wi`, `wi_1` as `wi2`).
  - `relative_attention_bias.weight` (block 0 of each stack) transposed to [heads, buckets]
    and split on the head axis.
  - Layer norms, `shared.weight` ([d_model, vocab], transposed) and `shared.weight_T`
    ([vocab, d_model], the embedding as FT's T5 ops read it) and `lm_head.weight` ([vocab,
    d_model], not transposed: FT multiplies it as TN) are not split. The encoder/decoder
    `embed_tokens` are tied to `shared` and not written (FT's converter skips them too).
  - config.ini: `[encoder]` and `[decoder]` hold the stacks' Hugging Face config values
    (scalars; `relative_attention_num_buckets` renamed to
    `relative_attention_num_buckets_or_max_pos_seq_len`) plus weight_data_type; `[structure]`
    t5_with_bias, use_gated_activation, position_embedding_type. `[decoder]` is empty for an
    encoder-only checkpoint.
* Every config.ini also gets a bench-only `[bench]` section (FT's readers ignore unknown
  sections): the Hugging Face model_type, tensor_para_size, the state-dict key prefix and the
  tied keys, which is what the tests' inverse needs to give back the original names.

Assumptions: only fp32 and fp16 weight files (FT's converters accept only those; bf16
inference loads either and casts); pipeline parallelism is not split here (FT's loaders pick
their layers from the full per-rank files); no int8 scales. The converter fails, naming the
keys, on any parameter it has no place for rather than dropping it.
"""

from __future__ import annotations

import configparser
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NP_DTYPES: dict[str, Any] = {"fp32": np.float32, "fp16": np.float16}
DTYPE_ALIASES = {"float32": "fp32", "float16": "fp16", "fp32": "fp32", "fp16": "fp16"}
MODEL_TYPES = ("opt", "gpt2", "t5")
# Only these transformers classes are instantiated from a checkpoint's config.json
# `architectures` (never a getattr on arbitrary text); anything else loads with AutoModel.
LOADABLE_CLASSES = (
    "OPTForCausalLM",
    "OPTModel",
    "GPT2LMHeadModel",
    "GPT2Model",
    "T5ForConditionalGeneration",
    "T5Model",
    "T5EncoderModel",
)
# Non-parameter entries some transformers versions keep in a state dict (GPT-2's causal mask
# buffers): never weights, safe to leave out.
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")
OPT_POSITION_OFFSET = 2  # OPT's learned positions start at row 2 (FT's `padding_offset`)
OPT_HEAD_ROWS = "bench.opt.embed_positions_head"  # bench-only: the rows FT's wpe drops


@dataclass(frozen=True)
class FTTensor:
    """One tensor of the FT layout: its file stem, full (unsplit) shape and split axis."""

    name: str  # file stem without the rank suffix and ".bin"
    shape: tuple[int, ...]  # the full tensor, as if tp were 1
    split: int | None = None  # axis split across TP ranks; None: one file, no rank suffix

    def rank_shape(self, tp: int) -> tuple[int, ...]:
        if self.split is None:
            return self.shape
        shape = list(self.shape)
        shape[self.split] //= tp
        return tuple(shape)

    def path(self, ft_dir: Path, rank: int) -> Path:
        if self.split is None:
            return ft_dir / f"{self.name}.bin"
        return ft_dir / f"{self.name}.{rank}.bin"


# ---------------------------------------------------------------------------------------------
# Layout: what files a converted folder holds, from its config.ini alone.
# ---------------------------------------------------------------------------------------------


def _flag(section: configparser.SectionProxy, key: str) -> bool:
    return section.get(key, "0").strip().lower() in ("1", "true", "yes")


def gpt_layout(ini: configparser.ConfigParser) -> list[FTTensor]:
    """The files of a converted OPT / GPT-2 model (see the module docstring)."""
    g, bench = ini["gpt"], ini["bench"]
    hidden = g.getint("head_num") * g.getint("size_per_head")
    inter, vocab = g.getint("inter_size"), g.getint("vocab_size")
    tensors = [
        FTTensor("model.wte", (vocab, hidden)),
        FTTensor("model.wpe", (g.getint("max_pos_seq_len"), hidden)),
    ]
    if _flag(bench, "has_lm_head_file"):
        tensors.append(FTTensor("model.lm_head.weight", (vocab, hidden)))
    if _flag(g, "has_post_decoder_layernorm"):
        tensors += [FTTensor(f"model.final_layernorm.{p}", (hidden,)) for p in ("weight", "bias")]
    if bench.getint("wpe_head_rows", 0):
        tensors.append(FTTensor(OPT_HEAD_ROWS, (bench.getint("wpe_head_rows"), hidden)))
    for i in range(g.getint("num_layer")):
        f = f"model.layers.{i}."
        tensors += [
            FTTensor(f + "input_layernorm.weight", (hidden,)),
            FTTensor(f + "input_layernorm.bias", (hidden,)),
            FTTensor(f + "attention.query_key_value.weight", (hidden, 3, hidden), split=2),
            FTTensor(f + "attention.query_key_value.bias", (3, hidden), split=1),
            FTTensor(f + "attention.dense.weight", (hidden, hidden), split=0),
            FTTensor(f + "attention.dense.bias", (hidden,)),
            FTTensor(f + "post_attention_layernorm.weight", (hidden,)),
            FTTensor(f + "post_attention_layernorm.bias", (hidden,)),
            FTTensor(f + "mlp.dense_h_to_4h.weight", (hidden, inter), split=1),
            FTTensor(f + "mlp.dense_h_to_4h.bias", (inter,), split=0),
            FTTensor(f + "mlp.dense_4h_to_h.weight", (inter, hidden), split=0),
            FTTensor(f + "mlp.dense_4h_to_h.bias", (hidden,)),
        ]
    return tensors


def t5_layout(ini: configparser.ConfigParser) -> list[FTTensor]:
    """The files of a converted T5 model (see the module docstring)."""
    enc, structure, bench = ini["encoder"], ini["structure"], ini["bench"]
    d_model, d_ff = enc.getint("d_model"), enc.getint("d_ff")
    heads, vocab = enc.getint("num_heads"), enc.getint("vocab_size")
    inner = heads * enc.getint("d_kv")
    buckets = enc.getint("relative_attention_num_buckets_or_max_pos_seq_len")
    gated = _flag(structure, "use_gated_activation")
    tensors = [
        FTTensor("shared.weight", (d_model, vocab)),
        FTTensor("shared.weight_T", (vocab, d_model)),
    ]
    if _flag(bench, "has_lm_head"):
        tensors.append(FTTensor("lm_head.weight", (vocab, d_model)))

    def feed_forward(prefix: str) -> list[FTTensor]:
        names = ["wi", "wi2"] if gated else ["wi"]
        ffn = [FTTensor(f"{prefix}.DenseReluDense.{n}.weight", (d_model, d_ff), 1) for n in names]
        ffn.append(FTTensor(f"{prefix}.DenseReluDense.wo.weight", (d_ff, d_model), 0))
        return [*ffn, FTTensor(f"{prefix}.layer_norm.weight", (d_model,))]

    def attention(prefix: str, fused: bool) -> list[FTTensor]:
        if fused:
            qkv = [FTTensor(f"{prefix}.qkv.weight", (d_model, 3, inner), 2)]
        else:
            qkv = [FTTensor(f"{prefix}.{n}.weight", (d_model, inner), 1) for n in "qkv"]
        return [*qkv, FTTensor(f"{prefix}.o.weight", (inner, d_model), 0)]

    stacks = [("encoder", enc.getint("num_layers"))]
    if _flag(bench, "has_decoder"):
        stacks.append(("decoder", ini["decoder"].getint("num_layers")))
    for stack, layers in stacks:
        decoder = stack == "decoder"
        tensors.append(FTTensor(f"{stack}.final_layer_norm.weight", (d_model,)))
        tensors.append(
            FTTensor(
                f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                (heads, buckets),
                0,
            )
        )
        for i in range(layers):
            b = f"{stack}.block.{i}.layer"
            tensors += attention(f"{b}.0.SelfAttention", fused=decoder)
            tensors.append(FTTensor(f"{b}.0.layer_norm.weight", (d_model,)))
            if decoder:
                tensors += attention(f"{b}.1.EncDecAttention", fused=False)
                tensors.append(FTTensor(f"{b}.1.layer_norm.weight", (d_model,)))
            tensors += feed_forward(f"{b}.{2 if decoder else 1}")
    return tensors


def layout(ini: configparser.ConfigParser) -> list[FTTensor]:
    model_type = ini["bench"]["model_type"]
    return t5_layout(ini) if model_type == "t5" else gpt_layout(ini)


def read_config(ft_dir: Path) -> configparser.ConfigParser:
    path = Path(ft_dir) / "config.ini"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a converted FasterTransformer folder")
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(path)
    if not ini.has_section("bench"):
        raise ValueError(
            f"{path}: no [bench] section (not written by bench.engines.fastertransformer.convert)"
        )
    return ini


def _weight_dtype(ini: configparser.ConfigParser) -> Any:
    return NP_DTYPES[ini["bench"]["weight_data_type"]]


# ---------------------------------------------------------------------------------------------
# Hugging Face -> FT arrays (full, unsplit), one function per family.
# ---------------------------------------------------------------------------------------------


@dataclass
class _Converted:
    arrays: dict[str, np.ndarray]  # FT name -> full array in FT layout
    ini: configparser.ConfigParser
    used: set[str]  # state-dict keys consumed


class _Source:
    """The state dict as float32 numpy arrays, remembering which keys were read."""

    def __init__(self, state_dict: Mapping[str, Any]) -> None:
        self.sd = state_dict
        self.used: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key in self.sd

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.sd:
            raise KeyError(f"state dict has no {key!r}")
        self.used.add(key)
        value = self.sd[key]
        if hasattr(value, "detach"):  # a torch tensor; bf16 has no numpy dtype
            value = value.detach().to("cpu").float().numpy()
        return np.asarray(value, dtype=np.float32)

    def prefix_of(self, suffix: str) -> str:
        matches = [k[: -len(suffix)] for k in self.sd if k.endswith(suffix)]
        if len(matches) != 1:
            raise ValueError(f"expected one state-dict key ending in {suffix!r}, got {matches}")
        return matches[0]


def _cfg(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def _require_ids(config: Any) -> tuple[int, int]:
    start, end = _cfg(config, "bos_token_id"), _cfg(config, "eos_token_id")
    if start is None or end is None:
        raise ValueError(
            f"{config.model_type} config has bos_token_id={start}, eos_token_id={end}: "
            "FasterTransformer needs both (start_id, end_id)"
        )
    return int(start), int(end)


def _activation(name: str) -> str:
    gelu = ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh")
    if name in gelu:
        return "Gelu"
    if name == "relu":
        return "Relu"
    raise ValueError(f"activation {name!r} has no FasterTransformer GPT equivalent (Gelu, Relu)")


def _gpt_ini(
    config: Any,
    *,
    heads: int,
    hidden: int,
    inter: int,
    layers: int,
    max_pos: int,
    eps: float,
    pre_layernorm: bool,
    activation: str,
    post_layernorm: bool,
) -> configparser.ConfigParser:
    start, end = _require_ids(config)
    ini = configparser.ConfigParser(interpolation=None)
    ini["gpt"] = {
        "model_name": str(config.model_type),
        "head_num": str(heads),
        "size_per_head": str(hidden // heads),
        "inter_size": str(inter),
        "max_pos_seq_len": str(max_pos),
        "num_layer": str(layers),
        "layernorm_eps": repr(float(eps)),
        "layernorm_type": "pre_layernorm" if pre_layernorm else "post_layernorm",
        "activation_type": activation,
        "has_post_decoder_layernorm": "1" if post_layernorm else "0",
        "vocab_size": str(int(config.vocab_size)),
        "start_id": str(start),
        "end_id": str(end),
    }
    return ini


def _fuse_qkv(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """[in, out] q, k, v -> [in, 3, out] (FT's fused QKV kernel)."""
    return np.stack([q, k, v], axis=1)


def _opt_to_ft(sd: _Source, config: Any) -> _Converted:
    prefix = sd.prefix_of("decoder.embed_tokens.weight")  # "model." (ForCausalLM) or ""
    d = prefix + "decoder."
    hidden, heads = int(config.hidden_size), int(config.num_attention_heads)
    layers, inter = int(config.num_hidden_layers), int(config.ffn_dim)
    tied = bool(_cfg(config, "tie_word_embeddings", default=True))
    arrays: dict[str, np.ndarray] = {}
    embed = sd[d + "embed_tokens.weight"]
    head = sd["lm_head.weight"] if ("lm_head.weight" in sd and not tied) else embed
    projection = d + "project_in.weight" in sd
    if projection:  # word_embed_proj_dim != hidden_size: fold the projections in, as FT does
        arrays["model.wte"] = embed @ sd[d + "project_in.weight"].T
        arrays["model.lm_head.weight"] = head @ sd[d + "project_out.weight"]
    else:
        arrays["model.wte"] = embed
        arrays["model.lm_head.weight"] = head
    positions = sd[d + "embed_positions.weight"]
    max_pos = int(config.max_position_embeddings)
    if positions.shape[0] != max_pos + OPT_POSITION_OFFSET:
        raise ValueError(f"OPT embed_positions has {positions.shape[0]} rows, not {max_pos}+2")
    arrays["model.wpe"] = positions[OPT_POSITION_OFFSET:]
    arrays[OPT_HEAD_ROWS] = positions[:OPT_POSITION_OFFSET]
    post_layernorm = d + "final_layer_norm.weight" in sd
    if post_layernorm:
        for p in ("weight", "bias"):
            arrays[f"model.final_layernorm.{p}"] = sd[f"{d}final_layer_norm.{p}"]
    for i in range(layers):
        h, f = f"{d}layers.{i}.", f"model.layers.{i}."
        a = h + "self_attn."
        arrays[f + "attention.query_key_value.weight"] = _fuse_qkv(
            *(sd[f"{a}{n}_proj.weight"].T for n in "qkv")
        )
        arrays[f + "attention.query_key_value.bias"] = np.stack(
            [sd[f"{a}{n}_proj.bias"] for n in "qkv"]
        )
        arrays[f + "attention.dense.weight"] = sd[a + "out_proj.weight"].T
        arrays[f + "attention.dense.bias"] = sd[a + "out_proj.bias"]
        arrays[f + "mlp.dense_h_to_4h.weight"] = sd[h + "fc1.weight"].T
        arrays[f + "mlp.dense_h_to_4h.bias"] = sd[h + "fc1.bias"]
        arrays[f + "mlp.dense_4h_to_h.weight"] = sd[h + "fc2.weight"].T
        arrays[f + "mlp.dense_4h_to_h.bias"] = sd[h + "fc2.bias"]
        for p in ("weight", "bias"):
            arrays[f"{f}input_layernorm.{p}"] = sd[f"{h}self_attn_layer_norm.{p}"]
            arrays[f"{f}post_attention_layernorm.{p}"] = sd[f"{h}final_layer_norm.{p}"]
    pre = bool(_cfg(config, "do_layer_norm_before", default=True))
    ini = _gpt_ini(
        config,
        heads=heads,
        hidden=hidden,
        inter=inter,
        layers=layers,
        max_pos=max_pos,
        eps=1e-5,  # torch.nn.LayerNorm's default, which OPT uses (FT's converter writes 1e-5)
        pre_layernorm=pre,
        activation=_activation(str(_cfg(config, "activation_function", default="relu"))),
        post_layernorm=post_layernorm,
    )
    tied_keys = ["lm_head.weight"] if ("lm_head.weight" in sd.sd and tied) else []
    sd.used.update(tied_keys)
    if projection:  # the folded embedding is not the source's: nothing to give back as tied
        tied_keys = []
    ini["bench"] = {
        "hf_prefix": prefix,
        "tied_keys": ",".join(tied_keys),
        "has_lm_head_file": "1",
        "hf_lm_head": "1" if "lm_head.weight" in sd.sd else "0",
        "wpe_head_rows": str(OPT_POSITION_OFFSET),
        "embed_projection": "1" if projection else "0",
    }
    return _Converted(arrays, ini, sd.used)


def _gpt2_to_ft(sd: _Source, config: Any) -> _Converted:
    if _cfg(config, "scale_attn_by_inverse_layer_idx", default=False):
        raise ValueError("GPT-2 scale_attn_by_inverse_layer_idx=True has no FT equivalent")
    prefix = sd.prefix_of("wte.weight")  # "transformer." (LMHeadModel) or ""
    hidden, heads = int(config.n_embd), int(config.n_head)
    layers = int(config.n_layer)
    inter = int(_cfg(config, "n_inner", default=4 * hidden))
    tied = bool(_cfg(config, "tie_word_embeddings", default=True))
    arrays = {
        "model.wte": sd[prefix + "wte.weight"],
        "model.wpe": sd[prefix + "wpe.weight"],
        "model.final_layernorm.weight": sd[prefix + "ln_f.weight"],
        "model.final_layernorm.bias": sd[prefix + "ln_f.bias"],
    }
    head_file = "lm_head.weight" in sd and not tied
    if head_file:
        arrays["model.lm_head.weight"] = sd["lm_head.weight"]
    for i in range(layers):
        h, f = f"{prefix}h.{i}.", f"model.layers.{i}."
        # Conv1D weights are [in, out] already: no transpose (as FT's GPT-2 converter).
        arrays[f + "attention.query_key_value.weight"] = sd[h + "attn.c_attn.weight"].reshape(
            hidden, 3, hidden
        )
        arrays[f + "attention.query_key_value.bias"] = sd[h + "attn.c_attn.bias"].reshape(3, hidden)
        arrays[f + "attention.dense.weight"] = sd[h + "attn.c_proj.weight"]
        arrays[f + "attention.dense.bias"] = sd[h + "attn.c_proj.bias"]
        arrays[f + "mlp.dense_h_to_4h.weight"] = sd[h + "mlp.c_fc.weight"]
        arrays[f + "mlp.dense_h_to_4h.bias"] = sd[h + "mlp.c_fc.bias"]
        arrays[f + "mlp.dense_4h_to_h.weight"] = sd[h + "mlp.c_proj.weight"]
        arrays[f + "mlp.dense_4h_to_h.bias"] = sd[h + "mlp.c_proj.bias"]
        for p in ("weight", "bias"):
            arrays[f"{f}input_layernorm.{p}"] = sd[f"{h}ln_1.{p}"]
            arrays[f"{f}post_attention_layernorm.{p}"] = sd[f"{h}ln_2.{p}"]
    ini = _gpt_ini(
        config,
        heads=heads,
        hidden=hidden,
        inter=inter,
        layers=layers,
        max_pos=int(config.n_positions),
        eps=float(_cfg(config, "layer_norm_epsilon", default=1e-5)),
        pre_layernorm=True,
        activation=_activation(str(_cfg(config, "activation_function", default="gelu_new"))),
        post_layernorm=True,
    )
    tied_keys = ["lm_head.weight"] if ("lm_head.weight" in sd.sd and tied) else []
    sd.used.update(tied_keys)
    ini["bench"] = {
        "hf_prefix": prefix,
        "tied_keys": ",".join(tied_keys),
        "has_lm_head_file": "1" if head_file else "0",
        "hf_lm_head": "1" if "lm_head.weight" in sd.sd else "0",
        "wpe_head_rows": "0",
        "embed_projection": "0",
    }
    return _Converted(arrays, ini, sd.used)


def _t5_stack_config(config: Any, decoder: bool) -> dict[str, str]:
    """The stack's config as FT's converter writes it (T5Stack's copy of the model config)."""
    values = dict(config.to_dict())
    values.update(is_decoder=decoder, use_cache=decoder, is_encoder_decoder=False)
    if decoder:
        values["num_layers"] = _cfg(config, "num_decoder_layers", default=config.num_layers)
    out = {}
    for key, value in values.items():
        if isinstance(value, (bool, int, float, str)) and "%" not in str(value):
            out[key.lower()] = str(value)
    out["relative_attention_num_buckets_or_max_pos_seq_len"] = out.pop(
        "relative_attention_num_buckets"
    )
    return out


def _t5_to_ft(sd: _Source, config: Any) -> _Converted:
    gated = bool(_cfg(config, "is_gated_act", default=False)) or "gated" in str(
        _cfg(config, "feed_forward_proj", default="")
    )
    prefix = sd.prefix_of("shared.weight")
    if prefix:
        raise ValueError(f"T5 state dict keys start with {prefix!r}; expected none")
    shared = sd["shared.weight"]
    arrays = {"shared.weight": shared.T, "shared.weight_T": shared}
    tied_keys = []
    for key in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
        if key in sd:
            if not np.array_equal(sd[key], shared):
                raise ValueError(f"{key} differs from shared.weight: FT's T5 reads only shared")
            tied_keys.append(key)
    has_lm_head = "lm_head.weight" in sd
    if has_lm_head:  # [vocab, d_model], not transposed (FT's converter transposes twice)
        arrays["lm_head.weight"] = sd["lm_head.weight"]
    has_decoder = "decoder.final_layer_norm.weight" in sd

    def feed_forward(b: str) -> None:
        names = {"wi_0": "wi", "wi_1": "wi2"} if gated else {"wi": "wi"}
        for hf_name, ft_name in names.items():
            arrays[f"{b}.DenseReluDense.{ft_name}.weight"] = sd[
                f"{b}.DenseReluDense.{hf_name}.weight"
            ].T
        arrays[f"{b}.DenseReluDense.wo.weight"] = sd[f"{b}.DenseReluDense.wo.weight"].T
        arrays[f"{b}.layer_norm.weight"] = sd[f"{b}.layer_norm.weight"]

    stacks = [("encoder", int(config.num_layers))]
    if has_decoder:
        stacks.append(("decoder", int(_cfg(config, "num_decoder_layers", "num_layers"))))
    for stack, layers in stacks:
        decoder = stack == "decoder"
        name = f"{stack}.final_layer_norm.weight"
        arrays[name] = sd[name]
        name = f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
        arrays[name] = sd[name].T  # [buckets, heads] -> [heads, buckets]
        for i in range(layers):
            b = f"{stack}.block.{i}.layer"
            attn = f"{b}.0.SelfAttention"
            if decoder:
                arrays[f"{attn}.qkv.weight"] = _fuse_qkv(
                    *(sd[f"{attn}.{n}.weight"].T for n in "qkv")
                )
            else:
                for n in "qkv":
                    arrays[f"{attn}.{n}.weight"] = sd[f"{attn}.{n}.weight"].T
            arrays[f"{attn}.o.weight"] = sd[f"{attn}.o.weight"].T
            arrays[f"{b}.0.layer_norm.weight"] = sd[f"{b}.0.layer_norm.weight"]
            if decoder:
                cross = f"{b}.1.EncDecAttention"
                for n in "qkvo":
                    arrays[f"{cross}.{n}.weight"] = sd[f"{cross}.{n}.weight"].T
                arrays[f"{b}.1.layer_norm.weight"] = sd[f"{b}.1.layer_norm.weight"]
            feed_forward(f"{b}.{2 if decoder else 1}")
    ini = configparser.ConfigParser(interpolation=None)
    ini["encoder"] = _t5_stack_config(config, decoder=False)
    ini["decoder"] = _t5_stack_config(config, decoder=True) if has_decoder else {}
    ini["structure"] = {
        "t5_with_bias": "false",
        "use_gated_activation": "1" if gated else "false",  # FT's converter's exact values
        "position_embedding_type": "relative",
    }
    ini["bench"] = {
        "hf_prefix": "",
        "tied_keys": ",".join(tied_keys),
        "has_lm_head": "1" if has_lm_head else "0",
        "has_decoder": "1" if has_decoder else "0",
    }
    return _Converted(arrays, ini, sd.used)


_TO_FT: dict[str, Callable[[_Source, Any], _Converted]] = {
    "opt": _opt_to_ft,
    "gpt2": _gpt2_to_ft,
    "t5": _t5_to_ft,
}


def _check_divisible(ini: configparser.ConfigParser, tp: int) -> None:
    if ini.has_section("gpt"):
        heads, inter = ini["gpt"].getint("head_num"), ini["gpt"].getint("inter_size")
    else:
        heads, inter = ini["encoder"].getint("num_heads"), ini["encoder"].getint("d_ff")
    if heads % tp or inter % tp:
        raise ValueError(
            f"tensor parallel {tp} must divide the head count ({heads}) and the MLP inner "
            f"size ({inter})"
        )


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def convert_state_dict(
    state_dict: Mapping[str, Any], config: Any, out_dir: Path, tp: int, dtype: str = "fp32"
) -> Path:
    """Write `state_dict` (names as the transformers model saves them, any float dtype) with
    its transformers `config` as FT rank files into `out_dir/{tp}-gpu/`; returns that folder.

    config.ini is written last, so a folder with one is complete.
    """
    model_type = str(getattr(config, "model_type", ""))
    if model_type not in _TO_FT:
        raise ValueError(f"model_type {model_type!r}: FT conversion supports {MODEL_TYPES}")
    if dtype not in DTYPE_ALIASES:
        raise ValueError(f"dtype {dtype!r}: FT weight files are fp32 or fp16")
    dtype = DTYPE_ALIASES[dtype]
    if tp < 1:
        raise ValueError(f"tp={tp} must be >= 1")
    source = _Source(state_dict)
    converted = _TO_FT[model_type](source, config)
    ini = converted.ini
    ini["bench"].update(model_type=model_type, tensor_para_size=str(tp), weight_data_type=dtype)
    if ini.has_section("gpt"):
        ini["gpt"].update(weight_data_type=dtype, tensor_para_size=str(tp))
    else:
        for section in ("encoder", "decoder"):
            if ini[section]:
                ini[section]["weight_data_type"] = dtype
    _check_divisible(ini, tp)
    left = [k for k in state_dict if k not in converted.used and not k.endswith(IGNORED_SUFFIXES)]
    if left:
        raise ValueError(f"no FasterTransformer place for {len(left)} tensor(s): {left[:8]}")

    spec = layout(ini)
    names = {t.name for t in spec}
    if names != set(converted.arrays):
        raise AssertionError(  # a bug here, not bad input
            f"layout mismatch: {sorted(names ^ set(converted.arrays))[:8]}"
        )
    ft_dir = Path(out_dir) / f"{tp}-gpu"
    ft_dir.mkdir(parents=True, exist_ok=True)
    (ft_dir / "config.ini").unlink(missing_ok=True)  # incomplete until rewritten below
    np_dtype = NP_DTYPES[dtype]
    for tensor in spec:
        array = converted.arrays[tensor.name]
        if array.shape != tensor.shape:
            raise ValueError(f"{tensor.name}: shape {array.shape}, expected {tensor.shape}")
        array = array.astype(np_dtype)
        parts = [array] if tensor.split is None else np.split(array, tp, axis=tensor.split)
        for rank, part in enumerate(parts):
            np.ascontiguousarray(part).tofile(tensor.path(ft_dir, rank))
    with open(ft_dir / "config.ini", "w") as handle:
        ini.write(handle)
    return ft_dir


def convert_model(model: Any, out_dir: Path, tp: int, dtype: str = "fp32") -> Path:
    """A transformers model object -> FT rank files (see convert_state_dict)."""
    return convert_state_dict(model.state_dict(), model.config, out_dir, tp, dtype)


def load_hf(model_dir: Path) -> Any:
    """The transformers model in a local checkpoint folder, in fp32 (exact for fp32/fp16)."""
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(model_dir)
    names = [a for a in (config.architectures or []) if a in LOADABLE_CLASSES]
    cls = getattr(transformers, names[0]) if names else transformers.AutoModel
    return cls.from_pretrained(model_dir, dtype=torch.float32)


def convert(model_dir: Path, out_dir: Path, tp: int, dtype: str = "fp32") -> Path:
    """Convert the Hugging Face checkpoint folder `model_dir` (read with transformers) into
    `out_dir/{tp}-gpu/` in FasterTransformer's layout; returns that folder."""
    return convert_model(load_hf(Path(model_dir)), Path(out_dir), tp, dtype)


def resolve_dir(ft_dir: Path, tp: int | None = None) -> Path:
    """`ft_dir` itself when it holds config.ini, else its `{tp}-gpu` subfolder (with tp None:
    its only converted `*-gpu` subfolder)."""
    ft_dir = Path(ft_dir)
    if (ft_dir / "config.ini").is_file():
        return ft_dir
    if tp is not None:
        return ft_dir / f"{tp}-gpu"
    found = sorted(p.parent for p in ft_dir.glob("*-gpu/config.ini"))
    if len(found) != 1:
        raise FileNotFoundError(f"{ft_dir}: expected one converted *-gpu folder, found {found}")
    return found[0]


def load_rank(
    ft_dir: Path, rank: int, only: Callable[[str], bool] | None = None
) -> dict[str, np.ndarray]:
    """What TP rank `rank` reads from the converted folder `ft_dir` (a `{tp}-gpu` folder):
    FT name (file stem without rank suffix) -> array in that rank's shape. Replicated tensors
    are included for every rank. The parent of a single `{tp}-gpu` folder works too. `only`
    keeps the names it returns True for (the rest are not read)."""
    ft_dir = resolve_dir(ft_dir)
    ini = read_config(ft_dir)
    tp = ini["bench"].getint("tensor_para_size")
    if not 0 <= rank < tp:
        raise ValueError(f"rank {rank} outside 0..{tp - 1}")
    dtype = _weight_dtype(ini)
    out = {}
    for tensor in layout(ini):
        if only is not None and not only(tensor.name):
            continue
        path = tensor.path(ft_dir, rank)
        shape = tensor.rank_shape(tp)
        data = np.fromfile(path, dtype=dtype)
        if data.size != int(np.prod(shape)):
            raise ValueError(f"{path}: {data.size} values, expected shape {shape}")
        out[tensor.name] = data.reshape(shape)
    return out
