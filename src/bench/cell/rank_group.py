"""A cell whose engine serves as several MPI ranks (bench.measure.lockstep): which process
runs it. Rank 0 measures; the other ranks repeat its requests; outside mpirun the command
that asked for the cell runs again under `mpirun -np N`."""

from __future__ import annotations

from bench.config.schema import CellConfig
from bench.engines import ENGINES, mpi
from bench.measure import lockstep


def run_as_rank_group(cell: CellConfig, argv: list[str]) -> int | None:
    """The exit code when this process is not the one to run `cell` itself: outside mpirun,
    `argv` (this command's words after `bench`) again under `mpirun -np N`; a follower rank,
    following rank 0. None: run the cell here (rank 0, a one-process cell, or a host without
    mpirun, where the cell's support check says unsupported)."""
    rank, _ = mpi.mpi_world()
    if mpi.under_mpi() and rank == 0:
        return None
    engine_class = ENGINES[cell.engine.name]
    if mpi.under_mpi():
        return lockstep.follow(cell, engine_class)
    ranks = engine_class.mpi_ranks(cell)
    if ranks < 2 or mpi.mpirun_reason(ranks):
        return None
    return lockstep.relaunch(ranks, argv)
