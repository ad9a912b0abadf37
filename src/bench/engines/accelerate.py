"""Hugging Face Accelerate: `device_map="auto"` placement (pipeline partitioning of the layers).

On GPUs the layers are spread over the cell's TP-degree GPUs (`max_memory` per GPU; by default
the catalog's GPU memory less a margin for activations). On a machine without GPUs the engine
runs in offload mode: the last (1 - cpu_memory_fraction) of the model's blocks are mapped to
disk with an offload folder, so Accelerate really keeps them on disk and streams them in for
each forward pass. The
resolved device map (module -> cpu | disk | GPU index) goes into the row's engine_info.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config.checks import ConfigError
from bench.engines.base import (
    ALL_TASKS,
    ANY_PRECISION,
    BOTH_DEVICES,
    Capability,
    Unsupported,
    device_kind,
)
from bench.engines.hf import HFEngine

GPU_HEADROOM = 0.9  # share of a GPU's memory given to weights; the rest is for activations


@dataclass(frozen=True)
class AccelerateOptions:
    cpu_memory_fraction: float = 0.5  # CPU offload mode: share of the repeated blocks in RAM
    max_gpu_memory_gib: float = 0.0  # per GPU; 0 = the catalog's usable GPU memory x 0.9 (the
    # device's own memory x 0.9 where the instance has no GPU in the catalog)


class AccelerateEngine(HFEngine):
    name = "accelerate"
    Options = AccelerateOptions
    # int8: bitsandbytes LLM.int8() across the GPUs of the device map (transformers' loader);
    # on CPU the offload hooks and torch's dynamic quantisation do not combine
    capability = Capability(
        ANY_PRECISION | {"int8"}, BOTH_DEVICES, max_tp=None, tasks=ALL_TASKS, varied_inputs=True
    )
    cuda_sync_scope = "device"  # a model split over GPUs: every device's streams count

    def import_libraries(self) -> None:
        import accelerate  # noqa: F401  (device maps and offload hooks)

        super().import_libraries()

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
        if reason is None and cell.precision == "int8" and device_kind(cell) == "cpu":
            return (
                "accelerate's int8 is bitsandbytes LLM.int8() on CUDA GPUs; on CPU run int8 "
                "with engine=hf (torch dynamic quantisation)"
            )
        return reason

    def offload_map(self) -> dict[str, str]:
        """Device map for offload mode: the model's repeated blocks (its largest ModuleList)
        split so the first `cpu_memory_fraction` of them stay in RAM and the rest live on
        disk; everything else in RAM. Written out explicitly, not left to "auto", whose
        choice differs between Accelerate versions (some offload the whole model)."""
        import math

        import torch
        import transformers
        from accelerate import init_empty_weights

        from bench.engines.checkpoints import auto_class

        config = transformers.AutoConfig.from_pretrained(self.folder)
        with init_empty_weights():
            model = auto_class(self.cell.model.auto_class).from_config(config)
        lists = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.ModuleList)]
        if not lists:
            raise Unsupported("accelerate offload mode needs a model with repeated blocks")
        name, blocks = max(lists, key=lambda nm: sum(p.numel() for p in nm[1].parameters()))
        keep = math.ceil(len(blocks) * self.options.cpu_memory_fraction)
        device_map = {f"{name}.{i}": "cpu" if i < keep else "disk" for i in range(len(blocks))}
        # Everything off the path to the blocks stays in RAM, named at the highest level.
        parts = name.split(".")
        for depth in range(len(parts)):
            parent = ".".join(parts[:depth])
            module = model.get_submodule(parent) if parent else model
            for child, _ in module.named_children():
                if child != parts[depth]:
                    device_map[f"{parent}.{child}" if parent else child] = "cpu"
            for param, _ in module.named_parameters(recurse=False):
                device_map[f"{parent}.{param}" if parent else param] = "cpu"
        return device_map

    def load_kwargs(self) -> dict[str, Any]:
        kwargs = super().load_kwargs()
        if self.device == "cpu":
            self.offload_dir = (
                Path(self.cell.models_dir).expanduser() / "offload" / self.cell.cell_id
            )
            self.offload_dir.mkdir(parents=True, exist_ok=True)
            kwargs.update(
                device_map=self.offload_map(),
                offload_folder=str(self.offload_dir),
                offload_state_dict=True,
            )
        else:
            kwargs.update(
                device_map="auto",
                max_memory={
                    i: f"{self.gpu_budget_gib(i):.2f}GiB" for i in range(self.cell.tp_degree)
                },
            )
        return kwargs

    def gpu_budget_gib(self, index: int) -> float:
        """What the device map may put on GPU `index`: the option, else the catalog's usable
        memory less headroom, else (an instance the catalog gives no GPU, such as local-cpu
        with device=cuda) the device's own memory less headroom, never zero: a zero budget
        would map every layer to the CPU."""
        if self.options.max_gpu_memory_gib:
            return self.options.max_gpu_memory_gib
        instance = self.cell.instance
        usable = instance.gpu_memory_usable_gib or instance.gpu_memory_gib
        if not usable:
            import torch

            usable = torch.cuda.get_device_properties(index).total_memory / 2**30
        return usable * GPU_HEADROOM

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
