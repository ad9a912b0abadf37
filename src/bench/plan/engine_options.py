"""Engine options given on the command line when a grid varies the engine.

`engine.KEY=V` is an option of one engine. With `engine: [sleep, null]` in a grid, composing
it into the root config puts it into the default engine (hf), which has no such key, and
composing it into every engine of the grid would fail for those that do not take it. So
such an override is held back from the root config, and each combination of group choices
gets it only where its engine takes it. An engine takes KEY when its Options dataclass
(bench.engines.ENGINES[NAME].Options) has that field, or its conf/engine/NAME.yaml has that
key. An option that no engine of the grid takes is refused in one line naming the grid's
engines and the engines that do take it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench.config.checks import ConfigError, did_you_mean
from bench.config.schema import group_files
from bench.engines import ENGINES

_OPTION = re.compile(r"^(?P<op>\+\+|\+|~)?engine\.(?P<key>[^=]+)$")


@dataclass(frozen=True)
class EngineOption:
    """One `engine.KEY=V` override (`+`, `++` or `~` in front or not)."""

    override: str  # as given
    key: str  # the dotted key under engine: `service_ms`, `headers.Authorization`
    value: str  # as given; "" for a deletion

    @property
    def option(self) -> str:
        """The engine's own option the key is (or is inside of)."""
        return self.key.split(".")[0]

    def setting(self) -> str:
        """The override as composed into a config whose engine takes it: `++` sets a key the
        engine's file has and adds one only its Options dataclass declares."""
        if self.override.startswith("~"):
            return self.override
        return f"++engine.{self.key}={self.value}"

    def parsed(self) -> Any:
        """The value as Hydra's override grammar reads it (`2` is the number 2)."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        try:
            return (
                OverridesParser.create().parse_override(f"engine.{self.key}={self.value}").value()
            )
        except Exception:  # the grammar's own errors; composing names the override later
            return self.value


def engine_option(override: str) -> EngineOption | None:
    """The override as an engine option, or None when it is not one (`engine=NAME` is the
    group choice, not an option)."""
    key, _, value = override.partition("=")
    match = _OPTION.match(key.strip())
    if match is None:
        return None
    return EngineOption(override=override, key=match["key"], value=value)


def split_engine_options(overrides: Iterable[str]) -> tuple[list[str], list[EngineOption]]:
    """(the overrides that are not engine options, the engine options)."""
    rest, options = [], []
    for override in overrides:
        option = engine_option(override)
        if option is None:
            rest.append(override)
        else:
            options.append(option)
    return rest, options


def engine_keys(name: str) -> set[str]:
    """The options an engine takes: its Options dataclass's fields and its file's keys."""
    keys: set[str] = set()
    engine = ENGINES.get(name)
    if engine is not None and dataclasses.is_dataclass(engine.Options):
        keys |= {field.name for field in dataclasses.fields(engine.Options)}
    path = group_files("engine").get(name)
    if path is not None:
        try:
            loaded = OmegaConf.load(path)
        except (OSError, ValueError, OmegaConfBaseException):  # composing names the file
            return keys
        if isinstance(loaded, DictConfig):
            keys |= {str(key) for key in loaded if key not in ("defaults", "name")}
    return keys


def takes(engine: str, option: str) -> bool:
    """Whether `engine` takes the option named (the first part of a dotted key)."""
    return option.split(".")[0] in engine_keys(engine)


def check_taken(options: list[EngineOption], engines: list[str]) -> None:
    """Refuse an option that no engine of the grid takes: one line naming the key, the
    value, the grid's engines and the engines that do take it."""
    for option in options:
        if any(takes(engine, option.option) for engine in engines):
            continue
        takers = [name for name in ENGINES if takes(name, option.option)]
        known = set().union(*(engine_keys(engine) for engine in engines))
        if takers:
            elsewhere = f"engines that take it: {', '.join(takers)}"
        else:
            elsewhere = "no engine takes it" + did_you_mean(option.option, known)
        raise ConfigError(
            f"engine.{option.key}",
            option.value,
            f"no engine of this grid takes it (the grid's engines: {', '.join(engines)}); "
            + elsewhere,
        )


def flow(values: list[Any]) -> str:
    """A list as a YAML flow sequence, for a message to copy from: `[sleep, null]`."""
    return "[" + ", ".join("null" if v is None else str(v) for v in values) + "]"


def blocks_hint(key: str, values: list[Any], takers: list[str], others: list[str]) -> str:
    """Where a dotted engine axis goes when only some of its product's engines take it."""
    return (
        "vary it in grid.blocks with the engines that take it: blocks: "
        f"[{{engine: {flow(takers)}, {key}: {flow(values)}}}, {{engine: {flow(others)}}}]"
    )
