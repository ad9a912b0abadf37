"""What this host lacks for a plan that runs here (executor=local), said before anything is
written: one line, exit 2, and the ways on.

A cell on an NVIDIA GPU instance type (device auto or cuda) whose engine loads the model in
this process cannot run on a host where torch sees no CUDA device: run one by one, each would
fail after its imports (a whole grid of failed rows, the reason only in their logs). Cells
whose engine is an endpoint (engine=http, sagemaker) run anywhere: their device is the
server's.
"""

from __future__ import annotations

from bench.config.checks import UsageError
from bench.engines import ENGINES
from bench.plan.feasibility import host_has_cuda, nvidia_gpus
from bench.plan.manifest import Plan

WAYS_ON = (
    "executor=aws_batch executor.image=URI store.root=s3://BUCKET/prefix (each cell on its "
    "instance type: docs/executors.md), executor=slurm (a GPU cluster), or "
    "'grid.axes.instance=[local-cpu]' device=cpu (the same grid in miniature on this CPU)"
)


def gpu_cells(plan: Plan) -> list[int]:
    """Indices of the cells that load a model onto an NVIDIA GPU in their own process."""
    return [
        index
        for index, cell in enumerate(plan.cells)
        if not ENGINES[cell.engine.name].remote
        and cell.device != "cpu"
        and nvidia_gpus(cell.instance) > 0
    ]


def check_this_host(plan: Plan) -> None:
    """UsageError (one line) when cells of `plan`, run on this host, need a GPU it lacks."""
    wanting = gpu_cells(plan)
    if not wanting or host_has_cuda():
        return
    instances = sorted({plan.cells[i].instance.type for i in wanting})
    models = sorted({str(plan.cells[i].instance.gpu_model) for i in wanting})
    more = f" and {len(instances) - 4} more" if len(instances) > 4 else ""
    named = ", ".join(instances[:4]) + more
    raise UsageError(
        f"{len(wanting)} of {len(plan.cells)} cells run on NVIDIA GPUs ({named}: "
        f"{', '.join(models)}) and this host has none (torch sees no CUDA device); nothing was "
        f"written. Ways on: {WAYS_ON}"
    )
