"""bench.measure.support: whether a cell can run at all, asked of its engine first, then its
scenario and workload, and of this host only when the cell runs here."""

from __future__ import annotations

import pytest

from bench.measure.support import why_unsupported
from bench.plan.grid import plan_from_overrides


def _cell(*overrides: str):
    return plan_from_overrides(list(overrides)).cells[0]


def test_a_cell_every_part_can_run_has_no_reason():
    cell = _cell("engine=sleep")
    assert why_unsupported(cell, this_host=False) is None
    assert why_unsupported(cell, this_host=True) is None


def test_the_engines_reason_comes_first():
    # the capacity scenario would refuse tp_degree=2 too; the engine's reason is the one given
    cell = _cell("engine=hf", "scenario=capacity", "tp_degree=2", "instance=inf2.xlarge")
    assert why_unsupported(cell, this_host=False).startswith(
        "inf2.xlarge has AWS Neuron accelerators (Inferentia2), not CUDA GPUs"
    )


def test_the_scenarios_reason_once_the_engine_can_run_the_cell():
    base = ["engine=accelerate", "instance=g5.12xlarge", "tp_degree=2"]
    assert why_unsupported(_cell(*base), this_host=False) is None
    assert why_unsupported(_cell(*base, "scenario=capacity"), this_host=False) == (
        "the capacity scenario loads whole copies on one device; set tp_degree=1"
    )


def test_what_this_host_lacks_counts_only_for_a_cell_run_here(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("bench.engines.mpi.shutil.which", lambda name: None)  # no mpirun here
    cell = _cell("engine=sleep", "engine.mpi_ranks=2")
    assert why_unsupported(cell, this_host=False) is None  # a cluster's node may have it
    assert "no mpirun" in (why_unsupported(cell, this_host=True) or "")
