"""What every workload promises, checked on each one (the plugin contract, bench.config.plugin,
as tests/unit/executors/test_conformance.py holds every executor to it): registered under the
name its YAML carries, typed options that match its YAML, refused unknown keys and bad values,
the base's hooks, row columns of its own, and a planned cell whose source draws requests. A
workload may need what its YAML cannot give (a file to read, a scenario it runs under): a new
workload fails here until it has a harness below."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench.engines.base import Inputs
from bench.measure.workloads import WORKLOADS, Workload
from bench.plan.grid import plan_from_overrides
from tests.support import datasets
from tests.support import plugin_contract as contract


def _trace(tmp_path: Path) -> list[str]:
    path = datasets.write_jsonl(tmp_path / "trace.jsonl", datasets.trace(20, mean_gap_ms=5))
    return [f"workload.path={path}", "scenario=open_loop"]


# The overrides a cell of each workload needs beyond its YAML, given a folder of its own.
HARNESSES: dict[str, Callable[[Path], list[str]]] = {
    "synthetic": lambda _: [],
    "shared_prefix": lambda _: [],
    "multi_turn": lambda _: [],
    "dataset": lambda _: [f"workload.path={datasets.SHAREGPT}"],
    "trace": _trace,
}


def test_every_workload_has_a_harness() -> None:
    assert set(HARNESSES) == set(WORKLOADS)


def test_every_workload_has_its_yaml_and_every_yaml_its_workload() -> None:
    assert contract.conf_names("workload") == set(WORKLOADS)


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_a_workload_is_registered_under_its_yamls_name(name: str) -> None:
    workload = WORKLOADS[name]
    assert issubclass(workload, Workload) and workload.axis == "workload"
    assert workload.name == name == contract.yaml_of("workload", name)["name"]


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_the_yaml_declares_the_typed_options_and_their_defaults(name: str) -> None:
    declared = contract.declared_options("workload", name)
    contract.assert_options_are_the_yamls(WORKLOADS[name], declared)


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_unknown_keys_and_bad_values_are_refused(name: str) -> None:
    contract.assert_bad_input_is_refused(WORKLOADS[name])


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_the_hooks_take_what_the_bases_take(name: str) -> None:
    assert contract.hook_mismatches(WORKLOADS[name], Workload) == []


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_its_columns_are_its_own(name: str) -> None:
    contract.assert_columns_are_its_own(WORKLOADS[name].columns)


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_a_planned_cell_runs_it_and_its_source_draws_requests(name: str, tmp_path: Path) -> None:
    """On an engine that sends each request's own inputs (sleep), with the harness's
    overrides: the plan's checks pass, the cell is supported and requests are drawn."""
    overrides = ["model=opt_tiny", "engine=sleep", f"workload={name}", *HARNESSES[name](tmp_path)]
    cell = plan_from_overrides(overrides).cells[0]
    workload = WORKLOADS[name]
    workload.check(cell.workload.options)
    workload.check_cell(cell)
    assert workload.unsupported_reason(cell) is None
    source = workload.source(cell)
    for arrival in range(3):
        inputs = source.draw(0, arrival)
        assert isinstance(inputs, Inputs) and len(inputs.prompts) == cell.batch_size
        assert all(prompt for prompt in inputs.prompts)
        assert all(isinstance(n, int) and n >= 1 for n in inputs.output_lens)
    assert source.facts()["distinct_prompts"] >= 1
    assert workload.describe(cell).startswith(f"{name}(")
