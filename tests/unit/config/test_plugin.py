"""The plugin contract (bench.config.plugin): typed options read once, one-line errors, and
registries found rather than listed."""

from __future__ import annotations

import importlib
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.config.checks import ConfigError
from bench.config.plugin import Plugin, discover


@dataclass(frozen=True)
class ToyOptions:
    size: int = 3
    label: str = "a"


class Toy(Plugin):
    name = "toy"
    axis = "engine"
    Options = ToyOptions

    @classmethod
    def validate(cls, options: ToyOptions) -> None:
        if options.size < 1:
            raise ConfigError("engine.size", options.size, "must be >= 1")


def test_options_are_typed_once_with_the_dataclass_defaults() -> None:
    assert Toy.option_keys() == ("size", "label")
    assert Toy.options_of({"name": "toy"}) == ToyOptions()  # `name` is the registry's
    assert Toy.check({"size": 5}) == ToyOptions(size=5)


@pytest.mark.parametrize(
    ("raw", "says"),
    [({"sizes": 2}, "engine.sizes"), ({"size": "big"}, "engine.size"), ({"size": 0}, ">= 1")],
)
def test_a_bad_key_or_value_is_one_line_naming_the_key(raw: dict, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Toy.check(raw)
    assert says in str(raised.value) and "\n" not in str(raised.value)


def _package(root: Path, name: str, modules: dict[str, str]) -> str:
    folder = root / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for module, source in modules.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
    return name


BASE = """
    from bench.config.plugin import Plugin

    class Base(Plugin):  # the axis's base: no name of its own
        axis = "engine"
    """


def test_a_registry_finds_every_named_subclass_under_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    package = _package(
        tmp_path,
        "toy_axis_found",
        {
            "base": BASE,
            "zeta": "from toy_axis_found.base import Base\nclass Z(Base):\n    name = 'zeta'\n",
            "alpha": (
                "from toy_axis_found.base import Base\n"
                "class A(Base):\n    name = 'alpha'\n"
                "class AFast(A):\n    name = 'alpha_fast'\n"  # a subclass of a plugin counts
                "class Helper(A):\n    pass\n"  # no name of its own: not a plugin
            ),
        },
    )
    found = discover(package, importlib.import_module(f"{package}.base").Base)
    assert list(found) == ["alpha", "alpha_fast", "zeta"]  # by name
    assert found["alpha_fast"].__name__ == "AFast"


def test_two_plugins_of_one_name_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    twin = "from toy_axis_twins.base import Base\nclass T(Base):\n    name = 'same'\n"
    package = _package(tmp_path, "toy_axis_twins", {"base": BASE, "one": twin, "two": twin})
    with pytest.raises(TypeError, match="named 'same'"):
        discover(package, importlib.import_module(f"{package}.base").Base)


def test_the_shipped_registries_hold_what_conf_names() -> None:
    from bench.config.schema import group_options
    from bench.engines import ENGINES
    from bench.executors import EXECUTORS
    from bench.measure.scenarios import SCENARIOS
    from bench.measure.workloads import WORKLOADS

    for group, registry in (
        ("engine", ENGINES),
        ("executor", EXECUTORS),
        ("scenario", SCENARIOS),
        ("workload", WORKLOADS),
    ):
        assert sorted(registry) == sorted(group_options(group)), group
