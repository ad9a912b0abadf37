"""Will a cell fit its instance? Memory (RMME per GPU against GPU memory), GPU count, and
native precision support, decided before anything is submitted. Also `fit`: which instance
types and partition degrees can host a model at all, cheapest first.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from bench.config.schema import CellConfig, InstanceSpec, ModelConfig
from bench.config.tasks import task_of
from bench.engines import ENGINES
from bench.measure.support import why_unsupported
from bench.plan.arch_cache import cached, entry_key
from bench.plan.memory_estimate import Estimate, bytes_per_sequence, estimate

GB_PER_GIB = 2**30 / 1e9
NATIVE_LOW_PRECISION_CC = 7.5  # bf16 and int8 tensor cores from compute capability 7.5 on
INT8_TENSOR_CORE_CC = 7.5  # below it int8 runs (seed 000: it works), only slower
# Over GPU memory by at most this share: `borderline`, which runs (the guide's estimate is
# "intentionally cautious", and it advises trying instances that are barely excluded).
BORDERLINE_MARGIN = 0.2


def _architecture_key(model: ModelConfig) -> str:
    """The architecture as a hashable key, for the caches below."""
    return json.dumps(model.architecture, sort_keys=True)


@functools.cache
def _params(auto_class: str, architecture_key: str) -> int:
    from bench.plan.memory_estimate import count_parameters

    # kept on disk: counting imports torch and transformers (bench.plan.arch_cache)
    return cached(
        entry_key("params", auto_class, architecture_key),
        lambda: count_parameters(auto_class, json.loads(architecture_key)),
    )


@functools.cache
def _shape(architecture_key: str) -> dict[str, int]:
    from bench.plan.memory_estimate import architecture_shape

    return cached(
        entry_key("shape", architecture_key),
        lambda: architecture_shape(json.loads(architecture_key)),
    )


def per_sequence_bytes(model: ModelConfig, precision: str) -> float:
    """What one more sequence adds at run time (KV cache for generation, activations for an
    encoder); 0 for image models and checkpoint-only models (nothing to read it from)."""
    task = task_of(model)
    if not model.architecture.get("model_type") or task.name == "classify_image":
        return 0.0
    shape = _shape(_architecture_key(model))
    kv_cache = task.name in ("generate", "seq2seq")
    return bytes_per_sequence(shape, task.memory_tokens(model), precision, kv_cache)


def model_parameters(model: ModelConfig) -> int | None:
    """Exact parameter count from the architecture (None for a checkpoint-only model)."""
    if not model.architecture.get("model_type"):
        return None
    return _params(model.auto_class, _architecture_key(model))


def gpu_capacity_gb(instance: InstanceSpec) -> float:
    """GB per GPU a process can allocate: the usable figure where the catalog has one."""
    usable = instance.gpu_memory_usable_gib
    return (usable if usable is not None else instance.gpu_memory_gib) * GB_PER_GIB


def nvidia_gpus(instance: InstanceSpec) -> int:
    """CUDA GPUs on the instance (0 for CPU-only and AWS Neuron instances)."""
    return instance.gpus if instance.accelerator is None else 0


def precision_reason(precision: str, instance: InstanceSpec) -> str | None:
    """Why `precision` cannot run on the instance's GPUs (None when it can)."""
    cc = instance.compute_capability
    if (
        nvidia_gpus(instance)
        and precision in ("bf16", "amp_bf16")
        and cc is not None
        and cc < NATIVE_LOW_PRECISION_CC
    ):
        return (
            f"{precision} is not native on {instance.gpu_model} (compute capability {cc} < "
            f"{NATIVE_LOW_PRECISION_CC})"
        )
    return None


def precision_warning(precision: str, instance: InstanceSpec) -> str | None:
    """What runs but slower: int8 without int8 tensor cores."""
    cc = instance.compute_capability
    if (
        nvidia_gpus(instance)
        and precision == "int8"
        and cc is not None
        and cc < INT8_TENSOR_CORE_CC
    ):
        return (
            f"int8 on {instance.gpu_model} (compute capability {cc} < {INT8_TENSOR_CORE_CC}) has "
            "no int8 tensor cores: it runs, slower than on newer GPUs"
        )
    return None


def cell_estimate(cell: CellConfig) -> Estimate | None:
    """The memory estimate for a cell on a GPU instance (None on CPU or without an
    architecture to count)."""
    params = model_parameters(cell.model) if nvidia_gpus(cell.instance) else None
    if params is None:
        return None
    tokens = task_of(cell.model).memory_tokens(cell.model)
    return estimate(
        params,
        cell.precision,
        cell.engine.name,
        cell.tp_degree,
        cell.model.family,
        tokens,
        cell.batch_size,
        per_sequence_bytes(cell.model, cell.precision),
    )


def infeasible_reason(cell: CellConfig) -> str | None:
    """Why `cell` cannot work on its instance, with the numbers; None when it can (or when
    there is nothing to check: a CPU instance, a model without an architecture)."""
    instance = cell.instance
    if not nvidia_gpus(instance):
        return None
    if reason := precision_reason(cell.precision, instance):
        return reason
    est = cell_estimate(cell)
    if est is None:
        return None
    capacity = gpu_capacity_gb(instance)
    tokens = task_of(cell.model).memory_tokens(cell.model)
    if est.rmme_per_gpu_gb > capacity * (1 + BORDERLINE_MARGIN):
        return (
            f"needs ~{est.rmme_per_gpu_gb:.1f} GB per GPU (RMME, {est.params / 1e9:.2f}B params, "
            f"{cell.precision}, {cell.tp_degree}-way, {tokens} tokens x {cell.batch_size}) but "
            f"{instance.gpu_model} has {capacity:.1f} GB usable"
        )
    return None


def borderline_reason(cell: CellConfig) -> str | None:
    """Why a cell that `infeasible_reason` lets run may not fit: its estimate is over GPU
    memory, by no more than BORDERLINE_MARGIN."""
    if (est := cell_estimate(cell)) is None:  # also None on a CPU instance
        return None
    capacity = gpu_capacity_gb(cell.instance)
    if not capacity < est.rmme_per_gpu_gb <= capacity * (1 + BORDERLINE_MARGIN):
        return None
    return (
        f"~{est.rmme_per_gpu_gb:.1f} GB per GPU against {capacity:.1f} GB usable "
        f"({est.rmme_per_gpu_gb / capacity - 1:.0%} over the cautious estimate; worth a try)"
    )


def cell_warnings(cell: CellConfig) -> list[str]:
    """What the planner warns about a cell that runs on GPUs (its row's `warnings`)."""
    if cell.device == "cpu":
        return []
    found = [
        borderline_reason(cell),
        precision_warning(cell.precision, cell.instance),
        ENGINES[cell.engine.name].plan_warning(cell),
    ]
    return [w for w in found if w]


@dataclass(frozen=True)
class FitRow:
    instance: str
    gpu_model: str
    engine: str  # the engine the partition degree is offered for
    partitions: int
    replicas: int
    lbme_gb: float
    lmme_gb: float  # all partitions together
    per_sequence_gb: float  # KV cache or activations each sequence beyond the first adds
    rmme_per_gpu_gb: float
    gpu_gb: float
    fit: str  # fits | borderline | no
    usd_per_hour: float | None  # None: the price list has no price for the type
    usd_per_replica_hour: float | None
    note: str

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def fit_table(
    model: ModelConfig,
    precision: str,
    engine: str,
    batch_size: int,
    catalog: list[InstanceSpec],
    margin: float,
    partitions: tuple[int, ...] = (1, 2, 4, 8),
    unsupported: Callable[[InstanceSpec, int], str | None] | None = None,
    params: int | None = None,
    pricing: str = "ec2",
) -> list[FitRow]:
    """Every GPU instance type x partition degree the engine can run (`unsupported`: why it
    cannot, None when it can): does the model fit, and at what price per replica.
    `borderline`: over capacity by less than `margin` (the guide advises trying instances that
    are barely excluded). Cheapest per replica first, fits before borderline. `params`: a
    parameter count to fit instead of the model's own."""
    # a bare parameter count has no architecture to read a sequence's KV cache from
    extra = 0.0 if params else per_sequence_bytes(model, precision)
    params = params or model_parameters(model)
    if params is None:
        raise ValueError(f"model {model.name} has no architecture to count parameters from")
    tokens = task_of(model).memory_tokens(model)
    rows = []
    for instance in catalog:
        for p in partitions:
            if not nvidia_gpus(instance) or p > instance.gpus:
                continue
            if unsupported is not None and unsupported(instance, p):
                continue  # `plan` would refuse it: never offer it
            est = estimate(params, precision, engine, p, model.family, tokens, batch_size, extra)
            capacity = gpu_capacity_gb(instance)
            over = est.rmme_per_gpu_gb / capacity - 1
            fit = "fits" if over <= 0 else "borderline" if over <= margin else "no"
            replicas = instance.gpus // p
            price = list_price(instance, pricing)
            note = (
                precision_reason(precision, instance)
                or precision_warning(precision, instance)
                or ""
            )
            rows.append(
                FitRow(
                    instance=instance.type,
                    gpu_model=instance.gpu_model or "",
                    engine=engine,
                    partitions=p,
                    replicas=replicas,
                    lbme_gb=round(est.lbme_gb, 2),
                    lmme_gb=round(est.lmme_gb, 2),
                    per_sequence_gb=round(est.per_sequence_gb, 3),
                    rmme_per_gpu_gb=round(est.rmme_per_gpu_gb, 2),
                    gpu_gb=round(capacity, 2),
                    fit=fit,
                    usd_per_hour=price,
                    usd_per_replica_hour=None if price is None else round(price / replicas, 4),
                    note=note,
                )
            )
    order = {"fits": 0, "borderline": 1, "no": 2}
    return sorted(
        rows,
        key=lambda r: (
            order[r.fit],
            math.inf if r.usd_per_replica_hour is None else r.usd_per_replica_hour,
            r.partitions,
        ),
    )


def list_price(instance: InstanceSpec, pricing: str) -> float | None:
    """USD per hour on the `pricing` list (ec2 | sagemaker); None where it has none."""
    return instance.sagemaker_usd_per_hour if pricing == "sagemaker" else instance.usd_per_hour


def planner_warnings(cell: CellConfig) -> str | None:
    """The planner's warnings for a cell that ran (borderline memory, slow int8), joined: a
    row's `warnings`."""
    return "; ".join(cell_warnings(cell)) or None


# present wherever the NVIDIA kernel driver is loaded (bare metal, and containers given GPUs)
NVIDIA_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl")


@functools.cache
def host_has_cuda() -> bool:
    """Whether torch sees a CUDA device on this machine (torch imported only when asked, and
    not at all on a host without the NVIDIA driver: importing it costs ~2 s, and torch finds
    no device where the driver's files are missing)."""
    import importlib.util
    import os

    if not any(os.path.exists(p) for p in NVIDIA_DRIVER_FILES):
        return False
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def cuda_reason(cell: CellConfig) -> str | None:
    """Why `device=cuda` cannot run on this machine, for a cell on an instance type the
    catalog gives no NVIDIA GPU (local-cpu: the machine the sweep runs on), so that the cell
    is `unsupported` with the reason before it runs, not a failed row. An endpoint's device
    is its server's business."""
    if cell.device != "cuda" or nvidia_gpus(cell.instance) or ENGINES[cell.engine.name].remote:
        return None
    if host_has_cuda():
        return None
    return (
        f"device=cuda but this machine has no CUDA device (torch sees none) and "
        f"{cell.instance.type} lists no GPU: use device=cpu or auto here, or a GPU instance "
        "type on a scheduler"
    )


DECISIONS = ("run", "borderline", "unsupported", "infeasible")  # borderline cells run


class Decision(NamedTuple):
    """What the planner decides for a cell, and why (or its warnings, for one that runs)."""

    outcome: str  # one of DECISIONS
    reason: str

    @property
    def runs(self) -> bool:
        return self.outcome in ("run", "borderline")


def decide(cell: CellConfig, this_host: bool = False) -> Decision:
    """The one decision on whether a cell runs: `bench plan`, `bench fit` and the sweep ask it
    (the runner asks its first part, bench.measure.support, before loading). `this_host`:
    the cell runs on this machine, so a missing library or launcher counts."""
    if reason := why_unsupported(cell, this_host):
        return Decision("unsupported", reason)
    if this_host and (reason := cuda_reason(cell)):
        return Decision("unsupported", reason)
    if reason := infeasible_reason(cell):
        return Decision("infeasible", reason)
    outcome = "borderline" if borderline_reason(cell) else "run"
    return Decision(outcome, "; ".join(cell_warnings(cell)))
