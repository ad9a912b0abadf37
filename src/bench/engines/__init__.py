"""Engine registry: the names used in config, to the classes (found, not listed).

Each engine module keeps its heavy imports (torch, transformers, ...) inside its methods, so
importing this registry, validating config and running the calibration engines stay cheap.
"""

from __future__ import annotations

from typing import Any

from bench.config.checks import ConfigError
from bench.config.plugin import discover
from bench.engines.base import Engine

# every Engine subclass under bench.engines that names itself (an engine is its module and
# its conf/engine/NAME.yaml: tests/unit/engines/test_conformance.py holds the two together)
ENGINES: dict[str, type[Engine]] = discover(__name__, Engine)


def check_engine(engine: dict[str, Any]) -> None:
    """The config's `engine`: a registered name, and options that engine takes (ConfigError
    naming the key, the value and what is allowed)."""
    name = engine.get("name")
    if name not in ENGINES:
        raise ConfigError("engine", name, "allowed: " + ", ".join(sorted(ENGINES)))
    ENGINES[name].check(engine)  # its `name` is the registry's, not an option


__all__ = ["ENGINES", "Engine", "check_engine"]
