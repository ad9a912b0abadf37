"""FasterTransformer: the weight converter on tiny models (CPU), and the engine's checks on a
host without FT's op library."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from bench.config.schema import CellConfig, EngineConfig, InstanceSpec, cell_from_dict  # noqa: E402
from bench.engines import ft_convert  # noqa: E402
from bench.engines.base import Unsupported  # noqa: E402
from bench.engines.fastertransformer import (  # noqa: E402
    DEFAULT_LIB,
    LIB_ENV,
    FasterTransformerEngine,
)
from bench.measure.lockstep import MPI_SIZE_ENV  # noqa: E402

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


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[object, Path]]:
    """Each tiny model and the checkpoint folder it was saved to."""
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for name in ARCHS:
        model = build(name)
        model.save_pretrained(root / name)
        out[name] = (model, root / name)
    return out


@pytest.fixture(scope="module")
def converted(models, tmp_path_factory: pytest.TempPathFactory):
    """convert(name, tp, dtype) -> the `{tp}-gpu` folder, converting each case once."""
    root = tmp_path_factory.mktemp("ft")
    done: dict[tuple[str, int, str], Path] = {}

    def get(name: str, tp: int, dtype: str = "fp32") -> Path:
        key = (name, tp, dtype)
        if key not in done:
            done[key] = ft_convert.convert(models[name][1], root / f"{name}-{dtype}", tp, dtype)
        return done[key]

    return get


def sd_numpy(model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def rank_slice(size: int, tp: int, rank: int) -> slice:
    return slice(rank * size // tp, (rank + 1) * size // tp)


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
    back = ft_convert.to_hf_state_dict(ft_dir.parent, tp, model.config)
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
    back = ft_convert.to_hf_state_dict(ft_dir, 2, model.config)
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
    back = ft_convert.to_hf_state_dict(ft_dir, 1, model.config)
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
        ft_convert.to_hf_state_dict(ft_convert.convert_model(model, tmp_path, 2), 1)


# -- the engine on a host without FasterTransformer -----------------------------------------


@pytest.fixture(scope="module")
def opt_cell() -> CellConfig:
    """A validated generate cell for the tiny OPT (built with engine hf, which is registered;
    ft_cell swaps the engine in)."""
    instance = InstanceSpec(
        type="local-cpu",
        gpu_model=None,
        gpus=0,
        gpu_memory_gib=0,
        compute_capability=None,
        vcpus=4,
        memory_gib=16,
        usd_per_hour=0.0,
        price_date="2025-06-01",
    )
    return cell_from_dict(
        {
            "model": {
                "name": "opt_ft_test",
                "family": "opt",
                "task": "generate",
                "auto_class": "AutoModelForCausalLM",
                "seq_len": 8,
                "new_tokens": 4,
                "checkpoint": None,
                "architecture": dict(ARCHS["opt"]),
            },
            "engine": {"name": "hf"},
            "scenario": {
                "name": "latency",
                "warmup_requests": 0,
                "min_requests": 1,
                "min_duration_s": 1,
                "max_duration_s": 1,
            },
            "instance": instance,
            "precision": "fp32",
            "batch_size": 1,
            "threads": 1,
            "tp_degree": 1,
            "device": "cuda",
            "seed": 0,
            "models_dir": "unused",
        }
    )


def ft_cell(cell: CellConfig, tmp_path: Path, **options) -> CellConfig:
    return dataclasses.replace(
        cell,
        engine=EngineConfig(name="fastertransformer", options=options),
        device="cuda",
        models_dir=str(tmp_path / "models"),
    )


def test_capability() -> None:
    cap = FasterTransformerEngine.capability
    assert cap.devices == frozenset({"cuda"}) and cap.max_tp is None
    assert cap.families == frozenset({"gpt2", "opt", "t5"})
    assert FasterTransformerEngine.name == "fastertransformer"


def _reason(cell):
    """Plan-time capability first, then the host's own checks (library, MPI ranks)."""
    return FasterTransformerEngine.unsupported_reason(cell) or FasterTransformerEngine.host_reason(
        cell
    )


def test_unsupported_names_the_missing_library(opt_cell, tmp_path, monkeypatch) -> None:
    missing = tmp_path / "nowhere" / "libth_transformer.so"
    reason = _reason(ft_cell(opt_cell, tmp_path, lib_path=str(missing)))
    assert reason is not None
    assert str(missing) in reason
    assert "containers/Dockerfile.fastertransformer" in reason and "engine.lib_path" in reason
    # No option: $BENCH_FT_LIB, then the image's path.
    monkeypatch.setenv(LIB_ENV, str(tmp_path / "env.so"))
    assert str(tmp_path / "env.so") in _reason(ft_cell(opt_cell, tmp_path))
    monkeypatch.delenv(LIB_ENV)
    if not Path(DEFAULT_LIB).exists():
        assert DEFAULT_LIB in _reason(ft_cell(opt_cell, tmp_path))
    # The capability check comes first.
    cpu = dataclasses.replace(ft_cell(opt_cell, tmp_path, lib_path=str(missing)), device="cpu")
    assert "does not run on cpu" in _reason(cpu)


def test_unsupported_tasks_and_mpi(opt_cell, tmp_path, monkeypatch) -> None:
    lib = tmp_path / "libth_transformer.so"
    lib.write_bytes(b"")  # exists: the library check passes
    cell = ft_cell(opt_cell, tmp_path, lib_path=str(lib))
    monkeypatch.delenv(MPI_SIZE_ENV, raising=False)
    assert _reason(cell) is None
    encode = dataclasses.replace(cell, model=dataclasses.replace(cell.model, task="encode"))
    assert "only to generate" in _reason(encode)
    t5 = dataclasses.replace(cell, model=dataclasses.replace(cell.model, family="t5"))
    assert "not as task generate" in _reason(t5)
    seq2seq = dataclasses.replace(t5, model=dataclasses.replace(t5.model, task="seq2seq"))
    assert _reason(seq2seq) is None  # T5Encoder + T5Decoding
    tp2 = dataclasses.replace(cell, tp_degree=2)
    # bench cell relaunches itself under mpirun (measure.lockstep): only a host without it says no
    assert (
        FasterTransformerEngine.mpi_ranks(tp2) == 2 and FasterTransformerEngine.mpi_ranks(cell) == 1
    )
    monkeypatch.setattr("bench.measure.lockstep.shutil.which", lambda name: None)
    assert "no mpirun" in _reason(tp2)
    monkeypatch.setattr("bench.measure.lockstep.shutil.which", lambda name: "/usr/bin/mpirun")
    assert _reason(tp2) is None
    monkeypatch.setenv(MPI_SIZE_ENV, "2")
    assert _reason(tp2) is None
    monkeypatch.setenv(MPI_SIZE_ENV, "4")
    assert "4 ranks" in _reason(tp2)


def test_load_raises_unsupported_without_library(opt_cell, tmp_path) -> None:
    missing = tmp_path / "lib" / "libth_transformer.so"
    engine = FasterTransformerEngine(ft_cell(opt_cell, tmp_path, lib_path=str(missing)))
    with pytest.raises(Unsupported, match=str(missing)):
        engine.load()
    assert engine.describe()["ft_lib"] == str(missing)


def test_prepare_converts_once(opt_cell, tmp_path) -> None:
    cell = ft_cell(opt_cell, tmp_path)
    first = FasterTransformerEngine(cell).prepare()
    folder = Path(first.checkpoint)
    assert folder.name == "1-gpu" and folder.parent.name.endswith("-ft")
    assert folder.parent.parent == tmp_path / "models"
    assert (folder / "config.ini").is_file() and first.build_s is not None
    again = FasterTransformerEngine(cell).prepare()
    assert again.checkpoint == first.checkpoint and again.build_s is None
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp left


# -- T5Decoding's weights, against FT's own layout ------------------------------------------
# Facts from FasterTransformer's examples/pytorch/t5/utils/ft_decoding.py (FTT5DecodingWeight,
# the 2023 interface) and huggingface_t5_ckpt_convert.py, written down here rather than derived
# from bench's converter: 39 weights; per-layer weights stacked on a new first axis; Linear
# weights as [in, out]; the decoder's q, k, v fused to [d_model, 3, inner] and split on inner;
# attention outputs and wo split on their input axis; wi split on its output axis; the
# relative bias [heads, buckets] split on heads; embedding and lm_head [vocab, d_model], whole.
FT_DECODING_WEIGHTS = 39


@pytest.mark.parametrize(("name", "tp"), [("t5", 1), ("t5", 2), ("t5_gated", 2)])
def test_t5_decoding_weights_follow_fts_layout(
    models, converted, opt_cell, tmp_path, name: str, tp: int
) -> None:
    model, _ = models[name]
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    folder = converted(name, tp)
    arch = dict(ARCHS[name])
    t5 = dataclasses.replace(
        opt_cell.model, family="t5", task="seq2seq", name="t5_ft_test", architecture=arch
    )
    cell = dataclasses.replace(ft_cell(opt_cell, tmp_path), model=t5, tp_degree=tp)
    engine = FasterTransformerEngine(cell)
    engine.ini, engine.device = ft_convert.read_config(folder), torch.device("cpu")
    d, inner, ff, layers = H, HEADS * 6, 32, 1  # the tiny T5's decoder: one block
    for rank in range(tp):
        arrays = ft_convert.load_rank(folder, rank, lambda n: True)
        tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
        scalars, w = engine._t5_decoding_arguments(tensors, torch.float32)
        assert len(w) == FT_DECODING_WEIGHTS
        cols, rows = rank_slice(inner, tp, rank), rank_slice(ff, tp, rank)
        b = "decoder.block.0.layer"
        qkv = torch.stack([sd[f"{b}.0.SelfAttention.{n}.weight"].T for n in "qkv"], dim=1)
        expected = {
            0: sd[f"{b}.0.layer_norm.weight"][None],
            1: qkv[:, :, cols][None],  # [layers, d_model, 3, inner/tp]
            2: sd[f"{b}.0.SelfAttention.o.weight"].T[cols][None],
            3: sd[f"{b}.1.layer_norm.weight"][None],
            4: sd[f"{b}.1.EncDecAttention.q.weight"].T[:, cols][None],
            5: sd[f"{b}.1.EncDecAttention.k.weight"].T[:, cols][None],
            6: sd[f"{b}.1.EncDecAttention.v.weight"].T[:, cols][None],
            7: sd[f"{b}.1.EncDecAttention.o.weight"].T[cols][None],
            8: sd[f"{b}.2.layer_norm.weight"][None],
            11: sd[f"{b}.2.DenseReluDense.wo.weight"].T[rows][None],
            12: sd["decoder.final_layer_norm.weight"],
            13: sd["shared.weight"],  # [vocab, d_model]
            14: sd["lm_head.weight"],  # [vocab, d_model]
            15: sd[f"{b}.0.SelfAttention.relative_attention_bias.weight"].T[
                rank_slice(HEADS, tp, rank)
            ],
        }
        if name == "t5_gated":  # wi_0 -> inter_kernel, wi_1 -> inter_kernel2
            expected[9] = sd[f"{b}.2.DenseReluDense.wi_0.weight"].T[:, rows][None]
            expected[10] = sd[f"{b}.2.DenseReluDense.wi_1.weight"].T[:, rows][None]
        else:
            expected[9] = sd[f"{b}.2.DenseReluDense.wi.weight"].T[:, rows][None]
            assert w[10].shape == (1, 1)  # a placeholder
        for index, want in expected.items():
            assert w[index].shape == want.shape, index
            torch.testing.assert_close(w[index], want.float(), msg=f"weight #{index}")
        assert w[1].shape == (layers, d, 3, inner // tp)
        assert all(p.shape == (1, 1) for p in w[16:])  # biases, MoE gate, adapters
        # head_num, size_per_head, inter_size, mem_d_model, d_model, layer_num, vocab, buckets,
        # expert_num, max_distance, q_scaling, start_id, end_id, tp, pp, t5_with_bias,
        # position_embedding_type, moe_k, activation_type, tie_word_embeddings
        heads, d_kv, d_ff, mem_d, d_model, n_layers, vocab, buckets = scalars[:8]
        assert (heads, d_kv, d_ff, mem_d, d_model, n_layers) == (HEADS, 6, ff, d, d, layers)
        assert (vocab, buckets, scalars[8]) == (VOCAB, 8, 0)
        assert scalars[10] == pytest.approx(1 / 6**0.5)  # HF T5 does not scale q.k
        assert scalars[11:15] == (0, 1, tp, 1)  # decoder_start (pad), eos, tp, pp
        assert scalars[18] == ("gated-gelu" if name == "t5_gated" else "relu")
