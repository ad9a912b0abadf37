"""Which process runs a cell whose engine serves as several MPI ranks: rank 0 (or a
one-process cell) here; a follower follows rank 0; outside mpirun, the command again under
mpirun (and where the host has none, here, where the cell says unsupported)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.cell import rank_group
from bench.engines import mpi
from bench.plan.grid import plan_from_overrides

ARGV = ["run", "engine=sleep"]


@pytest.fixture(scope="module")
def cell() -> Any:
    return plan_from_overrides(["engine=sleep"]).cells[0]


@pytest.fixture
def ranks(monkeypatch: pytest.MonkeyPatch, cell: Any) -> list[Any]:
    """What each lockstep call was asked (follow: the cell; relaunch: ranks and argv)."""
    asked: list[Any] = []
    monkeypatch.setattr(rank_group.lockstep, "follow", lambda c, e: asked.append(c) or 11)
    monkeypatch.setattr(rank_group.lockstep, "relaunch", lambda n, a: asked.append((n, a)) or 22)
    monkeypatch.delenv(mpi.MPI_SIZE_ENV, raising=False)
    monkeypatch.delenv(mpi.MPI_RANK_ENV, raising=False)
    return asked


def _engine_ranks(monkeypatch: pytest.MonkeyPatch, cell: Any, count: int) -> None:
    engine = rank_group.ENGINES[cell.engine.name]
    monkeypatch.setattr(engine, "mpi_ranks", classmethod(lambda cls, c: count))


def test_a_one_process_cell_runs_here(cell: Any, ranks: list[Any]) -> None:
    assert rank_group.run_as_rank_group(cell, ARGV) is None
    assert ranks == []


def test_outside_mpirun_a_group_cell_runs_again_under_it(
    monkeypatch: pytest.MonkeyPatch, cell: Any, ranks: list[Any]
) -> None:
    _engine_ranks(monkeypatch, cell, 2)
    monkeypatch.setattr(rank_group.mpi, "mpirun_reason", lambda n: None)
    assert rank_group.run_as_rank_group(cell, ARGV) == 22
    assert ranks == [(2, ARGV)]


def test_without_mpirun_the_cell_runs_here_to_say_unsupported(
    monkeypatch: pytest.MonkeyPatch, cell: Any, ranks: list[Any]
) -> None:
    _engine_ranks(monkeypatch, cell, 2)
    monkeypatch.setattr(rank_group.mpi, "mpirun_reason", lambda n: "no mpirun")
    assert rank_group.run_as_rank_group(cell, ARGV) is None and ranks == []


@pytest.mark.parametrize(("rank", "expected"), [("0", None), ("1", 11)])
def test_under_mpirun_rank_0_runs_it_and_the_others_follow(
    monkeypatch: pytest.MonkeyPatch, cell: Any, ranks: list[Any], rank: str, expected: Any
) -> None:
    monkeypatch.setenv(mpi.MPI_SIZE_ENV, "2")
    monkeypatch.setenv(mpi.MPI_RANK_ENV, rank)
    assert rank_group.run_as_rank_group(cell, ARGV) == expected
    assert ranks == ([] if expected is None else [cell])
