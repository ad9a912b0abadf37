"""The scenario registry: each scenario's YAML and its class agree, keys are checked by the
scenario that owns them, the plan's time estimates, and the row columns each one owns."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest
import yaml

from bench.config.checks import ConfigError
from bench.config.schema import SHARED_SCENARIO_KEYS, scenario_from_dict
from bench.measure.scenarios import SCENARIOS, check_scenario, scenario_columns
from bench.measure.scenarios.capacity import Capacity
from bench.plan.feasibility import decide
from bench.plan.grid import plan_from_overrides
from bench.row.schema import COLUMNS, ROW_SCHEMA, conform
from tests.conftest import REPO

SCENARIO_DIR = REPO / "conf" / "scenario"


def _config(name: str, **keys: object):
    shared = {"warmup_requests": 0, "min_requests": 1, "min_duration_s": 1.0}
    return scenario_from_dict({"name": name, **shared, "max_duration_s": 4.0, **keys})


def test_every_scenario_has_its_yaml_and_every_yaml_its_class() -> None:
    assert {p.stem for p in SCENARIO_DIR.glob("*.yaml")} == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_yaml_sets_only_shared_keys_and_the_scenarios_own(name: str) -> None:
    declared = yaml.safe_load((SCENARIO_DIR / f"{name}.yaml").read_text())
    own = set(declared) - {"defaults", "name"} - set(SHARED_SCENARIO_KEYS)
    assert own <= set(SCENARIOS[name].option_keys())


def _plain(value: object) -> object:
    """A YAML list as the tuple a dataclass default holds; everything else as it is."""
    return tuple(_plain(v) for v in value) if isinstance(value, list) else value


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_options_defaults_are_the_yamls_values(name: str) -> None:
    """One default per key: the class's dataclass default is what its YAML says (an
    interpolation such as ${sla.p99_ms} is the config's to fill in)."""
    options = SCENARIOS[name].Options
    if not dataclasses.is_dataclass(options):
        return
    declared = yaml.safe_load((SCENARIO_DIR / f"{name}.yaml").read_text())
    defaults = {f.name: f.default for f in dataclasses.fields(options)}
    differ = {
        key: (defaults[key], value)
        for key, value in declared.items()
        if key in defaults
        and not (isinstance(value, str) and "${" in value)
        and defaults[key] is not dataclasses.MISSING
        and _plain(defaults[key]) != _plain(value)
    }
    assert not differ, f"{name}: (class default, yaml) {differ}"


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


def test_each_scenario_owns_its_columns_alone() -> None:
    owned = [name for name, _, _ in scenario_columns()]
    assert len(owned) == len(set(owned))
    assert set(owned) <= set(ROW_SCHEMA.names)
    assert [name for name, _, _ in COLUMNS].count("stages_json") == 1


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
