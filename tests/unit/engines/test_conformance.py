"""What every engine promises, checked on each one (the plugin contract, bench.config.plugin,
as tests/unit/executors/test_conformance.py holds every executor to it): registered under the
name its YAML carries, typed options that match its YAML, refused unknown keys and bad values,
the base's hooks, and an answer for a CPU cell from its capability table. Nothing here needs a
model or an engine's library, so no engine needs a harness; the calibration engines, which
load nothing, also go through a cell's life cycle."""

from __future__ import annotations

import dataclasses

import pytest

from bench.config.schema import CellConfig, engine_from_dict
from bench.engines import ENGINES, Engine
from bench.engines.base import LoadInfo
from bench.plan.grid import plan_from_overrides
from tests.support import plugin_contract as contract

CALIBRATION = ("null", "sleep")  # engines that load no model: cheap to run here


def _cell(engine: str) -> CellConfig:
    return plan_from_overrides(["model=bert_tiny", f"engine={engine}", "device=cpu"]).cells[0]


@pytest.fixture(scope="module")
def cpu_cell() -> CellConfig:
    return _cell("null")


def test_every_engine_has_its_yaml_and_every_yaml_its_engine() -> None:
    assert contract.conf_names("engine") == set(ENGINES)


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_an_engine_is_registered_under_its_yamls_name(name: str) -> None:
    engine = ENGINES[name]
    assert issubclass(engine, Engine) and engine.axis == "engine"
    assert engine.name == name == contract.yaml_of("engine", name)["name"]


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_the_yaml_declares_the_typed_options_and_their_defaults(name: str) -> None:
    contract.assert_options_are_the_yamls(ENGINES[name], contract.declared_options("engine", name))


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_unknown_keys_and_bad_values_are_refused(name: str) -> None:
    contract.assert_bad_input_is_refused(ENGINES[name])


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_the_hooks_take_what_the_bases_take(name: str) -> None:
    assert contract.hook_mismatches(ENGINES[name], Engine) == []


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_a_cpu_cell_gets_an_answer_without_a_model(name: str, cpu_cell: CellConfig) -> None:
    """The planner asks these of every cell: none loads anything, each answers in its type."""
    engine = ENGINES[name]
    cell = dataclasses.replace(cpu_cell, engine=engine_from_dict(contract.yaml_of("engine", name)))
    reason = engine.unsupported_reason(cell)
    assert reason is None or (isinstance(reason, str) and reason and "\n" not in reason)
    warning = engine.plan_warning(cell)
    assert warning is None or isinstance(warning, str)
    assert engine.mpi_ranks(cell) >= 1 and isinstance(engine.varies_inputs(cell), bool)


def test_the_calibration_engines_are_registered() -> None:
    assert set(CALIBRATION) <= set(ENGINES)


@pytest.mark.parametrize("name", CALIBRATION)
def test_a_calibration_engine_loads_and_infers(name: str) -> None:
    """A cell's life cycle as the runner drives it (bench.engines.base), on a CPU cell."""
    cell = _cell(name)
    engine = ENGINES[name](cell)
    assert engine.unsupported_reason(cell) is None and engine.host_reason(cell) is None
    engine.import_libraries()
    engine.prepare()
    assert isinstance(engine.load(), LoadInfo)
    assert isinstance(engine.initialize(), dict)
    batch = engine.make_batch()
    for _ in range(3):
        engine.infer(batch)
        engine.synchronize()
    assert isinstance(engine.describe(), dict)
    engine.close()
