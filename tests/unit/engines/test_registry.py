"""The engine registry's check of a config's `engine` block (what each engine promises is
tests/unit/engines/test_conformance.py's)."""

from __future__ import annotations

import pytest

from bench.config.checks import ConfigError
from bench.engines import check_engine


def test_an_unregistered_engine_is_refused_naming_the_registered_ones() -> None:
    with pytest.raises(ConfigError) as raised:
        check_engine({"name": "hf2"})
    assert raised.value.key == "engine" and "allowed: accelerate, deepspeed" in str(raised.value)


def test_the_name_picks_the_engine_and_the_rest_are_its_options() -> None:
    check_engine({"name": "sleep", "service_ms": 2.0})
    with pytest.raises(ConfigError) as raised:
        check_engine({"name": "null", "service_ms": 2.0})  # the sleep engine's, not null's
    assert raised.value.key == "engine.service_ms" and "engine null options" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        check_engine({"name": "sleep", "service_ms": -1.0})  # typed, then the engine's rules
    assert raised.value.key == "engine.service_ms"
