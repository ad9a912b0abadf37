"""Every engine is registered under the name its config file and its class carry, and every
option its config file sets is one the engine takes, of the type it takes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.config.checks import typed_options
from bench.engines import ENGINES

ENGINE_CONF = Path(__file__).resolve().parents[3] / "conf" / "engine"


def test_each_config_file_is_a_registered_engine_and_each_engine_has_one() -> None:
    assert {path.stem for path in ENGINE_CONF.glob("*.yaml")} == set(ENGINES)


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_an_engine_takes_the_keys_of_its_config_file(name: str) -> None:
    options = yaml.safe_load((ENGINE_CONF / f"{name}.yaml").read_text())
    assert options.pop("name") == name == ENGINES[name].name
    # a key the engine lacks, or a value of another type, raises ConfigError (values that
    # must be given, such as an endpoint's name, are checked when a cell is composed)
    typed_options("engine", f"engine {name} options", ENGINES[name].Options, options)
