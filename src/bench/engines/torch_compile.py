"""torch.compile over transformers eager: the same model, its forward compiled by TorchDynamo.

Compilation is lazy in torch (it happens at the first call with a new shape), so initialize()
compiles and runs one batch of the cell's own shape: that compile time is init_s, and the
measured requests see compiled code only. Generation grows the sequence one token a step;
`dynamic=True` (the default here) compiles shape-generic code once instead of once per length.

`backend=tensorrt` (torch-tensorrt's torch.compile backend) needs torch-tensorrt and a CUDA
device: a cell planned for the CPU, or run on a host without them, is `unsupported`, saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.config.checks import ConfigError
from bench.config.schema import CellConfig
from bench.config.tasks import task_of
from bench.engines.base import ALL_TASKS, ANY_PRECISION, BOTH_DEVICES, Capability, device_kind
from bench.engines.hf import HFEngine
from bench.engines.tensorrt import tensorrt_reason

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# torch-tensorrt registers these with torch.compile when imported; they compile for CUDA only
TENSORRT_BACKENDS = frozenset({"tensorrt", "torch_tensorrt"})


@dataclass(frozen=True)
class CompileOptions:
    mode: str = "default"  # torch.compile mode
    backend: str = "inductor"  # torch.compile backend (inductor, aot_eager, eager)
    dynamic: bool = True  # shape-generic kernels (one compile for every decode length)
    fullgraph: bool = False  # fail rather than fall back to eager on a graph break


class TorchCompileEngine(HFEngine):
    name = "torch_compile"
    transforms_model = True  # quality=auto checks its outputs against eager fp32
    Options = CompileOptions
    capability = Capability(ANY_PRECISION, BOTH_DEVICES, tasks=ALL_TASKS)

    @classmethod
    def validate(cls, options: CompileOptions) -> None:
        if options.mode not in MODES:
            raise ConfigError("engine.mode", options.mode, "allowed: " + ", ".join(MODES))

    @classmethod
    def unsupported_reason(cls, cell: CellConfig) -> str | None:
        reason = super().unsupported_reason(cell)
        backend = cls.options_of(cell.engine.options).backend
        if reason is None and backend in TENSORRT_BACKENDS and device_kind(cell) == "cpu":
            return (
                f"engine {cls.name} backend={backend} compiles for a CUDA GPU (torch-tensorrt), "
                f"and this cell runs on the CPU ({cell.instance.type}, device={cell.device})"
            )
        return reason

    @classmethod
    def host_reason(cls, cell: CellConfig) -> str | None:
        backend = cls.options_of(cell.engine.options).backend
        if backend in TENSORRT_BACKENDS and (reason := tensorrt_reason()):
            return f"engine {cls.name} backend={backend}: {reason}"
        return None

    def initialize(self) -> dict[str, Any]:
        import torch

        options = self.options
        if options.backend in TENSORRT_BACKENDS:
            import torch_tensorrt  # noqa: F401  (registers its backend with torch.compile)

        self.model.forward = torch.compile(
            self.model.forward,
            mode=options.mode,
            backend=options.backend,
            dynamic=options.dynamic,
            fullgraph=options.fullgraph,
        )
        batch = self.make_batch()  # compile now, at the cell's shapes: this is init_s
        if task_of(self.cell.model).generates:
            self.generate(batch, self.cell.model.new_tokens)
        else:
            self.infer(batch)
        self.synchronize()
        return {
            "compile": {
                "mode": options.mode,
                "backend": options.backend,
                "dynamic": options.dynamic,
            },
            "torch_version": torch.__version__,
        }
