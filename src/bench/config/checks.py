"""Value checks for configuration: each raises ConfigError, one line naming the key, the bad
value and what is allowed. Shared by the cell schema, the engines' and scenarios' options and
the executors' options."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """A bad configuration value: one line naming the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not allowed; {allowed}")


class UsageError(ValueError):
    """Bad input that is not one key's value (a malformed override, settings missing
    together): one line, exit 2."""


SWEEP_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_sweep_id(sweep_id: Any) -> str:
    """A sweep id names a folder directly under the store's root: nothing that leaves it."""
    if not SWEEP_ID_PATTERN.match(str(sweep_id)) or ".." in str(sweep_id):
        raise ConfigError(
            "sweep_id", sweep_id, "use letters, digits, '.', '_' and '-' only (no '..')"
        )
    return str(sweep_id)


def require(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ConfigError(key, value, allowed)


def did_you_mean(word: Any, candidates: Iterable[str]) -> str:
    """'; did you mean X?' naming the candidate closest to a mistyped `word` (difflib's
    ratio at least 0.6), or '' when none is close."""
    close = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def choice(
    key: str, value: Any, allowed: tuple[str, ...] | list[str], what: str = "allowed"
) -> str:
    if value not in allowed:
        hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
        raise ConfigError(key, value, f"{what}: " + ", ".join(allowed) + hint)
    return value


def int_at_least(key: str, value: Any, low: int, high: int | None = None) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if high is None:
        require(ok, key, value, f"must be an integer >= {low}")
    else:
        require(ok and value <= high, key, value, f"must be an integer from {low} to {high}")
    return value


def flag(key: str, value: Any) -> bool:
    """A true/false switch. Only a real boolean: `force=no` or `force="0"` would be truthy
    strings, and a switch like force that re-runs cells must never flip by accident."""
    require(isinstance(value, bool), key, value, "must be true or false")
    return value


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def finite_number(key: str, text: str, low: float, high: float) -> float:
    """A number given on the command line as text, finite and in [low, high]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    ok = math.isfinite(value) and low <= value <= high
    require(ok, key, text, f"must be a number from {low:g} to {high:g}")
    return value


def positive(key: str, value: Any) -> float:
    ok = finite(value) and value > 0
    require(ok, key, value, "must be a finite number > 0")
    return float(value)


def non_negative(key: str, value: Any) -> float:
    ok = finite(value) and value >= 0
    require(ok, key, value, "must be a finite number >= 0")
    return float(value)


def share(key: str, value: Any, low_open: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (0 < value < 1 if low_open else 0 <= value < 1)
    require(ok, key, value, "must be a number in (0, 1)" if low_open else "must be in [0, 1)")
    return float(value)


def optional(check: Any, key: str, d: dict[str, Any], *bounds: int) -> Any:
    """d's value for `key` (GROUP.NAME) checked by `check`, or None when unset."""
    value = d.get(key.rsplit(".", 1)[1])
    return None if value is None else check(key, value, *bounds)


def typed_options(group: str, owner: str, options_type: type, values: dict[str, Any]) -> Any:
    """`values` as an `options_type` dataclass: an unknown key, or a value whose type differs
    from its field's default (an int is a float; a list is a tuple), is refused naming what is
    allowed. Fields defaulting to None are the owner's to check. The planner asks this for
    every cell of a grid: the same values give the same (frozen) options, made once."""
    items = tuple(values.items())
    types = tuple(map(type, values.values()))  # 1, 1.0 and True are equal keys; not these
    try:
        hash(items)
    except TypeError:  # a list or mapping value: nothing to remember it by
        return _typed_options(group, owner, options_type, items)
    return _typed_options_once(group, owner, options_type, items, types)


def _typed_options(
    group: str,
    owner: str,
    options_type: type,
    items: tuple[tuple[str, Any], ...],
    types: tuple[type, ...] = (),  # part of the remembered call's key only
) -> Any:
    fields = _fields(options_type)
    typed = {}
    for key, value in items:
        if key not in fields:
            raise ConfigError(f"{group}.{key}", value, f"{owner}: {', '.join(fields) or 'none'}")
        default = fields[key].default
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        typed[key] = value
        if default is None or default is dataclasses.MISSING:
            continue
        expected = float if isinstance(default, float) else type(default)
        wrong = isinstance(value, bool) and expected is not bool
        if wrong or not isinstance(value, (expected, int) if expected is float else expected):
            raise ConfigError(f"{group}.{key}", value, f"must be {expected.__name__}")
    return options_type(**typed)


_typed_options_once = functools.lru_cache(maxsize=4096)(_typed_options)


@functools.cache
def _fields(options_type: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(options_type)}
