"""Grid expansion: composed config + axes -> validated cells with stable ids -> manifest.

An axis is a config key with a list of values: a config group (`model`, `engine`: each value
composes that group's YAML), a top-level scalar (`precision`, `batch_size`, ...), or a dotted
key inside a group (`model.seq_len`, `engine.service_ms`, `scenario.min_requests`). Cells are
the cartesian product, in the order the axes are written.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from bench.config.checks import ConfigError, flag
from bench.config.compose import check_group_choice, compose_many, compose_one
from bench.config.schema import (
    CellConfig,
    InstanceSpec,
    catalog_entries,
    cell_from_dict,
    instance_from_catalog,
)
from bench.engines import check_engine
from bench.executors import check_executor
from bench.measure.scenarios import SCENARIOS, check_scenario
from bench.measure.workloads import check_workload
from bench.plan.manifest import ORDERS, Plan, check_sweep_id, digest

GROUP_AXES = ("model", "engine", "scenario", "workload")
SCALAR_AXES = (
    "precision",
    "batch_size",
    "threads",
    "tp_degree",
    "instance",
    "device",
    "price_per_hour",
    "torch_threads",
    "seed",
)
DOTTED_PREFIXES = ("model.", "engine.", "scenario.", "workload.", "slo.")
# Keys that do not change what a cell measures, so they stay out of its id.
_NOT_IDENTITY = ("sweep_id", "cell_id", "index", "models_dir", "axes", "repeat")
_NOT_IDENTITY_COST = ("price_per_hour", "price_source", "pricing")


def cell_id_for(cell: CellConfig) -> str:
    """Stable id: a readable prefix plus a hash of everything that shapes the measurement."""
    identity = {
        k: v
        for k, v in cell.to_dict().items()
        if k not in _NOT_IDENTITY and k not in _NOT_IDENTITY_COST
    }
    identity["instance"] = cell.instance.type
    prefix = (
        f"{cell.model.name}-{cell.engine.name}-{cell.precision}-b{cell.batch_size}"
        f"-t{cell.threads}-tp{cell.tp_degree}-{cell.instance.type}"
    )
    return f"{prefix}-{digest(identity, 10)}"


def _check_axes(axes: dict[str, Any]) -> dict[str, list[Any]]:
    checked: dict[str, list[Any]] = {}
    for key, values in axes.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ConfigError(f"grid.axes.{key}", values, "an axis needs at least one value")
        if key in GROUP_AXES:
            for value in values:
                check_group_choice(key, value)
        elif key not in SCALAR_AXES and not key.startswith(DOTTED_PREFIXES):
            allowed = (
                ", ".join((*GROUP_AXES, *SCALAR_AXES))
                + ", or keys under "
                + "/".join(p.rstrip(".") for p in DOTTED_PREFIXES)
            )
            raise ConfigError(f"grid.axes.{key}", values, f"axes are: {allowed}")
        checked[key] = list(dict.fromkeys(values))  # a value listed twice is one cell
    return checked


_ABSENT = object()


def _check_dotted_axes(axes: dict[str, list[Any]], configs: list[DictConfig]) -> None:
    """A dotted axis must name a key of every composed config it applies to (the engine a
    grid's own engine axis picks, not the default one)."""
    for key in axes:
        if key in GROUP_AXES or key in SCALAR_AXES:
            continue
        for cfg in configs:
            if OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
                where = f"model={cfg.model.name} engine={cfg.engine.name}"
                raise ConfigError(f"grid.axes.{key}", axes[key], f"no such key with {where}")


def _pinned_axes(
    overrides: list[str], axes: dict[str, list[Any]], base: DictConfig
) -> dict[str, list[Any]]:
    """`precision=bf16` on the command line narrows a grid's precision axis to bf16."""
    pinned = {}
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and key in axes:
            pinned[key] = [value.strip("'\"") if key in GROUP_AXES else OmegaConf.select(base, key)]
    return _check_axes(pinned)


def _price(cfg: dict[str, Any], instance: InstanceSpec) -> tuple[float, str, str]:
    """(USD per hour, where it is from with its date, which list: ec2 | sagemaker | override)."""
    if cfg.get("price_per_hour") is not None:
        return cfg["price_per_hour"], "price_per_hour override", "override"
    catalog = cfg["catalog"]
    if cfg.get("pricing") == "sagemaker":
        if instance.sagemaker_usd_per_hour is None:
            raise ConfigError(
                "pricing",
                "sagemaker",
                f"the catalog has no SageMaker price for {instance.type}; use pricing=ec2 or "
                "give price_per_hour",
            )
        source = f"{catalog['sagemaker_price_source']}, ml.{instance.type}, "
        return (
            instance.sagemaker_usd_per_hour,
            source + str(instance.sagemaker_price_date),
            "sagemaker",
        )
    if instance.usd_per_hour is None:
        raise ConfigError(
            "price_per_hour",
            None,
            f"{instance.type} has no on-demand price in the catalog ({instance.price_note}); "
            "give price_per_hour=USD",
        )
    source = f"{catalog['price_source']}, {instance.price_date}"
    if instance.price_note:
        source += f" ({instance.price_note})"
    return instance.usd_per_hour, source, "ec2"


def _cell(cfg: DictConfig, axes_values: dict[str, Any], index: int) -> CellConfig:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    instance = instance_from_catalog(catalog_entries(resolved["catalog"]), resolved["instance"])
    check_engine(resolved["engine"])  # before anything reads its options
    price, price_source, pricing = _price(resolved, instance)
    behind = int((resolved.get("engine") or {}).get("instances") or 1)
    if behind > 1 and pricing != "override":  # an endpoint served by several instances
        price, price_source = price * behind, f"{price_source} x {behind} instances"
    cell = cell_from_dict(
        {
            **{k: resolved[k] for k in ("precision", "batch_size", "threads", "tp_degree")},
            **{k: resolved[k] for k in ("device", "torch_threads", "seed", "models_dir")},
            "index": index,
            "model": resolved["model"],
            "engine": resolved["engine"],
            "scenario": resolved["scenario"],
            "workload": resolved.get("workload"),
            "slo": resolved.get("slo"),
            "instance": instance,
            "price_per_hour": price,
            "price_source": price_source,
            "pricing": pricing,
            "axes": axes_values,
        }
    )
    # its own keys (the schema checked only the shared ones), before the id is drawn from them
    cell = dataclasses.replace(cell, scenario=check_scenario(cell.scenario))
    cell = dataclasses.replace(cell, workload=check_workload(cell))
    SCENARIOS[cell.scenario.name].check_cell(cell)
    return dataclasses.replace(cell, cell_id=cell_id_for(cell))


def _repeats(cell: CellConfig, repeats: int, first_index: int) -> list[CellConfig]:
    """The cell once per repeat: each its own job in a fresh process. Repeat 0 keeps the plain
    id (a sweep that adds repeats later reuses its rows); repeat k gets `-rk`."""
    return [
        dataclasses.replace(
            cell,
            repeat=k,
            index=first_index + k,
            cell_id=f"{cell.cell_id}-r{k}" if k else cell.cell_id,
        )
        for k in range(repeats)
    ]


def _blocks(base: DictConfig, overrides: list[str]) -> list[dict[str, list[Any]]]:
    """The products a grid is the union of: `grid.axes`, each `grid.blocks` entry laid over it
    (a block replaces the axes it names), and command-line pins on top of all."""
    axes = OmegaConf.to_container(base.grid.axes, resolve=True)
    raw = base.grid.get("blocks")
    blocks = OmegaConf.to_container(raw, resolve=True) if raw is not None else []
    if not isinstance(blocks, list):
        raise ConfigError("grid.blocks", blocks, "must be a list of axis mappings")
    products = []
    for block in blocks or [{}]:
        if not isinstance(block, dict):
            raise ConfigError("grid.blocks", block, "each block is a mapping of axes to lists")
        product = _check_axes({**axes, **block})
        product.update(_pinned_axes(overrides, product, base))
        products.append(product)
    return products


def _composed_groups(
    products: list[dict[str, list[Any]]], overrides: list[str]
) -> dict[tuple[tuple[str, Any], ...], DictConfig]:
    """One composed config per combination of group choices (model, engine) any block uses."""
    combos: list[tuple[tuple[str, Any], ...]] = []
    for axes in products:
        keys = [k for k in GROUP_AXES if k in axes]
        for values in itertools.product(*(axes[k] for k in keys)):
            combo = tuple(zip(keys, values, strict=True))
            if combo not in combos:
                combos.append(combo)
    override_sets = []
    for combo in combos:
        keys = {k for k, _ in combo}
        kept = [o for o in overrides if o.partition("=")[0].lstrip("+") not in keys]
        override_sets.append(kept + [f"{k}={v}" for k, v in combo])
    return dict(zip(combos, compose_many(override_sets), strict=True))


def plan_from_overrides(overrides: list[str]) -> Plan:
    """Compose, expand the grid, validate every cell. Raises ConfigError / UsageError."""
    base = compose_one(overrides)
    repeats = base.get("repeats", 1)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ConfigError("repeats", repeats, "must be an integer >= 1")
    order = base.get("order", "manifest")
    if order not in ORDERS:
        raise ConfigError("order", order, "allowed: " + ", ".join(ORDERS))
    products = _blocks(base, overrides)
    by_groups = _composed_groups(products, overrides)

    cells: list[CellConfig] = []
    seen: set[str] = set()
    for axes in products:
        group_keys = [k for k in GROUP_AXES if k in axes]
        _check_dotted_axes(
            axes,
            [
                cfg
                for combo, cfg in by_groups.items()
                if [k for k, _ in combo] == group_keys and all(v in axes[k] for k, v in combo)
            ],
        )
        for values in itertools.product(*axes.values()):
            point = dict(zip(axes, values, strict=True))
            cfg = copy.deepcopy(by_groups[tuple((k, point[k]) for k in group_keys)])
            with open_dict(cfg):
                for key, value in point.items():
                    if key not in GROUP_AXES:
                        OmegaConf.update(cfg, key, value, merge=False)
            cell = _cell(cfg, point, len(cells))
            if cell.cell_id not in seen:
                seen.add(cell.cell_id)
                cells.extend(_repeats(cell, repeats, len(cells)))

    grid_name = str(base.grid.name)
    sweep_id = base.sweep_id
    if sweep_id is None:
        sweep_id = f"{grid_name}-{digest(sorted(seen), 8)}"
    check_sweep_id(sweep_id)
    cells = [dataclasses.replace(c, sweep_id=str(sweep_id)) for c in cells]
    executor = OmegaConf.to_container(base.executor, resolve=True)
    assert isinstance(executor, dict)
    check_executor(executor)  # its typed options, before anything is written
    return Plan(
        sweep_id=str(sweep_id),
        grid_name=grid_name,
        axes=products[0] if len(products) == 1 else {"blocks": products},
        cells=cells,
        store_root=str(base.store.root),
        executor=executor,
        force=flag("force", base.force),
        wait=flag("wait", base.wait),
        run_infeasible=flag("run_infeasible", base.run_infeasible),
        order=str(order),
    )
