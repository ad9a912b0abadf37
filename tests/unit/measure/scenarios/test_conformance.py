"""What every scenario promises, checked on each one (the plugin contract, bench.config.plugin,
as tests/unit/executors/test_conformance.py holds every executor to it): registered under the
name its YAML carries, typed options that are its YAML's own keys (beyond the shared ones the
schema checks) with their defaults, refused unknown keys and bad values, the base's hooks, row
columns of its own, and what the planner asks of a cell. A scenario runs on any engine, so
none needs a harness."""

from __future__ import annotations

import math

import pytest

from bench.config.schema import SHARED_SCENARIO_KEYS, CellConfig
from bench.measure.scenarios import SCENARIOS, Scenario
from bench.plan.grid import plan_from_overrides
from tests.support import plugin_contract as contract

# every objective set: a scenario that searches against them (sla_search) has them to read
OBJECTIVES = ("slo.ttft_ms=500", "slo.tpot_ms=50", "slo.e2e_ms=1000")


def test_every_scenario_has_its_yaml_and_every_yaml_its_scenario() -> None:
    assert contract.conf_names("scenario") == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_scenario_is_registered_under_its_yamls_name(name: str) -> None:
    scenario = SCENARIOS[name]
    assert issubclass(scenario, Scenario) and scenario.axis == "scenario"
    assert scenario.name == name == contract.yaml_of("scenario", name)["name"]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_yaml_declares_the_typed_options_and_their_defaults(name: str) -> None:
    declared = contract.declared_options("scenario", name, shared=SHARED_SCENARIO_KEYS)
    contract.assert_options_are_the_yamls(SCENARIOS[name], declared)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_unknown_keys_and_bad_values_are_refused(name: str) -> None:
    contract.assert_bad_input_is_refused(SCENARIOS[name])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_hooks_take_what_the_bases_take(name: str) -> None:
    assert contract.hook_mismatches(SCENARIOS[name], Scenario) == []


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_its_columns_are_its_own(name: str) -> None:
    contract.assert_columns_are_its_own(SCENARIOS[name].columns)


@pytest.fixture(scope="module")
def cells() -> dict[str, CellConfig]:
    """A planned cell of each scenario, with its YAML's values."""
    overrides = ["engine=null", *OBJECTIVES]
    return {
        name: plan_from_overrides([*overrides, f"scenario={name}"]).cells[0] for name in SCENARIOS
    }


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_planned_cell_gets_its_options_an_estimate_and_an_answer(
    name: str, cells: dict[str, CellConfig]
) -> None:
    scenario, cell = SCENARIOS[name], cells[name]
    assert scenario(cell).options == scenario.check(cell.scenario.options)
    scenario.check_cell(cell)
    least, most = scenario.seconds(cell.scenario)
    assert math.isfinite(most) and 0 < least <= most
    reason = scenario.unsupported_reason(cell)
    assert reason is None or (isinstance(reason, str) and reason and "\n" not in reason)
