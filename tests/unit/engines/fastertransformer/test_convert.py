"""FasterTransformer's weight converter on tiny models built from config (CPU): files, rank
shapes, splits, config.ini, and the round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from bench.engines.fastertransformer import convert as ft_convert  # noqa: E402
from tests.support.ft_inverse import to_hf_state_dict  # noqa: E402
from tests.support.tiny_ft_models import (  # noqa: E402
    EXACT,
    HEADS,
    MAX_POS,
    VOCAB,
    H,
    rank_slice,
    sd_numpy,
)

# -- files, names and shapes ---------------------------------------------------------------


@pytest.mark.parametrize("tp", [1, 2])
def test_opt_files_and_rank_shapes(models, converted, tp: int) -> None:
    ft_dir = converted("opt", tp)
    assert ft_dir.name == f"{tp}-gpu"
    files = {p.name for p in ft_dir.iterdir()}
    layer = "model.layers.1."
    for split in (
        "attention.query_key_value.weight",
        "attention.query_key_value.bias",
        "attention.dense.weight",
        "mlp.dense_h_to_4h.weight",
        "mlp.dense_h_to_4h.bias",
        "mlp.dense_4h_to_h.weight",
    ):
        assert {f"{layer}{split}.{r}.bin" for r in range(tp)} <= files
        assert f"{layer}{split}.{tp}.bin" not in files
        assert f"{layer}{split}.bin" not in files
    for shared in (
        "input_layernorm.weight",
        "input_layernorm.bias",
        "attention.dense.bias",
        "post_attention_layernorm.weight",
        "post_attention_layernorm.bias",
        "mlp.dense_4h_to_h.bias",
    ):
        assert f"{layer}{shared}.bin" in files
        assert f"{layer}{shared}.0.bin" not in files
    top = ["model.wte.bin", "model.wpe.bin", "model.lm_head.weight.bin"]
    top += ["model.final_layernorm.weight.bin", "model.final_layernorm.bias.bin"]
    assert set(top) <= files
    assert "config.ini" in files

    sd = sd_numpy(models["opt"][0])
    hf = "model.decoder.layers.1."
    for rank in range(tp):
        w = ft_convert.load_rank(ft_dir, rank)
        assert w[layer + "attention.query_key_value.weight"].shape == (H, 3, H // tp)
        assert w[layer + "attention.query_key_value.bias"].shape == (3, H // tp)
        assert w[layer + "attention.dense.weight"].shape == (H // tp, H)
        assert w[layer + "mlp.dense_h_to_4h.weight"].shape == (H, 32 // tp)
        assert w[layer + "mlp.dense_h_to_4h.bias"].shape == (32 // tp,)
        assert w[layer + "mlp.dense_4h_to_h.weight"].shape == (32 // tp, H)
        assert w[layer + "attention.dense.bias"].shape == (H,)
        assert w["model.wte"].shape == (VOCAB, H)
        assert w["model.wpe"].shape == (MAX_POS, H)  # OPT's 2 offset rows dropped
        # The rank holds its heads of q, k and v, and the matching input rows of dense.
        cols, rows = rank_slice(H, tp, rank), rank_slice(H, tp, rank)
        qkv = w[layer + "attention.query_key_value.weight"]
        for j, n in enumerate("qkv"):
            np.testing.assert_array_equal(
                qkv[:, j, :], sd[f"{hf}self_attn.{n}_proj.weight"].T[:, cols]
            )
            np.testing.assert_array_equal(
                w[layer + "attention.query_key_value.bias"][j],
                sd[f"{hf}self_attn.{n}_proj.bias"][cols],
            )
        np.testing.assert_array_equal(
            w[layer + "attention.dense.weight"], sd[f"{hf}self_attn.out_proj.weight"].T[rows]
        )
        ffn = rank_slice(32, tp, rank)
        np.testing.assert_array_equal(
            w[layer + "mlp.dense_h_to_4h.weight"], sd[hf + "fc1.weight"].T[:, ffn]
        )
        np.testing.assert_array_equal(
            w[layer + "mlp.dense_4h_to_h.weight"], sd[hf + "fc2.weight"].T[ffn]
        )
        np.testing.assert_array_equal(
            w["model.wpe"], sd["model.decoder.embed_positions.weight"][2:]
        )
        # Raw little-endian fp32, no header: size is exactly the rank shape.
        path = ft_dir / f"{layer}attention.query_key_value.weight.{rank}.bin"
        assert path.stat().st_size == H * 3 * (H // tp) * 4


@pytest.mark.parametrize("tp", [1, 2])
def test_gpt2_files_and_rank_shapes(models, converted, tp: int) -> None:
    ft_dir = converted("gpt2", tp)
    files = {p.name for p in ft_dir.iterdir()}
    # Tied head: FT's GPT-2 converter writes no lm_head (gpt.py then shares wte).
    assert "model.lm_head.weight.bin" not in files
    assert {"model.wte.bin", "model.wpe.bin", "model.final_layernorm.bias.bin"} <= files
    sd = sd_numpy(models["gpt2"][0])
    for rank in range(tp):
        w = ft_convert.load_rank(ft_dir, rank)
        qkv = w["model.layers.0.attention.query_key_value.weight"]
        assert qkv.shape == (H, 3, H // tp)
        c_attn = sd["transformer.h.0.attn.c_attn.weight"]  # Conv1D: [in, out], q|k|v
        for j in range(3):
            np.testing.assert_array_equal(
                qkv[:, j, :], c_attn[:, j * H : (j + 1) * H][:, rank_slice(H, tp, rank)]
            )
        assert w["model.layers.0.mlp.dense_h_to_4h.weight"].shape == (H, 4 * H // tp)
        assert w["model.layers.0.mlp.dense_4h_to_h.weight"].shape == (4 * H // tp, H)
        np.testing.assert_array_equal(
            w["model.layers.0.attention.dense.weight"],
            sd["transformer.h.0.attn.c_proj.weight"][rank_slice(H, tp, rank)],
        )


@pytest.mark.parametrize("tp", [1, 2])
def test_t5_files_and_rank_shapes(models, converted, tp: int) -> None:
    ft_dir = converted("t5", tp)
    files = {p.name for p in ft_dir.iterdir()}
    inner, heads = 24, HEADS
    enc, dec = "encoder.block.1.layer.", "decoder.block.0.layer."
    for name in [
        enc + "0.SelfAttention.q.weight",
        enc + "0.SelfAttention.o.weight",
        enc + "1.DenseReluDense.wi.weight",
        enc + "1.DenseReluDense.wo.weight",
        dec + "0.SelfAttention.qkv.weight",
        dec + "1.EncDecAttention.k.weight",
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
    ]:
        assert {f"{name}.{r}.bin" for r in range(tp)} <= files, name
    for name in ["shared.weight", "shared.weight_T", "lm_head.weight", enc + "0.layer_norm.weight"]:
        assert f"{name}.bin" in files
    assert not any("embed_tokens" in f for f in files)  # tied to shared: not written
    assert not any(f.startswith(dec + "0.SelfAttention.q.") for f in files)  # fused into qkv

    sd = sd_numpy(models["t5"][0])
    for rank in range(tp):
        w = ft_convert.load_rank(ft_dir, rank)
        cols = rank_slice(inner, tp, rank)
        q = w[enc + "0.SelfAttention.q.weight"]
        assert q.shape == (H, inner // tp)
        np.testing.assert_array_equal(q, sd[enc + "0.SelfAttention.q.weight"].T[:, cols])
        assert w[enc + "0.SelfAttention.o.weight"].shape == (inner // tp, H)
        assert w[enc + "1.DenseReluDense.wi.weight"].shape == (H, 32 // tp)
        assert w[enc + "1.DenseReluDense.wo.weight"].shape == (32 // tp, H)
        qkv = w[dec + "0.SelfAttention.qkv.weight"]
        assert qkv.shape == (H, 3, inner // tp)
        np.testing.assert_array_equal(qkv[:, 1, :], sd[dec + "0.SelfAttention.k.weight"].T[:, cols])
        bias = w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
        assert bias.shape == (heads // tp, 8)
        assert w["shared.weight"].shape == (H, VOCAB)
        np.testing.assert_array_equal(w["shared.weight_T"], sd["shared.weight"])
        np.testing.assert_array_equal(w["lm_head.weight"], sd["lm_head.weight"])


def test_t5_gated_writes_wi_and_wi2(converted) -> None:
    files = {p.name for p in converted("t5_gated", 2).iterdir()}
    base = "encoder.block.0.layer.1.DenseReluDense"
    assert {f"{base}.wi.weight.1.bin", f"{base}.wi2.weight.1.bin"} <= files
    assert not any("wi_0" in f or "wi_1" in f for f in files)


@pytest.mark.parametrize("name", ["opt", "gpt2", "t5", "t5_gated"])
def test_rank_splits_concatenate_to_the_full_tensor(converted, name: str) -> None:
    one, two = converted(name, 1), converted(name, 2)
    full = ft_convert.load_rank(one, 0)
    ranks = [ft_convert.load_rank(two, r) for r in range(2)]
    for tensor in ft_convert.layout(ft_convert.read_config(two)):
        parts = [r[tensor.name] for r in ranks]
        if tensor.split is None:  # replicated: every rank reads the one unsuffixed file
            assert not (two / f"{tensor.name}.0.bin").exists()
            for part in parts:
                np.testing.assert_array_equal(part, full[tensor.name])
        else:
            assert not (two / f"{tensor.name}.bin").exists()
            joined = np.concatenate(parts, axis=tensor.split)
            np.testing.assert_array_equal(joined, full[tensor.name])


# -- config.ini ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "opt",
            dict(inter_size="32", start_id="2", end_id="2", layernorm_type="pre_layernorm",
                 activation_type="Relu", has_post_decoder_layernorm="1"),
        ),
        (
            "opt_post_ln",
            dict(layernorm_type="post_layernorm", has_post_decoder_layernorm="0"),
        ),
        (
            "gpt2",
            dict(inter_size="64", start_id="1", end_id="2", layernorm_type="pre_layernorm",
                 activation_type="Gelu", has_post_decoder_layernorm="1"),
        ),
    ],
)  # fmt: skip
def test_gpt_config_ini(converted, name: str, expected: dict[str, str]) -> None:
    ini = ft_convert.read_config(converted(name, 2, "fp16"))
    g = ini["gpt"]
    common = dict(
        head_num="4",
        size_per_head="4",
        num_layer="2",
        vocab_size="64",
        max_pos_seq_len="32",
        weight_data_type="fp16",
        tensor_para_size="2",
    )
    for key, value in {**common, **expected}.items():
        assert g[key] == value, key
    assert g.getfloat("layernorm_eps") == pytest.approx(1e-5)


def test_t5_config_ini(converted) -> None:
    ini = ft_convert.read_config(converted("t5_gated", 2))
    enc, dec = ini["encoder"], ini["decoder"]
    assert (enc["d_model"], enc["d_kv"], enc["num_heads"], enc["d_ff"]) == ("16", "6", "4", "32")
    assert enc["num_layers"] == "2" and dec["num_layers"] == "1"
    assert enc["relative_attention_num_buckets_or_max_pos_seq_len"] == "8"
    assert "relative_attention_num_buckets" not in enc
    assert enc["weight_data_type"] == dec["weight_data_type"] == "fp32"
    assert enc["is_decoder"] == "False" and dec["is_decoder"] == "True"
    assert dict(ini["structure"]) == {
        "t5_with_bias": "false",
        "use_gated_activation": "1",
        "position_embedding_type": "relative",
    }


# -- round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize("tp", [1, 2])
@pytest.mark.parametrize("name", EXACT)
def test_round_trip_is_exact(models, converted, name: str, tp: int) -> None:
    model = models[name][0]
    ft_dir = converted(name, tp)
    back = to_hf_state_dict(ft_dir.parent, tp, model.config)
    original = model.state_dict()
    assert set(back) == set(original)
    for key, tensor in original.items():
        assert back[key].shape == tensor.shape, key
        assert back[key].dtype == torch.float32
        assert torch.equal(back[key], tensor), key


def test_round_trip_fp16(models, converted) -> None:
    model = models["opt"][0]
    ft_dir = converted("opt", 2, "fp16")
    path = ft_dir / "model.layers.0.attention.query_key_value.weight.1.bin"
    assert path.stat().st_size == H * 3 * (H // 2) * 2
    back = to_hf_state_dict(ft_dir, 2, model.config)
    for key, tensor in model.state_dict().items():
        assert torch.equal(back[key], tensor.half()), key


def test_folded_opt_projection(models, converted) -> None:
    """word_embed_proj_dim != hidden: project_in/out folded into wte/lm_head, as FT does."""
    model = models["opt_proj"][0]
    sd = sd_numpy(model)
    ft_dir = converted("opt_proj", 1)
    w = ft_convert.load_rank(ft_dir, 0)
    embed = sd["model.decoder.embed_tokens.weight"]
    np.testing.assert_allclose(
        w["model.wte"], embed @ sd["model.decoder.project_in.weight"].T, rtol=1e-6
    )
    np.testing.assert_allclose(
        w["model.lm_head.weight"], embed @ sd["model.decoder.project_out.weight"], rtol=1e-6
    )
    back = to_hf_state_dict(ft_dir, 1, model.config)
    folded = {k for k in sd if "project_" in k or "embed_tokens" in k or k == "lm_head.weight"}
    assert set(back) == set(sd) - folded
    for key in back:
        assert torch.equal(back[key], model.state_dict()[key]), key


def test_conversion_errors(models, tmp_path: Path) -> None:
    model, folder = models["opt"]
    with pytest.raises(ValueError, match="must divide"):
        ft_convert.convert(folder, tmp_path, 3, "fp32")
    with pytest.raises(ValueError, match="fp32 or fp16"):
        ft_convert.convert_model(model, tmp_path, 1, "bf16")
    with pytest.raises(ValueError, match="no FasterTransformer place"):
        extra = {**model.state_dict(), "model.decoder.surprise.weight": torch.zeros(2)}
        ft_convert.convert_state_dict(extra, model.config, tmp_path, 1)
    bert = transformers.AutoConfig.for_model("bert")
    with pytest.raises(ValueError, match="supports"):
        ft_convert.convert_state_dict({}, bert, tmp_path, 1)
    with pytest.raises(ValueError, match="holds tp=2, not 1"):
        to_hf_state_dict(ft_convert.convert_model(model, tmp_path, 2), 1)
