"""The scenario registry: keys are checked by the scenario that owns them; the plan's time
estimates; capacity's rule on split models; an old capacity row conformed. What every
scenario promises (its YAML, options, hooks, columns): scenarios/test_conformance.py."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from bench.config.checks import ConfigError
from bench.config.schema import scenario_from_dict
from bench.measure.scenarios import SCENARIOS, check_scenario
from bench.measure.scenarios.capacity import Capacity
from bench.plan.feasibility import decide
from bench.plan.grid import plan_from_overrides
from bench.row.schema import conform


def _config(name: str, **keys: object):
    shared = {"warmup_requests": 0, "min_requests": 1, "min_duration_s": 1.0}
    return scenario_from_dict({"name": name, **shared, "max_duration_s": 4.0, **keys})


def test_a_key_of_another_scenario_is_dropped_and_a_typo_refused() -> None:
    ramp_keys = {"stages": [1, 2], "stage_duration_s": 1.0}
    checked = check_scenario(_config("capacity", max_copies=3, **ramp_keys))
    assert checked.options == {"max_copies": 3}
    with pytest.raises(ConfigError) as info:
        check_scenario(_config("latency", stagse=[1, 2]))
    assert info.value.key == "scenario.stagse" and "its own: none" in str(info.value)
    with pytest.raises(ConfigError) as info:
        check_scenario(_config("ramp", stages=[4, 2]))
    assert info.value.key == "scenario.stages" and "rising" in str(info.value)
    with pytest.raises(ConfigError) as info:
        check_scenario(_config("nope"))
    assert info.value.key == "scenario.name" and "latency" in str(info.value)


def test_the_plans_time_estimates() -> None:
    latency = _config("latency", warmup_s=1.0)
    assert SCENARIOS["latency"].seconds(latency) == (2.0, 5.0)
    ramp = _config("ramp", stages=[1, 2, 4], stage_duration_s=2.0, stage_warmup_s=0.5)
    assert SCENARIOS["ramp"].seconds(ramp) == (7.5, 7.5)
    measured = _config("open_loop", warmup_s=1.0, calibrate_s=2.0)  # calibration warms up too
    assert SCENARIOS["open_loop"].seconds(measured) == (5.0, 8.0)
    fixed = _config("open_loop", warmup_s=1.0, rate_per_s=10.0)
    assert SCENARIOS["open_loop"].seconds(fixed) == (2.0, 5.0)


def test_capacity_refuses_a_split_model_and_the_planner_says_so() -> None:
    cell = plan_from_overrides(["scenario=capacity", "engine=null"]).cells[0]
    assert Capacity.unsupported_reason(cell) is None
    split = dataclasses.replace(cell, tp_degree=2)
    assert "tp_degree=1" in Capacity.unsupported_reason(split)
    assert decide(split).outcome == "unsupported"


def test_a_capacity_row_from_before_schema_9_moves_its_trace() -> None:
    old = pa.table(
        {
            "scenario": ["capacity", "ramp"],
            "stages_json": ['[{"copy": 1}]', '[{"concurrency": 1}]'],
        }
    )
    new = conform(old.append_column("verdict", pa.array(["stable", "drifting"])))
    assert new.column("stability").to_pylist() == ["stable", "drifting"]
    assert new.column("memory_trace_json").to_pylist() == ['[{"copy": 1}]', None]
    assert new.column("stages_json").to_pylist() == [None, '[{"concurrency": 1}]']
