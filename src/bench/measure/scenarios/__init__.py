"""The load scenarios a cell can run (conf/scenario/NAME.yaml), on an engine already loaded:
one module and one class each; this registry is the only list of them."""

from __future__ import annotations

from bench.config.checks import choice
from bench.config.schema import ScenarioConfig
from bench.measure.scenarios.base import Column, Measured, Scenario, request_for
from bench.measure.scenarios.capacity import Capacity
from bench.measure.scenarios.latency import Latency
from bench.measure.scenarios.open_loop import OpenLoop
from bench.measure.scenarios.ramp import Ramp

SCENARIOS: dict[str, type[Scenario]] = {s.name: s for s in (Latency, OpenLoop, Ramp, Capacity)}


def check_scenario(config: ScenarioConfig) -> None:
    """The scenario exists and takes these keys and values (ConfigError otherwise)."""
    SCENARIOS[choice("scenario.name", config.name, tuple(SCENARIOS), "scenarios")].check(config)


def scenario_columns() -> list[Column]:
    """The row columns every scenario owns, in registry order (for the row schema)."""
    return [column for scenario in SCENARIOS.values() for column in scenario.columns]


__all__ = ["SCENARIOS", "Measured", "Scenario", "check_scenario", "request_for", "scenario_columns"]
