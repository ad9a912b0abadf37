"""Hydra composition for the verbs: overrides in, a composed config out, errors as one line.

`@hydra.main` would treat the verb as an override, so the CLI takes the verb itself and composes
the rest here with Hydra's compose API.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from bench.config.checks import ConfigError, UsageError, check_sweep_id, did_you_mean
from bench.config.schema import (
    CONFIG_GROUPS,
    add_config_dir,
    check_root,
    conf_dir,
    group_options,
    root_keys,
    user_config_dirs,
)

if TYPE_CHECKING:  # omegaconf costs 0.1-0.3 s to import; `collect store.root=DIR` needs none
    from omegaconf import DictConfig

SEARCHPATH = "hydra.searchpath"


def check_group_choice(group: str, choice: str) -> None:
    """Raise ConfigError naming the group and its options when `choice` is not one of them."""
    options = group_options(group)
    if choice not in options:
        hint = did_you_mean(choice, options)
        raise ConfigError(group, choice, "allowed: " + ", ".join(options) + hint)


def take_searchpath(overrides: list[str]) -> list[str]:
    """`hydra.searchpath=[file:///DIR,...]` adds those folders like `--config-dir DIR` (so
    their grids and models are known before Hydra runs); the rest of the overrides."""
    rest = []
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+") != SEARCHPATH:
            rest.append(override)
            continue
        for entry in value.strip("[]'\"").split(","):
            entry = entry.strip().strip("'\"")
            if entry and not entry.startswith("file://"):
                raise ConfigError(SEARCHPATH, entry, "use file:///absolute/folder entries")
            if entry:
                add_config_dir(entry)
    return rest


def _searchpath() -> list[str]:
    dirs = user_config_dirs()
    return [f"{SEARCHPATH}=[{','.join(f'file://{d}' for d in dirs)}]"] if dirs else []


def _replacing_mapping(override: str) -> list[str] | None:
    """`model.architecture={...}` replaces the chosen model's architecture: Hydra would merge
    the new mapping into the old one (keeping, say, gpt_neox's keys under a BLOOM)."""
    key, sep, value = override.partition("=")
    if sep and key.lstrip("+") == "model.architecture" and value.strip().startswith("{"):
        return ["~model.architecture", f"+model.architecture={value}"]
    return None


def _axis_override(axis: str, values: str) -> str:
    """`grid.axes.AXIS=[...]`: axes are open, so add the axis or replace it. A dotted axis
    (`engine.service_ms`) is one key of the axes mapping, as in a grid file, not a path
    into it: Hydra would read `grid.axes.engine.service_ms` as the key service_ms of an axis
    `engine`, so it is merged in as a mapping of its own."""
    if "." in axis:
        return f"++grid.axes={{{axis}:{values}}}"
    return f"++grid.axes.{axis}={values}"


def _check_sweep_id_override(value: str) -> None:
    """A sweep id as given, before Hydra's grammar sees it: an unquoted non-ASCII one would
    otherwise fail as "LexerNoViableAltException"."""
    value = value.strip().strip("'\"")
    if value not in ("", "null", "~") and "${" not in value:
        check_sweep_id(value)


def _normalise(overrides: Iterable[str]) -> list[str]:
    """Check group choices and quote them (Hydra would read `engine=null` as None); let
    `grid.axes.KEY=[...]` add an axis as well as replace one."""
    out = []
    for override in take_searchpath(list(overrides)):
        key, sep, value = override.partition("=")
        if (replaced := _replacing_mapping(override)) is not None:
            out += replaced
            continue
        group = key.lstrip("+~")
        if sep and group in (*CONFIG_GROUPS, "grid"):
            value = value.strip("'\"")
            check_group_choice(group, value)
            override = f"{key}='{value}'"
        elif sep and key.lstrip("+").startswith("grid.axes."):
            override = _axis_override(key.lstrip("+").removeprefix("grid.axes."), value)
        elif sep and key.lstrip("+") == "grid.max_cells":
            override = f"++{key.lstrip('+')}={value}"  # the planner's default unless given
        elif sep and key.lstrip("+") == "sweep_id":
            _check_sweep_id_override(value)
        out.append(override)
    return out


def _struct_key_error(exc: Exception, overrides: list[str]) -> ConfigError | None:
    """Hydra's 'Key X is not in struct' as a ConfigError naming the key and the known ones."""
    cause = exc.__cause__
    key = str(getattr(cause, "full_key", "") or "")
    if not key or "not in struct" not in str(cause):
        return None
    value = next(
        (o.partition("=")[2] for o in overrides if o.partition("=")[0].lstrip("+") == key), None
    )
    parent = key.rpartition(".")[0]
    # the keys beside it: the node Hydra was looking in, or the root's own
    node = getattr(cause, "parent_node", None)
    siblings = [str(k) for k in node] if hasattr(node, "keys") else []
    hint = did_you_mean(key.rpartition(".")[2], siblings or ([] if parent else root_keys()))
    where = f" under {parent}" if parent else ""
    return ConfigError(key, value, f"no such config key{where}{hint}")


def _yaml_error(exc: Exception) -> Exception | None:
    """A config file that is not valid YAML, named with where it breaks: the key and choice
    for a group's file (`grid='bad'`), else the file itself."""
    import yaml

    while exc is not None and not isinstance(exc, yaml.MarkedYAMLError):
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    if exc is None or exc.problem_mark is None:
        return None
    mark = exc.problem_mark
    path = Path(mark.name)
    where = f"{path} line {mark.line + 1}, column {mark.column + 1} is not valid YAML"
    what = f"{where}: {exc.problem}" + (f" ({exc.context})" if exc.context else "")
    if path.parent.name in (*CONFIG_GROUPS, "grid"):
        return ConfigError(path.parent.name, path.stem, what)
    return UsageError(what)


def _override_error(exc: Exception, overrides: list[str]) -> Exception | None:
    """An override Hydra's grammar cannot read, named (Hydra's own message shows a lexer's
    exception name and a caret)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    if not isinstance(exc, OverrideParseException):
        return None
    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_override(override)
        except Exception:  # the grammar's own errors differ from the composer's
            key, _, value = override.partition("=")
            return ConfigError(
                key.lstrip("+~"),
                value,
                "not a value the override grammar reads: quote it (key='value') when it has "
                "characters other than ASCII letters, digits and _-+./:@, and close its "
                "brackets",
            )
    return None


def _one_line(exc: Exception) -> str:
    """Hydra's messages run over several lines and sometimes nest the cause; keep the gist."""
    while exc.__cause__ is not None and str(exc.__cause__):
        exc = exc.__cause__  # type: ignore[assignment]
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def compose_many(override_sets: list[list[str]]) -> list[DictConfig]:
    """Compose the root config once per override list (one Hydra initialisation for all)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    override_sets = [_normalise(overrides) for overrides in override_sets]
    GlobalHydra.instance().clear()
    configs, known = [], root_keys()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        for overrides in override_sets:
            try:
                cfg = compose(config_name="config", overrides=[*overrides, *_searchpath()])
            except Exception as exc:  # Hydra raises several unrelated exception types here
                raise (
                    _struct_key_error(exc, overrides)
                    or _yaml_error(exc)
                    or _override_error(exc, overrides)
                    or UsageError(_one_line(exc))
                ) from exc
            # `+key=` and grid files can add keys Hydra's struct mode never sees: check the
            # whole composed config against what the config files declare
            check_root(OmegaConf.to_container(cfg, resolve=False), known)  # type: ignore[arg-type]
            configs.append(cfg)
    return configs


def compose_one(overrides: list[str]) -> DictConfig:
    return compose_many([overrides])[0]


# A root Hydra would pass through unchanged: no quotes, interpolation, escapes or spaces.
PLAIN_ROOT = re.compile(r"[A-Za-z0-9_./:@+=,-]+")


def store_root(overrides: list[str]) -> str:
    """The store root the overrides select (all `collect` needs). The README's form
    (`store.root=DIR` alone) is answered without composing the whole config: Hydra's
    composition is 0.3 s of a 10,000-cell collect."""
    if len(overrides) == 1 and overrides[0].startswith("store.root="):
        value = overrides[0].removeprefix("store.root=")
        if PLAIN_ROOT.fullmatch(value):
            return value
    return str(compose_one(overrides).store.root)
