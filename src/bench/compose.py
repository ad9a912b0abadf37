"""Hydra composition for the verbs: overrides in, a composed config out, errors as one line.

`@hydra.main` would treat the verb as an override, so the CLI takes the verb itself and composes
the rest here with Hydra's compose API.
"""

from __future__ import annotations

from collections.abc import Iterable

from omegaconf import DictConfig

from bench.config import CONFIG_GROUPS, ConfigError, conf_dir, group_options


def check_group_choice(group: str, choice: str) -> None:
    """Raise ConfigError naming the group and its options when `choice` is not one of them."""
    options = group_options(group)
    if choice not in options:
        raise ConfigError(group, choice, "allowed: " + ", ".join(options))


def _check_group_overrides(overrides: Iterable[str]) -> None:
    for override in overrides:
        key, sep, value = override.lstrip("+~").partition("=")
        if sep and key in (*CONFIG_GROUPS, "grid"):
            check_group_choice(key, value)


def _one_line(exc: Exception) -> str:
    """Hydra's messages run over several lines and sometimes nest the cause; keep the gist."""
    while exc.__cause__ is not None and str(exc.__cause__):
        exc = exc.__cause__  # type: ignore[assignment]
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


class UsageError(ValueError):
    """Bad command-line input that is not one key's value (a malformed override, say)."""


def compose_many(override_sets: list[list[str]]) -> list[DictConfig]:
    """Compose the root config once per override list (one Hydra initialisation for all)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    for overrides in override_sets:
        _check_group_overrides(overrides)
    GlobalHydra.instance().clear()
    configs = []
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        for overrides in override_sets:
            try:
                configs.append(compose(config_name="config", overrides=list(overrides)))
            except Exception as exc:  # Hydra raises several unrelated exception types here
                raise UsageError(_one_line(exc)) from exc
    return configs


def compose_one(overrides: list[str]) -> DictConfig:
    return compose_many([overrides])[0]
