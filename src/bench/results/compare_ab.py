"""One sweep, two sides: split an interleaved A/B sweep's rows into BASE and NEW by one key.

An A/B sweep varies one grid axis over the two sides (`grid.axes.engine.service_ms=[40,44]`,
a torch flag, an engine option) with `repeats=K` and `order=interleaved`, so the two sides'
runs alternate in time and a drifting host falls on both alike. `bench compare SWEEP ab=KEY`
splits its rows by the cell's value on that axis (each row's resolved config records the
grid axes and its values: `config_json` -> `axes`): BASE is the axis's first value as written
(the value of the sweep's first cell), NEW the other. Everything else is matched as between two
sweeps. An A/A check is the same with an axis that changes nothing the cell measures (the
sleep engine ignores `seed`: `grid.axes.seed=[0,1]`, `ab=seed`).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from bench.config.checks import ConfigError


def _config(raw: Any) -> dict[str, Any]:
    try:
        return json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}


def split_sides(rows: pd.DataFrame, key: str) -> tuple[pd.DataFrame, pd.DataFrame, list[Any]]:
    """(BASE rows, NEW rows, [base value, new value]) of one sweep split on grid axis `key`;
    ConfigError when the sweep has no such axis or not exactly two values on it."""
    configs = [_config(raw) for raw in rows.get("config_json", pd.Series(dtype=object))]
    axes = [config.get("axes") or {} for config in configs]
    if not any(key in found for found in axes):
        known = sorted({name for found in axes for name in found})
        raise ConfigError(
            "ab", key, "not a grid axis of this sweep; its axes: " + (", ".join(known) or "none")
        )
    side = [json.dumps(found.get(key), sort_keys=True) for found in axes]
    # the axis's order as written: the value first seen in the manifest's cell order
    first_index: dict[str, int] = {}
    for value, config in zip(side, configs, strict=True):
        index = int(config.get("index") or 0)
        first_index[value] = min(index, first_index.get(value, index))
    values = sorted(first_index, key=first_index.__getitem__)
    if len(values) != 2:
        raise ConfigError(
            "ab",
            key,
            f"an A/B sweep has two values on its axis; this one has {len(values)}: "
            + ", ".join(values),
        )
    marks = pd.Series(side, index=rows.index)
    return (
        rows[marks == values[0]],
        rows[marks == values[1]],
        [json.loads(value) for value in values],
    )
