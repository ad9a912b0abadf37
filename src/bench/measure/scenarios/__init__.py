"""The load scenarios a cell can run (conf/scenario/NAME.yaml), on an engine already loaded:
one module and one class each; this registry is the only list of them."""

from __future__ import annotations

import dataclasses

from bench.config.checks import choice
from bench.config.plugin import discover
from bench.config.schema import ScenarioConfig
from bench.measure.scenarios.base import Column, Measured, Scenario, request_for

# every Scenario subclass under this package that names itself: a scenario is its module and
# its conf/scenario/NAME.yaml (tests/unit/measure/scenarios/test_conformance.py)
SCENARIOS: dict[str, type[Scenario]] = discover(__name__, Scenario)


def check_scenario(config: ScenarioConfig) -> ScenarioConfig:
    """`config` with its scenario's own keys only, checked (ConfigError naming the key, the
    value and what is allowed). A key another scenario owns is dropped: a grid whose blocks
    run several scenarios sets each one's keys once. Any other key is refused."""
    scenario = SCENARIOS[choice("scenario.name", config.name, tuple(SCENARIOS), "scenarios")]
    others = {key for s in SCENARIOS.values() if s is not scenario for key in s.option_keys()}
    own = {
        k: v for k, v in config.options.items() if k in scenario.option_keys() or k not in others
    }
    scenario.check(own)
    return dataclasses.replace(config, options=own)


def scenario_columns() -> list[Column]:
    """The row columns every scenario owns, in registry order (for the row schema)."""
    return [column for scenario in SCENARIOS.values() for column in scenario.columns]


__all__ = ["SCENARIOS", "Measured", "Scenario", "check_scenario", "request_for", "scenario_columns"]
