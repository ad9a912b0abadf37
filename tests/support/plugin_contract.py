"""What every plugin's conformance suite asks of it, whichever axis it extends (the contract
is bench.config.plugin's): its YAML and its typed options agree, bad input is refused in one
line naming the key, its hooks take what its base's take, and its row columns are its own."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pyarrow as pa
import pytest
import yaml

from bench.config.checks import ConfigError
from bench.config.plugin import Plugin
from bench.row.schema import COLUMNS, ROW_SCHEMA
from tests.conftest import REPO

CONF = REPO / "conf"
NOT_OPTIONS = ("name", "defaults")  # the registry's key and Hydra's list, in every YAML


def conf_names(axis: str) -> set[str]:
    """The plugins conf/<axis>/ has a YAML for."""
    return {path.stem for path in (CONF / axis).glob("*.yaml")}


def yaml_of(axis: str, name: str) -> dict[str, Any]:
    """conf/<axis>/NAME.yaml as written (its own keys; Hydra's `defaults` not followed)."""
    return yaml.safe_load((CONF / axis / f"{name}.yaml").read_text()) or {}


def declared_options(axis: str, name: str, shared: tuple[str, ...] = ()) -> dict[str, Any]:
    """The option keys and values the YAML sets: not `name`, `defaults` nor `shared` keys
    (a scenario's shared keys are the schema's, not its class's)."""
    skip = (*NOT_OPTIONS, *shared)
    return {k: v for k, v in yaml_of(axis, name).items() if k not in skip}


def normal(value: Any) -> Any:
    """YAML's spelling of a default: a list is a tuple, a mapping of nulls is no mapping."""
    if isinstance(value, list):
        return tuple(normal(v) for v in value)
    if isinstance(value, dict) and all(v is None for v in value.values()):
        return None
    return value


def interpolated(value: Any) -> bool:
    """An interpolation such as ${sla.p99_ms}: the composed config's to fill in."""
    return isinstance(value, str) and "${" in value


def defaults(plugin: type[Plugin]) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(plugin.Options)}


def assert_options_are_the_yamls(plugin: type[Plugin], declared: dict[str, Any]) -> None:
    """Options is a frozen dataclass (typed options are shared between cells) with a default
    for every key; the YAML sets exactly its keys, each to its default, and types as them."""
    options = plugin.Options
    assert dataclasses.is_dataclass(options) and options.__dataclass_params__.frozen
    fields = defaults(plugin)
    assert dataclasses.MISSING not in fields.values(), f"{plugin.name}: a key without default"
    assert set(declared) == set(fields) == set(plugin.option_keys())
    given = {k: normal(v) for k, v in declared.items() if not interpolated(v)}
    assert given == {k: fields[k] for k in given}, f"{plugin.name}: (yaml) != (class)"
    typed = plugin.options_of({k: v for k, v in declared.items() if not interpolated(v)})
    assert {k: normal(v) for k, v in dataclasses.asdict(typed).items()} == fields


def wrong_values(default: Any) -> list[Any]:
    """Values of another type than `default`'s (None: the plugin checks those itself)."""
    if isinstance(default, bool):
        return ["yes", 1]
    if isinstance(default, int):
        return ["abc", True, 1.5]
    if isinstance(default, float):
        return ["abc", True]
    if isinstance(default, (str, tuple)):
        return [5]
    return []


def refusal(plugin: type[Plugin], raw: dict[str, Any]) -> ConfigError:
    """The ConfigError `plugin.check(raw)` raises, held to one line."""
    with pytest.raises(ConfigError) as raised:
        plugin.check(raw)
    assert "\n" not in str(raised.value)
    return raised.value


def assert_bad_input_is_refused(plugin: type[Plugin]) -> None:
    """An unknown key names the allowed ones; a value of the wrong type names its key."""
    unknown = refusal(plugin, {"no_such_key": 5})
    assert unknown.key == f"{plugin.axis}.no_such_key"
    assert plugin.options_owner() in str(unknown)
    for key, default in defaults(plugin).items():
        for bad in wrong_values(default):
            assert refusal(plugin, {key: bad}).key == f"{plugin.axis}.{key}", (key, bad)


def _kind(attribute: Any) -> str:
    return type(attribute).__name__  # classmethod, staticmethod, property, function


def _parameters(attribute: Any) -> list[inspect.Parameter]:
    function = (
        attribute.__func__ if isinstance(attribute, (classmethod, staticmethod)) else attribute
    )
    return list(inspect.signature(function).parameters.values())


def hook_mismatches(plugin: type, base: type) -> list[str]:
    """The public hooks of `base` that `plugin` overrides with another kind (a classmethod for
    a method, ...) or other parameters: it must take every parameter the base's takes, by the
    same name and kind, and may add only parameters with defaults."""
    found = []
    for name in (n for n in dir(base) if not n.startswith("_")):
        expected = inspect.getattr_static(base, name)
        hook = isinstance(expected, (classmethod, staticmethod)) or inspect.isfunction(expected)
        if not hook:
            continue  # a property, a class (Options) or a plain attribute
        owner = next(k for k in plugin.__mro__ if name in vars(k))
        if owner in base.__mro__:
            continue  # not overridden
        got = vars(owner)[name]
        if _kind(got) != _kind(expected):
            found.append(f"{owner.__name__}.{name} is a {_kind(got)}, not a {_kind(expected)}")
            continue
        have, want = _parameters(got), _parameters(expected)
        same = [(p.name, p.kind) for p in have[: len(want)]] == [(p.name, p.kind) for p in want]
        extra = all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                    for p in have[len(want):])  # fmt: skip
        if not (same and extra):
            shown = ", ".join(p.name for p in have)
            found.append(f"{owner.__name__}.{name}({shown}) != ({', '.join(p.name for p in want)})")
    return found


def assert_columns_are_its_own(columns: tuple[tuple[str, Any, str], ...]) -> None:
    """Each (name, arrow type, meaning) is a row column of that type, named once among the
    shared columns and every plugin's."""
    named = [name for name, _, _ in COLUMNS]
    for column in columns:
        assert len(column) == 3, column
        name, arrow_type, meaning = column
        assert isinstance(name, str) and isinstance(arrow_type, pa.DataType), column
        assert isinstance(meaning, str) and meaning.strip(), f"{name}: no meaning"
        assert ROW_SCHEMA.field(name).type == arrow_type
        assert named.count(name) == 1, f"{name} is named {named.count(name)} times"
