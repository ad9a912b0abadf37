"""The FasterTransformer engine on a host without FT's op library: capability, unsupported
reasons, conversion once, and the T5 decoding weights against FT's own layout."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from bench.config.schema import CellConfig, EngineConfig, InstanceSpec, cell_from_dict  # noqa: E402
from bench.engines.base import Unsupported  # noqa: E402
from bench.engines.fastertransformer import convert as ft_convert  # noqa: E402
from bench.engines.fastertransformer.engine import (  # noqa: E402
    DEFAULT_LIB,
    LIB_ENV,
    FasterTransformerEngine,
)
from bench.engines.mpi import MPI_SIZE_ENV  # noqa: E402
from tests.support.tiny_ft_models import (  # noqa: E402
    ARCHS,
    HEADS,
    VOCAB,
    H,
    rank_slice,
)

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
    monkeypatch.setattr("bench.engines.mpi.shutil.which", lambda name: None)
    assert "no mpirun" in _reason(tp2)
    monkeypatch.setattr("bench.engines.mpi.shutil.which", lambda name: "/usr/bin/mpirun")
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
