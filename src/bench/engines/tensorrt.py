"""TensorRT through torch-tensorrt: the transformers model, loaded as engine hf loads it (in the
cell's precision, on the GPU), exported with torch.export and compiled ahead of time into
TensorRT engines for the cell's own input shapes (`torch_tensorrt.dynamo.compile`).

Timed parts: load_s is engine hf's (checkpoint to weights on the GPU); init_s is the export, the
TensorRT build and one run of the cell's batch. Precision follows the weights (explicit typing):
fp32 (TF32 off, as torch's own fp32 matmuls), or the model cast to fp16 / bf16. Encoders and
image classifiers only; one fixed batch per cell (an engine is built for one shape), and one
request at a time (a TensorRT execution context runs one inference at once), so client
threads queue for it as they would for one GPU stream.

UNTESTED HERE: written without a GPU or torch-tensorrt (which needs CUDA); on this CPU machine
every cell is `unsupported` (host_reason says which part is missing). The calls follow
torch-tensorrt 2.x's documented dynamo API (torch.export.export, then
torch_tensorrt.dynamo.compile with arg_inputs).
"""

from __future__ import annotations

import importlib.util
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench.config.checks import ConfigError
from bench.config.schema import CellConfig
from bench.engines.base import ANY_PRECISION, Capability
from bench.engines.hf import HFEngine

NOT_GENERATION = (
    "generation through TensorRT (a decoder compiled with its KV cache, as TensorRT-LLM does) "
    "is not built; it runs encoders and image classifiers"
)


def tensorrt_reason() -> str | None:
    """Why torch-tensorrt cannot compile here (None when it can): the library, a CUDA device."""
    if importlib.util.find_spec("torch_tensorrt") is None:
        return (
            "torch-tensorrt is not installed here (pip install torch-tensorrt, the release "
            "built for the installed torch, on a CUDA host)"
        )
    import torch

    if not torch.cuda.is_available():
        return "TensorRT compiles for a CUDA GPU, and torch sees none here"
    return None


@dataclass(frozen=True)
class TensorRTOptions:
    optimization_level: int = 3  # TensorRT's builder: 0 (quickest build) to 5 (longest search)
    min_block_size: int = 1  # fewest operators in a TensorRT subgraph; smaller ones run in torch


class TensorRTEngine(HFEngine):
    name = "tensorrt"
    Options = TensorRTOptions
    transforms_model = True  # compiled kernels: quality=auto checks it against eager fp32
    capability = Capability(
        precisions=ANY_PRECISION,
        devices=frozenset({"cuda"}),
        tasks=frozenset({"encode", "classify_image"}),
        task_notes=(("generate", NOT_GENERATION), ("seq2seq", NOT_GENERATION)),
    )
    cuda_sync_scope = "device"  # the compiled module runs on the stream its runtime picks

    @classmethod
    def validate(cls, options: TensorRTOptions) -> None:
        if not 0 <= options.optimization_level <= 5:
            raise ConfigError("engine.optimization_level", options.optimization_level, "0 to 5")
        if options.min_block_size < 1:
            raise ConfigError("engine.min_block_size", options.min_block_size, "at least 1")

    @classmethod
    def unsupported_reason(cls, cell: CellConfig) -> str | None:
        reason = super().unsupported_reason(cell)
        if reason == f"engine {cls.name} does not run on cpu":  # the table's rule, explained
            return (
                f"engine {cls.name} compiles for a CUDA GPU, and this cell runs on the CPU "
                f"({cell.instance.type} lists no GPU, device={cell.device}): use a GPU instance "
                "type or device=cuda"
            )
        return reason

    @classmethod
    def host_reason(cls, cell: CellConfig) -> str | None:
        reason = tensorrt_reason()
        return f"engine {cls.name}: {reason}" if reason else None

    def __init__(self, cell: CellConfig) -> None:
        super().__init__(cell)
        self.compiled: Any = None
        self._lock = threading.Lock()

    def import_libraries(self) -> None:
        super().import_libraries()
        import torch_tensorrt  # noqa: F401  (TensorRT's libraries: import_s, not init_s)

    def initialize(self) -> dict[str, Any]:
        """Export the model at the cell's shapes and build its TensorRT engines (init_s)."""
        import tensorrt
        import torch
        import torch_tensorrt

        from bench.engines.onnx_export import first_output_module

        batch = self.make_batch()
        args = tuple(batch.values())
        module = first_output_module(self.model, list(batch))
        options = self.options
        started = time.perf_counter()
        with torch.no_grad():
            exported = torch.export.export(module, args, strict=False)
            self.compiled = torch_tensorrt.dynamo.compile(
                exported,
                arg_inputs=args,
                use_explicit_typing=True,  # the weights' dtype decides each layer's precision
                disable_tf32=self.cell.precision == "fp32",
                optimization_level=options.optimization_level,
                min_block_size=options.min_block_size,
                truncate_double=True,
            )
        compile_s = time.perf_counter() - started
        self.infer(batch)
        self.synchronize()
        return {
            "compile": {
                "optimization_level": options.optimization_level,
                "min_block_size": options.min_block_size,
                "compile_s": round(compile_s, 3),
            },
            "torch_tensorrt_version": torch_tensorrt.__version__,
            "tensorrt_version": tensorrt.__version__,
        }

    def infer(self, batch: dict[str, Any]) -> Any:
        """The compiled module's logits (on the GPU)."""
        import torch

        with self._lock, torch.inference_mode():
            return self.compiled(*batch.values())

    def close(self) -> None:
        self.compiled = None
        super().close()
