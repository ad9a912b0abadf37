"""ONNX Runtime: the checkpoint exported to ONNX once (bench.engines.onnx_export), served by an
`onnxruntime.InferenceSession` on the execution provider `engine.provider` names.

Timed parts: the export happens in prepare() (its seconds are the row's checkpoint_build_s
and `onnx_export.exported_s` in engine_info; a cell that finds the export already there
spends none); load_s is creating the InferenceSession (reading the graph, optimising it,
placing its weights); init_s is one run of the cell's batch, where ONNX Runtime allocates its
buffers and the TensorRT provider builds its engine for that shape.

Providers: `cpu` (fp32; ONNX Runtime's CPU provider has fp16 kernels for few operators, so fp16
is refused there); `cuda` (fp32, or fp16: the graph exported in fp16); `tensorrt` (fp32, or fp16
through TensorRT's fp16 mode over the fp32 graph). cuda and tensorrt need onnxruntime-gpu
(and TensorRT's libraries for tensorrt) on a CUDA host. A session that silently fell back to
another provider (ONNX Runtime does, when one fails to load) is refused, never measured.

Threads: the session's intra-op pool gets the cell's torch thread count (bench.measure.
threads: the CPUs free at the start // client threads), and concurrent client threads call
run() on the one session, as a server shares one. On CUDA the batch is placed on the GPU before
the timed call (IOBinding) and the logits are copied back to the host inside it.

UNTESTED HERE: the cuda and tensorrt providers were written without a GPU or onnxruntime-gpu;
on this CPU machine their cells are `unsupported` (the provider is missing).
"""

from __future__ import annotations

import functools
import importlib.util
import time
from dataclasses import dataclass
from typing import Any

from bench.config.checks import ConfigError
from bench.config.schema import CellConfig
from bench.config.tasks import task_of
from bench.engines.base import (
    BOTH_DEVICES,
    Capability,
    Engine,
    Inputs,
    LoadInfo,
    PrepareInfo,
    Unsupported,
    device_kind,
)

# engine.provider -> ONNX Runtime's execution provider
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
GPU_PROVIDERS = frozenset({"cuda", "tensorrt"})
NOT_GENERATION = (
    "generation through ONNX Runtime (a decoder exported with its KV cache and a greedy loop "
    "over it) is not built; it runs encoders and image classifiers"
)


@dataclass(frozen=True)
class OrtOptions:
    provider: str = "cpu"  # cpu | cuda | tensorrt: the execution provider that runs the graph
    opset: int = 17  # ONNX opset of the export (a new opset is a new export)


@functools.lru_cache(maxsize=1)
def available_providers() -> tuple[str, ...]:
    """The execution providers this host's onnxruntime build has (imports onnxruntime)."""
    import onnxruntime

    return tuple(onnxruntime.get_available_providers())


def missing_library_reason(provider: str) -> str | None:
    """Why the libraries the engine needs are not here (None when they are)."""
    wheel = "onnxruntime-gpu" if provider in GPU_PROVIDERS else "onnxruntime"
    if importlib.util.find_spec("onnxruntime") is None:
        return f"onnxruntime is not installed here (pip install {wheel})"
    if importlib.util.find_spec("onnx") is None:
        return "the ONNX export needs the onnx package, not installed here (pip install onnx)"
    return None


def padded_ids(prompts: tuple[tuple[int, ...], ...], pad: int, vocab: int) -> tuple[Any, Any]:
    """Token ids and attention mask of `prompts`, right-padded to the longest (an encoder's
    padding, as engine hf pads them); ids past the vocabulary wrap into it."""
    import numpy as np

    width = max(len(p) for p in prompts)
    ids = np.full((len(prompts), width), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, : len(prompt)] = prompt
        mask[row, : len(prompt)] = 1
    if vocab > 3 and int(ids.max()) >= vocab:
        ids = np.where(ids >= vocab, 3 + (ids - 3) % (vocab - 3), ids)
    return ids, mask


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"
    Options = OrtOptions
    transforms_model = True  # another runtime: quality=auto checks it against eager fp32
    capability = Capability(
        precisions=frozenset({"fp32", "fp16"}),
        devices=BOTH_DEVICES,
        tasks=frozenset({"encode", "classify_image"}),
        task_notes=(("generate", NOT_GENERATION), ("seq2seq", NOT_GENERATION)),
        varied_inputs=True,
    )
    # the export's libraries; not onnxruntime, whose import starts threads (measured: 2),
    # which a fork would not carry into the cell
    preload = ("torch", "transformers", "transformers.modeling_utils")

    @classmethod
    def validate(cls, options: OrtOptions) -> None:
        if options.provider not in PROVIDERS:
            raise ConfigError(
                "engine.provider", options.provider, "allowed: " + ", ".join(PROVIDERS)
            )
        if not 7 <= options.opset <= 20:  # what torch's TorchScript exporter writes
            raise ConfigError("engine.opset", options.opset, "an ONNX opset, 7 to 20")

    @classmethod
    def unsupported_reason(cls, cell: CellConfig) -> str | None:
        provider = cls.options_of(cell.engine.options).provider
        what = f"engine {cls.name} with provider={provider}"
        # before the table's rule: which precisions run depends on the provider
        if cell.precision not in cls.capability.precisions:
            return (
                f"engine {cls.name} runs fp32 (every provider) and fp16 (provider=cuda or "
                f"tensorrt), not {cell.precision}"
            )
        if cell.precision == "fp16" and provider not in GPU_PROVIDERS:
            return (
                f"{what} runs fp32 only: ONNX Runtime's CPU provider has fp16 kernels for few "
                "operators; fp16 runs with engine.provider=cuda or tensorrt"
            )
        if reason := super().unsupported_reason(cell):
            return reason
        device = device_kind(cell)
        if provider in GPU_PROVIDERS and device == "cpu":
            return (
                f"{what} runs on a CUDA GPU, and this cell runs on the CPU ({cell.instance.type} "
                f"lists no GPU, device={cell.device}): use a GPU instance type or device=cuda, "
                "or engine.provider=cpu"
            )
        if provider not in GPU_PROVIDERS and device == "cuda":
            return (
                f"{what} runs on the host's CPUs, and this cell runs on cuda: set "
                "engine.provider=cuda or tensorrt, or device=cpu"
            )
        return None

    @classmethod
    def host_reason(cls, cell: CellConfig) -> str | None:
        """onnxruntime or onnx missing, or the provider not in this host's onnxruntime build."""
        provider = cls.options_of(cell.engine.options).provider
        if reason := missing_library_reason(provider):
            return reason
        if provider in GPU_PROVIDERS and PROVIDERS[provider] not in available_providers():
            import onnxruntime

            return (
                f"engine.provider={provider}: onnxruntime {onnxruntime.__version__} here has no "
                f"{PROVIDERS[provider]} (its providers: {', '.join(available_providers())}); "
                "install onnxruntime-gpu on a CUDA host"
                + (" with TensorRT's libraries" if provider == "tensorrt" else "")
            )
        return None

    @classmethod
    def varies_inputs(cls, cell: CellConfig) -> bool:
        """TensorRT builds an engine per input shape: one fixed batch keeps that build in
        init_s instead of inside measured requests."""
        return cls.options_of(cell.engine.options).provider != "tensorrt"

    def __init__(self, cell: CellConfig) -> None:
        super().__init__(cell)
        self.provider = self.options.provider
        self.on_gpu = self.provider in GPU_PROVIDERS
        self.device = "cuda:0" if self.on_gpu else "cpu"
        # the graph's dtype: fp16 for the CUDA provider's fp16; TensorRT's fp16 mode casts an
        # fp32 graph itself
        self.graph_dtype = (
            "fp16" if cell.precision == "fp16" and self.provider == "cuda" else "fp32"
        )
        self.session: Any = None

    def import_libraries(self) -> None:
        if reason := missing_library_reason(self.provider):
            raise Unsupported(reason)
        import onnxruntime
        import torch

        from bench.engines.hf import import_modeling_code

        onnxruntime.set_default_logger_severity(3)  # errors only: no per-run shape warnings
        import_modeling_code(self.cell.model)  # the export's transformers modeling code
        if self.on_gpu:  # the CUDA context (ONNX Runtime shares the primary one): not load_s
            if not torch.cuda.is_available():
                raise Unsupported(f"engine.provider={self.provider} needs a CUDA device; none here")
            torch.cuda.init()
            torch.empty(1, device=self.device)

    def prepare(self) -> PrepareInfo:
        import transformers

        from bench.engines.checkpoints import ensure_checkpoint
        from bench.engines.onnx_export import ensure_export

        cell = self.cell
        got = ensure_checkpoint(cell.model, cell.models_dir, cell.seed)
        self.hf_config = transformers.AutoConfig.from_pretrained(got.folder)
        self.export = ensure_export(got.folder, cell, self.graph_dtype, self.options.opset)
        spent = [s for s in (got.build_s, self.export.exported_s) if s is not None]
        return PrepareInfo(
            checkpoint=str(got.folder),
            build_s=sum(spent) if spent else None,
            download_s=got.download_s,
        )

    def _session_options(self) -> Any:
        import onnxruntime
        import torch

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # the cell's thread policy (the runner set torch's count from it before prepare)
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        return options

    def _providers(self) -> list[Any]:
        """The provider asked for, then the ones ONNX Runtime places what it cannot run on."""
        if self.provider == "cpu":
            return ["CPUExecutionProvider"]
        cuda = ("CUDAExecutionProvider", {"device_id": 0})
        if self.provider == "cuda":
            return [cuda, "CPUExecutionProvider"]
        tensorrt = {"device_id": 0, "trt_fp16_enable": self.cell.precision == "fp16"}
        return [("TensorrtExecutionProvider", tensorrt), cuda, "CPUExecutionProvider"]

    def load(self) -> LoadInfo:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(
            str(self.export.path), sess_options=self._session_options(), providers=self._providers()
        )
        used = self.session.get_providers()
        if used[0] != PROVIDERS[self.provider]:  # ONNX Runtime fell back rather than fail
            raise Unsupported(
                f"engine.provider={self.provider}: {PROVIDERS[self.provider]} did not load in "
                f"the session (it runs on {', '.join(used)}); see onnxruntime's log"
            )
        self.output = self.session.get_outputs()[0].name
        return LoadInfo(device=self.device, params=self.export.params, extra=self.facts())

    def facts(self) -> dict[str, Any]:
        import onnxruntime

        export = self.export
        return {
            "onnxruntime_version": onnxruntime.__version__,
            "providers": self.session.get_providers(),
            "ort_intra_op_threads": self.session.get_session_options().intra_op_num_threads,
            "onnx_export": {
                "path": str(export.path),
                "dtype": self.graph_dtype,
                "opset": self.options.opset,
                "cached": export.exported_s is None,
                "exported_s": None if export.exported_s is None else round(export.exported_s, 3),
            },
        }

    def initialize(self) -> dict[str, Any]:
        """One run of the cell's batch: ONNX Runtime's first-run allocations, and the
        TensorRT provider's engine build for this shape (init_s)."""
        started = time.perf_counter()
        self.infer(self.make_batch())
        return {"first_run_s": round(time.perf_counter() - started, 4)}

    def _placed(self, arrays: dict[str, Any]) -> dict[str, Any]:
        """The inputs where the session reads them: numpy on the host, OrtValues on the GPU."""
        if not self.on_gpu:
            return arrays
        import onnxruntime

        return {
            name: onnxruntime.OrtValue.ortvalue_from_numpy(array, "cuda", 0)
            for name, array in arrays.items()
        }

    def make_batch(self) -> dict[str, Any]:
        """The task's inputs (the same seeded tensors engine hf makes), in the graph's dtype."""
        import numpy as np

        batch = task_of(self.cell.model).inputs(self.cell, self.hf_config)
        floats = np.float16 if self.graph_dtype == "fp16" else np.float32
        arrays = {
            name: value.numpy().astype(floats) if value.is_floating_point() else value.numpy()
            for name, value in batch.items()
            if name in self.export.inputs
        }
        return self._placed(arrays)

    def batch_for(self, inputs: Inputs) -> dict[str, Any]:
        """The workload's prompts as one right-padded batch; images keep the fixed batch."""
        if not task_of(self.cell.model).text:
            return super().batch_for(inputs)
        config = self.hf_config
        pad = int(config.pad_token_id) if config.pad_token_id is not None else 0
        ids, mask = padded_ids(inputs.prompts, pad, int(getattr(config, "vocab_size", 0) or 0))
        return self._placed({"input_ids": ids, "attention_mask": mask})

    def infer(self, batch: dict[str, Any]) -> Any:
        """One run; returns the logits as a numpy array on the host."""
        if not self.on_gpu:
            return self.session.run([self.output], batch)[0]
        binding = self.session.io_binding()  # one per call: a binding is not thread-safe
        for name, value in batch.items():
            binding.bind_ortvalue_input(name, value)
        binding.bind_output(self.output, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def close(self) -> None:
        self.session = None

    def describe(self) -> dict[str, Any]:
        method = "none"
        if self.cell.precision == "fp16":  # an fp16 graph, or TensorRT's per-layer choice
            method = "cast" if self.graph_dtype == "fp16" else "autocast"
        facts: dict[str, Any] = {"precision_method": method}
        if self.on_gpu:
            import torch

            facts.update(gpu_name=torch.cuda.get_device_name(), gpu_count=torch.cuda.device_count())
        return facts
