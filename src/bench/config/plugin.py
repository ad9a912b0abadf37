"""The contract every plugin keeps, whichever axis it extends (an engine, a scenario, a
workload, an executor): a registered `name`, typed `Options` whose defaults are its YAML's
(conf/<axis>/NAME.yaml), and one set of hooks to read and check them.

- `option_keys()`: the keys its YAML may set beyond `name`.
- `options_of(raw)`: a raw mapping (a YAML block, a manifest's options) as the typed `Options`;
  an unknown key or a value of the wrong type is a one-line ConfigError naming the key.
- `validate(options)`: the plugin's own rules on its typed values alone (ConfigError).
- `check(raw)`: both of the above; returns the typed options.

A plugin that is part of a cell (an engine, a scenario, a workload) also answers, from the
whole cell: `check_cell(cell)`, the rules that need more than its own options (ConfigError,
asked by the planner), and `unsupported_reason(cell)`, why it cannot run the cell (an
`unsupported` row; None when it can).

This module sits in the base layer (bench.config) so that every axis can stand on it; it
imports nothing else of bench."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from bench.config.checks import typed_options
from bench.config.schema import CellConfig


@dataclass(frozen=True)
class NoOptions:
    """A plugin without options of its own."""


class Plugin:
    """One entry of an axis's registry. Subclasses set `name` and `Options`; each axis's base
    sets `axis`, the config group its keys are errors under (`engine.KEY`, ...)."""

    name: ClassVar[str]
    axis: ClassVar[str]
    Options: ClassVar[type] = NoOptions

    @classmethod
    def options_owner(cls) -> str:
        """What a refused key's error says before listing the allowed keys."""
        return f"{cls.axis} {cls.name} options"

    @classmethod
    def option_keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls.Options))

    @classmethod
    def options_of(cls, raw: Mapping[str, Any]) -> Any:
        """`raw` typed as `Options` (a `name` key is the registry's, not an option): an unknown
        key, or a value whose type differs from its field's default, is a ConfigError."""
        values = {key: value for key, value in raw.items() if key != "name"}
        return typed_options(cls.axis, cls.options_owner(), cls.Options, values)

    @classmethod
    def validate(cls, options: Any) -> None:
        """The plugin's own rules on its typed options; raise ConfigError."""

    @classmethod
    def check(cls, raw: Mapping[str, Any]) -> Any:
        """`raw` typed and validated (ConfigError naming the key, the value and what is
        allowed); the typed options."""
        options = cls.options_of(raw)
        cls.validate(options)
        return options


class CellPlugin(Plugin):
    """A plugin that is one part of a cell: an engine, a scenario or a workload."""

    @classmethod
    def check_cell(cls, cell: CellConfig) -> None:
        """Rules that need the rest of the cell (its batch size, its SLOs, its model);
        raise ConfigError."""

    @classmethod
    def unsupported_reason(cls, cell: CellConfig) -> str | None:
        """Why this plugin cannot run `cell`; None when it can."""
        return None


P = TypeVar("P", bound=Plugin)


def discover(package: str, base: type[P]) -> dict[str, type[P]]:
    """An axis's registry, found rather than listed: every class under `package` (its
    modules and subpackages, each imported) that subclasses `base` and names itself, by name.
    Adding a plugin is then its module and its YAML, nothing else. Two plugins of one name is
    an error: the registry could only keep one."""
    root = importlib.import_module(package)
    for module in pkgutil.iter_modules(root.__path__, package + "."):
        importlib.import_module(module.name)
    found: dict[str, type[P]] = {}
    pending = list(base.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "name" not in vars(cls) or not cls.__module__.startswith(package + "."):
            continue  # a base (no name of its own), or a plugin from outside the package
        if found.get(cls.name, cls) is not cls:
            raise TypeError(f"two {base.__name__}s named {cls.name!r}: {found[cls.name]}, {cls}")
        found[cls.name] = cls
    return dict(sorted(found.items()))
