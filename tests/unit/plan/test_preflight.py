"""bench.plan.preflight: what this host lacks for a plan that runs here, said in one line
before anything is written: cells that load a model on an NVIDIA GPU on a host without one.
Endpoint engines, and cells on the CPU, run anywhere."""

from __future__ import annotations

import pytest

from bench.config.checks import UsageError
from bench.plan import preflight
from bench.plan.grid import plan_from_overrides
from bench.plan.preflight import gpu_cells


def test_endpoint_cells_on_a_gpu_instance_pass_the_host_check() -> None:
    plan = plan_from_overrides(
        ["engine=http", "engine.url=http://127.0.0.1:9", "instance=g5.xlarge"]
    )
    assert gpu_cells(plan) == []
    assert gpu_cells(plan_from_overrides(["instance=g5.xlarge"])) == [0]
    assert gpu_cells(plan_from_overrides(["instance=g5.xlarge", "device=cpu"])) == []


def test_a_host_with_cuda_runs_the_gpu_cells(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(preflight, "host_has_cuda", lambda: True)
    preflight.check_this_host(plan_from_overrides(["instance=g5.xlarge"]))  # no error


def test_a_cpu_plan_needs_no_gpu_whatever_the_host(monkeypatch: pytest.MonkeyPatch):
    def never() -> bool:
        raise AssertionError("the host was probed for a plan that needs no GPU")

    monkeypatch.setattr(preflight, "host_has_cuda", never)
    preflight.check_this_host(plan_from_overrides(["engine=sleep"]))


def test_gpu_cells_on_a_host_without_cuda_are_one_line_naming_the_ways_on(monkeypatch):
    monkeypatch.setattr(preflight, "host_has_cuda", lambda: False)
    plan = plan_from_overrides(
        ["grid.axes.instance=[g5.xlarge,g5.2xlarge,g5.4xlarge,g5.12xlarge,p4d.24xlarge,local-cpu]"]
    )
    with pytest.raises(UsageError) as refused:
        preflight.check_this_host(plan)
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith("5 of 6 cells run on NVIDIA GPUs (g5.12xlarge, g5.2xlarge, g5.4xlarge, ")
    assert "g5.xlarge and 1 more: A100-40GB, A10G)" in line  # four types named, the rest counted
    assert "nothing was written" in line and line.endswith(preflight.WAYS_ON)
