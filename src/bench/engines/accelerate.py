"""Hugging Face Accelerate: `device_map="auto"` placement (pipeline partitioning of the layers).

On GPUs the layers are spread over the cell's TP-degree GPUs (`max_memory` per GPU; by default
the catalog's GPU memory less a margin for activations). On a machine without GPUs the engine
runs in offload mode: `max_memory={"cpu": ...}` below the model's size and an offload folder,
so Accelerate really keeps some layers on disk and streams them in for each forward pass. The
resolved device map (module -> cpu | disk | GPU index) goes into the row's engine_info.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import ConfigError
from bench.engines.base import ANY_PRECISION, BOTH_DEVICES, Capability
from bench.engines.hf import HFEngine

GPU_HEADROOM = 0.9  # share of a GPU's memory given to weights; the rest is for activations


@dataclass(frozen=True)
class AccelerateOptions:
    cpu_memory_fraction: float = 0.5  # CPU offload mode: share of the weights kept in RAM
    max_gpu_memory_gib: float = 0.0  # per GPU; 0 = the catalog's GPU memory x 0.9


class AccelerateEngine(HFEngine):
    name = "accelerate"
    Options = AccelerateOptions
    capability = Capability(ANY_PRECISION, BOTH_DEVICES, max_tp=None)

    @classmethod
    def validate(cls, options: AccelerateOptions) -> None:
        if not 0 < options.cpu_memory_fraction <= 1:
            raise ConfigError(
                "engine.cpu_memory_fraction", options.cpu_memory_fraction, "must be in (0, 1]"
            )

    @classmethod
    def unsupported_reason(cls, cell: Any) -> str | None:
        reason = super().unsupported_reason(cell)
        if reason is None and cell.tp_degree > 1 and cell.instance.gpus == 0:
            return "accelerate partitions over GPUs; on CPU it offloads to disk (tp_degree=1)"
        return reason

    def _weights_bytes(self) -> int:
        return sum(p.stat().st_size for p in Path(self.folder).glob("*.safetensors"))

    def load_kwargs(self) -> dict[str, Any]:
        kwargs = super().load_kwargs()
        if self.device == "cpu":
            budget = int(self._weights_bytes() * self.options.cpu_memory_fraction)
            self.offload_dir = (
                Path(self.cell.models_dir).expanduser() / "offload" / self.cell.cell_id
            )
            self.offload_dir.mkdir(parents=True, exist_ok=True)
            kwargs.update(
                device_map="auto",
                max_memory={"cpu": max(budget, 1)},
                offload_folder=str(self.offload_dir),
                offload_state_dict=True,
            )
        else:
            per_gpu = (
                self.options.max_gpu_memory_gib or self.cell.instance.gpu_memory_gib * GPU_HEADROOM
            )
            kwargs.update(
                device_map="auto",
                max_memory={i: f"{per_gpu:.2f}GiB" for i in range(self.cell.tp_degree)},
            )
        return kwargs

    def load_facts(self) -> dict[str, Any]:
        device_map = dict(getattr(self.model, "hf_device_map", {}) or {})
        placed = sorted({str(v) for v in device_map.values()})
        return {"device_map": device_map, "placements": placed, "tp_degree": self.cell.tp_degree}

    def input_device(self) -> str:
        return "cpu" if self.device == "cpu" else "cuda:0"

    def close(self) -> None:
        super().close()
        offload = getattr(self, "offload_dir", None)
        if offload is not None:
            shutil.rmtree(offload, ignore_errors=True)
