"""Where this process stands among MPI ranks (Open MPI's mpirun), and whether this host can
launch ranks: what the engines that run as several ranks ask at plan and load time
(bench.measure.lockstep runs the group itself)."""

from __future__ import annotations

import os
import shutil

MPI_SIZE_ENV = "OMPI_COMM_WORLD_SIZE"
MPI_RANK_ENV = "OMPI_COMM_WORLD_RANK"


def mpi_world() -> tuple[int, int]:
    """(rank, size) of this process under Open MPI's mpirun; (0, 1) outside it."""
    return int(os.environ.get(MPI_RANK_ENV, "0")), int(os.environ.get(MPI_SIZE_ENV, "1"))


def under_mpi() -> bool:
    return MPI_SIZE_ENV in os.environ


def mpirun_reason(ranks: int) -> str | None:
    """Why this host cannot launch `ranks` ranks (None when it can)."""
    if ranks > 1 and not under_mpi() and shutil.which("mpirun") is None:
        return (
            f"the cell runs as {ranks} MPI ranks and this host has no mpirun (Open MPI: "
            "apt-get install openmpi-bin; the fastertransformer image has it)"
        )
    return None
