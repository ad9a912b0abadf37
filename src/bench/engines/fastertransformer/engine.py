"""NVIDIA FasterTransformer v5.3 through its PyTorch op library (libth_transformer.so).

GPT-2 and OPT generate through `torch.classes.FasterTransformer.GptOp` (one GPU) or
`ParallelGptOp` (tensor parallel); T5 encodes through `torch.classes.FasterTransformer.
T5Encoder` and generates (task seq2seq) through T5Encoder, whose output is the memory of
`T5Decoding` (greedy, exactly new_tokens: min_length = max_seq_len on v5.3, end_id banned as
a bad word on v5.2; FT returns whole sequences, so no TTFT/TPOT). Weights come from FT's own
file layout, converted once per TP degree from the Hugging Face checkpoint by
bench.engines.fastertransformer.convert into `<models_dir>/<checkpoint>-ft/<tp>-gpu/` (fp32
files, exact, one folder for every precision: the op gets them cast to the cell's fp32 / fp16
/ bf16 at load, as FT's gpt.py does when the file and inference types differ).

Tensor parallelism: FT runs one process per GPU, ranked by MPI, and initialises NCCL from MPI
inside the op (`ftNcclInitialize` checks `MPI_Initialized`). A tp_degree > 1 cell therefore
runs as `mpirun -np <tp> python -m bench cell ...`, which `bench cell` (and `bench run`)
starts by itself from any executor (bench.measure.lockstep); every rank loads its own `.{rank}.bin`
files, and ranks 1..tp-1 repeat each request rank 0 makes, in its order (the op's collectives
block otherwise). A host without mpirun makes such a cell unsupported, saying so. MPI must be
initialised in this process before the op is built: through torch.distributed's MPI backend
when torch has one, else mpi4py (which must link the same MPI as the library).

UNTESTED HERE: this module was written without a GPU or a built FasterTransformer. The op
signatures below follow FT's examples/pytorch/gpt/utils/gpt.py, parallel_gpt.py and
examples/pytorch/t5/utils/ft_encoder.py and ft_decoding.py as of the v5.3 release (GPT ops
with the MoE arguments expert_num / moe_k / moe_layer_index and one empty MoE gating weight
per layer; T5Encoder and T5Decoding with the MoE and adapter arguments). Because those
arguments changed between releases, each op is built from a short list of known signatures,
newest first, and the first one the library accepts is used (its label goes into the row);
none accepted raises Unsupported with every error. The T5Decoding weights are checked on CPU
against FT's layout (tests/unit/engines/fastertransformer/test_engine.py); the ops themselves
never ran here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.config.schema import CellConfig
from bench.config.tasks import task_of
from bench.engines.base import Capability, Engine, LoadInfo, PrepareInfo, Unsupported
from bench.engines.checkpoints import publish_folder
from bench.engines.mpi import mpi_world, mpirun_reason, under_mpi

LIB_ENV = "BENCH_FT_LIB"
DEFAULT_LIB = "/opt/fastertransformer/lib/libth_transformer.so"
GPT_FAMILIES = frozenset({"gpt2", "opt"})
WEIGHT_DTYPE = "fp32"  # of the converted files; cast to the cell's precision at load


@dataclass(frozen=True)
class FTOptions:
    # FT's torch op library; "" = $BENCH_FT_LIB, then /opt/fastertransformer/lib/...
    lib_path: str = ""


def resolve_lib_path(options: FTOptions) -> Path:
    """Where the op library is looked for: engine.lib_path, $BENCH_FT_LIB, the image's path."""
    return Path(options.lib_path or os.environ.get(LIB_ENV) or DEFAULT_LIB).expanduser()


def missing_lib_reason(path: Path) -> str:
    return (
        f"FasterTransformer's torch op library not found at {path}: build it with "
        "containers/Dockerfile.fastertransformer or set engine.lib_path"
    )


def ft_folder(models_dir: str, checkpoint: Path, tp: int) -> Path:
    """`<models_dir>/<checkpoint name>-ft/<tp>-gpu`: the converted weights for one TP degree."""
    return Path(models_dir).expanduser() / f"{checkpoint.name}-ft" / f"{tp}-gpu"


def ensure_converted(checkpoint: Path, target: Path, tp: int) -> float | None:
    """Convert `checkpoint` into `target` (a `<tp>-gpu` folder) unless it is already there.

    Returns the seconds spent converting, None when it was already there. Concurrent cells
    (or MPI ranks) may race: each converts into a private temp folder and renames; the loser
    discards its copy.
    """
    from bench.engines.fastertransformer.convert import convert

    if (target / "config.ini").is_file():
        return None
    return publish_folder(
        target,
        lambda tmp: convert(checkpoint, tmp, tp, WEIGHT_DTYPE),  # tmp/<tp>-gpu
        lambda folder: (folder / "config.ini").is_file(),
    )


@dataclass
class _Variant:
    """One known signature of an FT op: how to build it and how to call its forward."""

    label: str
    build: Callable[[], Any]
    min_length: bool = True  # forward takes min_length (exactly new_tokens generated)


class FasterTransformerEngine(Engine):
    name = "fastertransformer"
    transforms_model = True  # quality=auto checks its outputs against eager fp32
    Options = FTOptions
    capability = Capability(
        precisions=frozenset({"fp32", "fp16", "bf16"}),
        devices=frozenset({"cuda"}),
        families=frozenset({"gpt2", "opt", "t5"}),
        max_tp=None,
        tensor_parallel=True,
        tasks=frozenset({"encode", "generate", "seq2seq"}),
        task_notes=(("classify_image", "FasterTransformer v5.3's torch ops are text models only"),),
    )

    @classmethod
    def unsupported_reason(cls, cell: CellConfig) -> str | None:
        reason = super().unsupported_reason(cell)
        if reason:
            return reason
        family, task = cell.model.family, cell.model.task
        if family in GPT_FAMILIES and task != "generate":
            return f"engine {cls.name} runs {family} only to generate (GptOp has no plain forward)"
        if family == "t5" and task not in ("encode", "seq2seq"):
            return (
                f"engine {cls.name} runs t5 to encode (T5Encoder) or to generate from the "
                f"encoder's output (T5Encoder + T5Decoding), not as task {task}"
            )
        return None

    @classmethod
    def host_reason(cls, cell: CellConfig) -> str | None:
        """What only the host that runs the cell can tell: the library, the MPI ranks."""
        lib = resolve_lib_path(cls.options_of(cell.engine.options))
        if not lib.is_file():
            return missing_lib_reason(lib)
        tp = cell.tp_degree
        if tp > 1:
            if reason := mpirun_reason(tp):
                return reason
            _, size = mpi_world()
            if under_mpi() and size != tp:
                return f"tp_degree={tp} but mpirun started {size} ranks"
        return None

    @classmethod
    def mpi_ranks(cls, cell: CellConfig) -> int:
        """One rank per GPU for tensor parallelism (bench.measure.lockstep launches them)."""
        return cell.tp_degree if cell.tp_degree > 1 else 1

    def __init__(self, cell: CellConfig) -> None:
        super().__init__(cell)
        self.lib = resolve_lib_path(self.options)
        self.op: Any = None
        self.variant: _Variant | None = None
        self.device: Any = None
        self.rank, self.world = mpi_world()
        self._lock = threading.Lock()  # one FT op instance serves one request at a time
        self._runtime: dict[tuple[int, int], tuple] = {}  # (batch, new_tokens) -> forward args
        self._bad_words: dict[int, Any] = {}  # batch size -> end_id as the one bad word

    # -- prepare ---------------------------------------------------------------------------

    def prepare(self) -> PrepareInfo:
        from bench.engines.checkpoints import ensure_checkpoint

        cell = self.cell
        got = ensure_checkpoint(cell.model, cell.models_dir, cell.seed)
        self.ft_dir = ft_folder(cell.models_dir, got.folder, cell.tp_degree)
        convert_s = ensure_converted(got.folder, self.ft_dir, cell.tp_degree)
        # build_s covers building the HF checkpoint and converting it to FT's files.
        spent = [s for s in (got.build_s, convert_s) if s is not None]
        return PrepareInfo(
            checkpoint=str(self.ft_dir),
            build_s=sum(spent) if spent else None,
            download_s=got.download_s,
        )

    # -- load ------------------------------------------------------------------------------

    def _require_runtime(self) -> Any:
        """The checks only this host can make; raises Unsupported. Returns torch."""
        if not self.lib.is_file():
            raise Unsupported(missing_lib_reason(self.lib))
        import torch

        if not torch.cuda.is_available():
            raise Unsupported("FasterTransformer needs a CUDA device; torch sees none here")
        tp = self.cell.tp_degree
        if tp > 1 and self.world != tp:
            raise Unsupported(
                f"tp_degree={tp} needs `mpirun -np {tp}`; this process is rank {self.rank} "
                f"of {self.world}"
            )
        built_for = self.lib.parent.parent / "TORCH_VERSION"  # written by the Dockerfile
        if built_for.is_file() and built_for.read_text().strip() != torch.__version__:
            raise Unsupported(
                f"{self.lib} was built for torch {built_for.read_text().strip()}, this is "
                f"torch {torch.__version__}: it will not load"
            )
        return torch

    def _init_mpi(self) -> None:
        """FT's NCCL setup needs MPI initialised in this process (tp > 1 only)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_mpi_available():
            if not dist.is_initialized():
                dist.init_process_group(backend="mpi")
            return
        try:
            from mpi4py import MPI  # importing initialises MPI
        except ImportError as exc:
            raise Unsupported(
                "tp_degree > 1: FasterTransformer needs MPI initialised in-process, and this "
                "torch has no MPI backend and mpi4py is not installed"
            ) from exc
        if not MPI.Is_initialized():
            MPI.Init()

    def load(self) -> LoadInfo:
        from bench.engines.fastertransformer.convert import load_rank, read_config

        torch = self._require_runtime()
        cell = self.cell
        if self.world > 1:
            self._init_mpi()
        try:
            torch.classes.load_library(str(self.lib))
        except (OSError, RuntimeError) as exc:
            raise Unsupported(f"cannot load {self.lib}: {exc}") from exc
        self.device = torch.device("cuda", self.rank % torch.cuda.device_count())
        torch.cuda.set_device(self.device)
        self.ini = read_config(self.ft_dir)
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
            cell.precision
        ]
        if cell.model.family == "t5" and cell.model.task == "seq2seq":
            keep = lambda n: n.startswith(("encoder.", "decoder.", "shared.weight_T", "lm_head."))  # noqa: E731
        elif cell.model.family == "t5":
            keep = lambda n: n.startswith("encoder.") or n == "shared.weight_T"  # noqa: E731
        else:
            keep = lambda n: n.startswith("model.")  # noqa: E731
        arrays = load_rank(self.ft_dir, self.rank % cell.tp_degree, keep)
        tensors = {
            name: torch.from_numpy(a).to(device=self.device, dtype=dtype)
            for name, a in arrays.items()
        }
        self.params = sum(t.numel() for t in tensors.values())
        empty = lambda: torch.empty(0, dtype=dtype, device=self.device)  # noqa: E731
        if cell.model.family == "t5":
            variants = self._t5_variants(tensors, dtype)
        else:
            variants = self._gpt_variants(tensors, empty)
        self.op, self.variant = self._build(variants)
        labels = [self.variant.label]
        if cell.model.task == "seq2seq":  # the encoder's output is the decoding op's memory
            self.decoding, self.decoding_variant = self._build(
                self._t5_decoding_variants(tensors, dtype)
            )
            labels.append(self.decoding_variant.label)
        self.synchronize()
        return LoadInfo(
            device=str(self.device),
            params=self.params,
            extra={"ft_op": " + ".join(labels), "tp_rank": self.rank},
        )

    @staticmethod
    def _build(variants: list[_Variant]) -> tuple[Any, _Variant]:
        errors = []
        for variant in variants:
            try:
                return variant.build(), variant
            except RuntimeError as exc:  # wrong arity / types: try the next signature
                errors.append(f"{variant.label}: {str(exc).splitlines()[0] if str(exc) else exc}")
        raise Unsupported("no known FasterTransformer op signature fits: " + "; ".join(errors))

    def _gpt_variants(self, t: dict[str, Any], empty: Callable[[], Any]) -> list[_Variant]:
        """GptOp / ParallelGptOp and their weight list, in gpt.py's GPTWeights order."""
        import torch

        g = self.ini["gpt"]
        layers, heads = g.getint("num_layer"), g.getint("head_num")
        size_per_head, inter = g.getint("size_per_head"), g.getint("inter_size")
        hidden = heads * size_per_head
        vocab, start, end = g.getint("vocab_size"), g.getint("start_id"), g.getint("end_id")
        eps, ln_type = g.getfloat("layernorm_eps"), g["layernorm_type"]
        activation = g["activation_type"]
        post_ln = g.get("has_post_decoder_layernorm", "1") == "1"
        per_layer = [
            "input_layernorm.weight",
            "input_layernorm.bias",
            "attention.query_key_value.weight",
            "attention.query_key_value.bias",
            "attention.dense.weight",
            "attention.dense.bias",
            "post_attention_layernorm.weight",
            "post_attention_layernorm.bias",
            "mlp.dense_h_to_4h.weight",
            "mlp.dense_h_to_4h.bias",
            "mlp.dense_4h_to_h.weight",
            "mlp.dense_4h_to_h.bias",
        ]
        weights = []
        for name in per_layer:  # all layers of one kind, then the next kind
            for i in range(layers):
                w = t[f"model.layers.{i}.{name}"]
                if name == "attention.query_key_value.weight":
                    w = w.reshape(hidden, -1)  # [hidden, 3, local] -> [hidden, 3 * local]
                elif name == "attention.query_key_value.bias":
                    w = w.reshape(-1)
                weights.append(w.contiguous())
        if post_ln:
            weights += [t["model.final_layernorm.weight"], t["model.final_layernorm.bias"]]
        weights.append(t["model.wpe"])  # has_positional_encoding
        weights.append(t["model.wte"])
        head = t.get("model.lm_head.weight")
        if head is None:  # gpt.py shares the embedding when no lm_head file exists
            head = t["model.wte"]
        elif "lm_head.weight" in self.ini["bench"].get("tied_keys", "").split(","):
            self.params -= head.numel()  # a copy of the tied embedding (OPT): count it once
        weights.append(head)
        gating = [empty() for _ in range(layers)]  # v5.3: one MoE gate per layer, none here
        tp = self.cell.tp_degree
        # The GPT variant parameters: has_positional_encoding, has_pre_decoder_layernorm,
        # has_post_decoder_layernorm, has_adapters, adapter_inter_size,
        # use_attention_linear_bias.
        variant = (eps, ln_type, activation, True, False, post_ln, False, 0, False)
        classes = torch.classes.FasterTransformer
        if tp == 1:
            return [
                _Variant(
                    "GptOp v5.3 (MoE args)",
                    lambda: classes.GptOp(
                        heads, size_per_head, inter, layers,
                        0, 0, [],  # expert_num, moe_k, moe_layer_index
                        vocab, start, end,
                        False,  # use_sparse_gemm
                        *variant, weights + gating,
                    ),
                ),
                _Variant(
                    "GptOp pre-MoE",
                    lambda: classes.GptOp(
                        heads, size_per_head, inter, layers, vocab, start, end, False,
                        *variant, weights,
                    ),
                    min_length=False,
                ),
            ]  # fmt: skip
        return [
            _Variant(
                "ParallelGptOp v5.3 (MoE args)",
                lambda: classes.ParallelGptOp(
                    heads, size_per_head, inter, layers,
                    0, 0, [],  # expert_num, moe_k, moe_layer_index
                    vocab, start, end,
                    tp, 1, 0,  # tensor_para_size, pipeline_para_size, int8_mode
                    *variant, weights + gating,
                    [], [],  # int8 weights, scales (int8_mode 0)
                    1.0,  # shared_contexts_ratio
                ),
            )
        ]  # fmt: skip

    def _t5_variants(self, t: dict[str, Any], dtype: Any) -> list[_Variant]:
        """T5Encoder and its weight list, in ft_encoder.py's FTT5EncoderWeight order."""
        import torch

        e = self.ini["encoder"]
        layers, heads, d_kv = e.getint("num_layers"), e.getint("num_heads"), e.getint("d_kv")
        d_model, d_ff = e.getint("d_model"), e.getint("d_ff")
        buckets = e.getint("relative_attention_num_buckets_or_max_pos_seq_len")
        max_distance = e.getint("relative_attention_max_distance", fallback=128)
        activation = e.get("feed_forward_proj", "relu")
        gated = self._gated()
        placeholder, stacked = self._t5_helpers(t, dtype, "encoder", layers)

        real = [
            stacked("0.layer_norm.weight"),
            stacked("0.SelfAttention.q.weight"),
            stacked("0.SelfAttention.k.weight"),
            stacked("0.SelfAttention.v.weight"),
            stacked("0.SelfAttention.o.weight"),
            stacked("1.layer_norm.weight"),
            stacked("1.DenseReluDense.wi.weight"),
            stacked("1.DenseReluDense.wi2.weight") if gated else placeholder(),
            stacked("1.DenseReluDense.wo.weight"),
            t["encoder.final_layer_norm.weight"],
            t["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"],
            t["shared.weight_T"],  # the embedding table, [vocab, d_model]
        ]
        biases = [placeholder() for _ in range(10)]  # t5_with_bias = False
        moe_gate, adapters = placeholder(), [placeholder() for _ in range(8)]
        tp, q_scaling = self.cell.tp_degree, 1.0 / d_kv**0.5  # T5 does not scale q.k
        head = (heads, d_kv, d_ff, d_model, True, layers)  # ..., is_remove_padding, num_layer
        cls = torch.classes.FasterTransformer.T5Encoder
        return [
            _Variant(
                "T5Encoder v5.3 (MoE + adapter args)",
                lambda: cls(
                    *real, *biases, moe_gate, *adapters,
                    [],  # moe_layer_index
                    *head, buckets,
                    0,  # num_expert
                    max_distance, False, q_scaling, tp, 1,  # sparse, q_scaling, tp, pp
                    False, 0, 0,  # t5_with_bias, position_embedding_type (relative), moe_k
                    activation, 0, "pre",  # activation, adapter_inter_size, adapter_norm_pos
                ),
            ),
            _Variant(
                "T5Encoder (MoE args, no adapters)",
                lambda: cls(
                    *real, *biases, moe_gate, [], *head, buckets, 0, max_distance, False,
                    q_scaling, tp, 1, False, 0, 0, activation,
                ),
            ),
            _Variant(
                "T5Encoder pre-MoE",
                lambda: cls(
                    *real, *biases, *head, buckets, max_distance, False, q_scaling, tp, 1,
                    False, 0, activation,
                ),
            ),
        ]  # fmt: skip

    def _gated(self) -> bool:
        return self.ini["structure"].get("use_gated_activation", "false") in ("1", "true")

    def _t5_helpers(
        self, t: dict[str, Any], dtype: Any, stack: str, layers: int
    ) -> tuple[Callable[[], Any], Callable[[str], Any]]:
        """(placeholder, stacked) for one T5 stack's op weights: an unused (1, 1) tensor of
        the weights' dtype (FT checks even unused weights' device and dtype), and a per-layer
        weight stacked over the stack's layers on a new first axis."""
        import torch

        def placeholder() -> Any:
            return torch.empty((1, 1), dtype=dtype, device=self.device)

        def stacked(name: str) -> Any:
            return torch.stack(
                [t[f"{stack}.block.{i}.layer.{name}"] for i in range(layers)]
            ).contiguous()

        return placeholder, stacked

    def _t5_decoding_variants(self, t: dict[str, Any], dtype: Any) -> list[_Variant]:
        """T5Decoding's known signatures (v5.3 with adapter arguments, v5.2 without)."""
        import torch

        scalars, weights = self._t5_decoding_arguments(t, dtype)
        real, biases, moe_gate, adapters = weights[:16], weights[16:30], weights[30], weights[31:]

        def op() -> Any:  # looked up when built: a library without the class raises then
            return torch.classes.FasterTransformer.T5Decoding

        return [
            _Variant(
                "T5Decoding v5.3 (adapter args, min_length)",
                lambda: op()(*scalars, 0, "pre", [], *real, *biases, moe_gate, *adapters),
            ),
            _Variant(
                "T5Decoding v5.2 (MoE args; end_id banned as a bad word)",
                lambda: op()(*scalars, [], *real, *biases, moe_gate),
                min_length=False,
            ),
        ]

    def _t5_decoding_arguments(self, t: dict[str, Any], dtype: Any) -> tuple[tuple, list[Any]]:
        """T5Decoding's leading scalar arguments and its 39 weights, in ft_decoding.py's
        FTT5DecodingWeight order: per-layer weights stacked on a new first axis (the fused
        self-attention qkv [layers, d_model, 3, inner/tp]), the final norm, the embedding
        [vocab, d_model], lm_head [vocab, d_model], the relative bias [heads/tp, buckets]; then
        14 bias, 1 MoE-gate and 8 adapter placeholders (no biases, experts or adapters)."""

        d, e = self.ini["decoder"], self.ini["encoder"]
        layers, heads, d_kv = d.getint("num_layers"), d.getint("num_heads"), d.getint("d_kv")
        d_model, d_ff, vocab = d.getint("d_model"), d.getint("d_ff"), d.getint("vocab_size")
        buckets = d.getint("relative_attention_num_buckets_or_max_pos_seq_len")
        max_distance = d.getint("relative_attention_max_distance", fallback=128)
        activation = d.get("feed_forward_proj", "relu")
        # tied (original T5): FT scales the logits by 1/sqrt(d_model), as Hugging Face does
        tied = d.get("tie_word_embeddings", "True").lower() in ("true", "1")
        start = d.getint("decoder_start_token_id", fallback=0)  # T5: the pad id
        end = d.getint("eos_token_id", fallback=1)
        self.end_id = end
        gated = self._gated()
        placeholder, stacked = self._t5_helpers(t, dtype, "decoder", layers)

        # a tied head is the embedding itself: the converter writes no lm_head file for it
        head = t.get("lm_head.weight", t["shared.weight_T"])
        real = [
            stacked("0.layer_norm.weight"),
            stacked("0.SelfAttention.qkv.weight"),
            stacked("0.SelfAttention.o.weight"),
            stacked("1.layer_norm.weight"),
            stacked("1.EncDecAttention.q.weight"),
            stacked("1.EncDecAttention.k.weight"),
            stacked("1.EncDecAttention.v.weight"),
            stacked("1.EncDecAttention.o.weight"),
            stacked("2.layer_norm.weight"),
            stacked("2.DenseReluDense.wi.weight"),
            stacked("2.DenseReluDense.wi2.weight") if gated else placeholder(),
            stacked("2.DenseReluDense.wo.weight"),
            t["decoder.final_layer_norm.weight"],
            t["shared.weight_T"],
            head,
            t["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"],
        ]
        placeholders = [placeholder() for _ in range(14 + 1 + 8)]  # biases, MoE gate, adapters
        tp, q_scaling = self.cell.tp_degree, 1.0 / d_kv**0.5  # T5 does not scale q.k
        scalars = (
            heads, d_kv, d_ff, e.getint("d_model"), d_model, layers, vocab, buckets,
            0, max_distance, q_scaling, start, end, tp, 1,  # expert_num, ..., tp, pp
            False, 0, 0, activation, tied,  # t5_with_bias, relative positions, moe_k
        )  # fmt: skip
        return scalars, real + placeholders

    def _t5_generate(self, batch: dict[str, Any], new_tokens: int) -> Any:
        """Encoder, then greedy decoding of exactly new_tokens (min_length = max_seq_len; the
        v5.2 op has no min_length, so end_id is passed as the one bad word instead): output
        ids [batch * beam=1 * new_tokens], without the start token."""
        import torch

        ids, lengths = batch["input_ids"], batch["input_lengths"]
        variant = self.decoding_variant
        with self._lock, torch.inference_mode():
            memory = self.op.forward(ids, lengths, None)
            if variant.min_length:  # beam, max_seq_len, top_k, top_p, diversity, temperature,
                # len_penalty, repetition, presence, min_length, seed, memory, lengths, 3 flags,
                # bad words, stop words
                out = self.decoding.forward(
                    1, new_tokens, 1, 0.0, None, 1.0, 0.0, None, None, new_tokens, 0,
                    memory, lengths, False, False, False, None, None,
                )  # fmt: skip
            else:
                out = self.decoding.forward(
                    1, new_tokens, 1, 0.0, None, 1.0, 0.0, None, 0,
                    memory, lengths, False, False, False, self._eos_banned(ids.shape[0]), None,
                )  # fmt: skip
        return out[0]

    def _eos_banned(self, batch_size: int) -> Any:
        """bad_words_list [batch, 2, 1]: the token ids (end_id), then the end offsets (1)."""
        import torch

        if batch_size not in self._bad_words:
            words = torch.tensor([[[self.end_id], [1]]] * batch_size, dtype=torch.int32)
            self._bad_words[batch_size] = words.to(self.device).contiguous()
        return self._bad_words[batch_size]

    # -- requests --------------------------------------------------------------------------

    def _vocab(self) -> int:
        section = "encoder" if self.cell.model.family == "t5" else "gpt"
        return self.ini[section].getint("vocab_size")

    def make_batch(self) -> dict[str, Any]:
        """The task's token ids (seeded: the same on every MPI rank), as the int32 ids and
        lengths FT's ops take."""
        import torch

        cell = self.cell
        vocab = SimpleNamespace(vocab_size=self._vocab())  # FT's config.ini, not transformers'
        ids = task_of(cell.model).inputs(cell, vocab)["input_ids"].to(torch.int32)
        lengths = torch.full((cell.batch_size,), cell.model.seq_len, dtype=torch.int32)
        return {"input_ids": ids.to(self.device), "input_lengths": lengths.to(self.device)}

    def infer(self, batch: dict[str, Any]) -> Any:
        """T5: the encoder's hidden states [batch, seq, d_model]."""
        import torch

        family = self.cell.model.family
        if family != "t5":
            raise NotImplementedError(f"engine {self.name} runs {family} only to generate")
        with self._lock, torch.inference_mode():  # (input_ids, sequence_lengths, inputs_embeds)
            return self.op.forward(batch["input_ids"], batch["input_lengths"], None)

    def outputs(self, batch: dict[str, Any], new_tokens: int) -> dict[str, Any]:
        """T5: the encoder's output and the generated ids; GPT-2 / OPT run only to generate
        here, so their check compares tokens alone (no first-forward logits)."""
        if self.cell.model.family == "t5":
            return super().outputs(batch, new_tokens)
        return {"tokens": type(self).generate(self, batch, new_tokens)}

    def _runtime_args(self, batch_size: int, new_tokens: int) -> tuple:
        """Greedy decoding (top_k = 1) as the CPU tensors GptOp.forward takes, per batch size."""
        import torch

        key = (batch_size, new_tokens)
        if key not in self._runtime:
            ones = torch.ones(batch_size, dtype=torch.float32)
            self._runtime[key] = (
                torch.ones(batch_size, dtype=torch.int32),  # top_k
                torch.zeros(batch_size, dtype=torch.float32),  # top_p
                torch.zeros(batch_size, dtype=torch.float32),  # beam_search_diversity_rate
                ones,  # temperature
                torch.zeros(batch_size, dtype=torch.float32),  # len_penalty
                ones,  # repetition_penalty (1 = off)
                torch.full((batch_size,), new_tokens, dtype=torch.int32),  # min_length
            )
        return self._runtime[key]

    def generate(self, batch: dict[str, Any], new_tokens: int) -> Any:
        """GPT-2 / OPT greedy generation: output ids [batch, beam=1, seq_len + new_tokens];
        T5 (seq2seq): the encoder, then T5Decoding."""
        import torch

        if self.cell.model.family == "t5":
            return self._t5_generate(batch, new_tokens)

        ids, lengths = batch["input_ids"], batch["input_lengths"]
        top_k, top_p, diversity, temp, len_pen, rep_pen, min_len = self._runtime_args(
            ids.shape[0], new_tokens
        )
        assert self.variant is not None
        with self._lock, torch.inference_mode():
            if self.variant.min_length:  # v5.3: ... presence_penalty, min_length, seed, bad words
                out = self.op.forward(
                    ids, lengths, new_tokens, 1, top_k, top_p, diversity, temp, len_pen,
                    rep_pen, None, min_len, None, None, 0,
                )  # fmt: skip
            else:  # pre-MoE GptOp: no min_length; a sampled end_id may stop a sequence early
                out = self.op.forward(
                    ids, lengths, new_tokens, 1, top_k, top_p, diversity, temp, len_pen,
                    rep_pen, None, 0,
                )  # fmt: skip
        return out[0]

    def synchronize(self) -> None:
        if self.device is not None:
            import torch

            torch.cuda.synchronize(self.device)

    def close(self) -> None:
        self.op = None
        if self.device is not None:
            import torch

            torch.cuda.empty_cache()

    def describe(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"ft_lib": str(self.lib), "tp_rank": self.rank}
        commit = self.lib.parent.parent / "COMMIT"  # written by the Dockerfile
        if commit.is_file():
            facts["ft_commit"] = commit.read_text().strip()
        if self.variant is not None:
            facts["ft_op"] = self.variant.label
            facts["ft_min_length_enforced"] = self.variant.min_length
        if self.device is not None:
            import torch

            facts["gpu_name"] = torch.cuda.get_device_name(self.device)
            facts["gpu_count"] = torch.cuda.device_count()
            facts["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        return facts
