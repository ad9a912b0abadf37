"""Grid expansion: composed config + axes -> validated cells with stable ids -> manifest.

An axis is a config key with a list of values: a config group (`model`, `engine`: each value
composes that group's YAML), a top-level scalar (`precision`, `batch_size`, ...), or a dotted
key inside a group (`model.seq_len`, `engine.service_ms`, `scenario.min_requests`). Cells are
the cartesian product, in the order the axes are written. A grid has at most grid.max_cells
cells, repeats included, checked from its axes' lengths before anything expands; the cells
themselves are made by bench.plan.expand. An engine option on the command line
(`engine.KEY=V`) in a grid that varies the engine goes to the cells whose engine takes it
(bench.plan.engine_options).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench.config.checks import ConfigError, UsageError, flag, int_at_least
from bench.config.compose import check_group_choice, compose_many, compose_one
from bench.config.schema import group_files, group_options
from bench.plan.engine_options import (
    EngineOption,
    blocks_hint,
    check_taken,
    split_engine_options,
    takes,
)
from bench.plan.expand import GROUP_AXES, expand, finish, grid_size, resolution_error
from bench.plan.manifest import ORDERS, Plan, check_sweep_id, digest

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
    "quality",
)
DOTTED_PREFIXES = ("model.", "engine.", "scenario.", "workload.", "slo.")


def _check_axes(axes: dict[str, Any]) -> dict[str, list[Any]]:
    checked: dict[str, list[Any]] = {}
    for key, values in axes.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ConfigError(f"grid.axes.{key}", values, "an axis needs at least one value")
        if key in GROUP_AXES:
            # YAML and Hydra read the choice `null` (the null engine) as None
            null = "null" in group_options(key)
            values = ["null" if value is None and null else value for value in values]
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


def _has_key(cfg: DictConfig, key: str) -> bool:
    try:
        return OmegaConf.select(cfg, key, default=_ABSENT) is not _ABSENT
    except OmegaConfBaseException:  # it is there; its failing interpolation is named later
        return True


def _takes(cfg: DictConfig, key: str) -> bool:
    """Whether a composed config has the dotted key, or its engine takes it (an option its
    Options dataclass declares and its file leaves out)."""
    if _has_key(cfg, key):
        return True
    option = key.removeprefix("engine.")
    return key.startswith("engine.") and "." not in option and takes(str(cfg.engine.name), option)


def _check_dotted_axes(axes: dict[str, list[Any]], configs: list[DictConfig]) -> None:
    """A dotted axis must name a key of every composed config it applies to (the engine a
    grid's own engine axis picks, not the default one). An engine option that only some of
    the product's engines take belongs in a block of its own with those engines."""
    for key in axes:
        if key in GROUP_AXES or key in SCALAR_AXES:
            continue
        lacking = [cfg for cfg in configs if not _takes(cfg, key)]
        if not lacking:
            continue
        engines = list(dict.fromkeys(str(cfg.engine.name) for cfg in configs))
        others = list(dict.fromkeys(str(cfg.engine.name) for cfg in lacking))
        takers = [engine for engine in engines if engine not in others]
        if key.startswith("engine.") and takers:
            raise ConfigError(
                f"grid.axes.{key}",
                axes[key],
                f"engine {', '.join(others)} does not take it; "
                + blocks_hint(key, axes[key], takers, others),
            )
        where = f"model={lacking[0].model.name} engine={lacking[0].engine.name}"
        raise ConfigError(f"grid.axes.{key}", axes[key], f"no such key with {where}")


def _pinned_axes(
    overrides: list[str], axes: dict[str, list[Any]], base: DictConfig
) -> dict[str, list[Any]]:
    """`precision=bf16` on the command line narrows a grid's precision axis to bf16 (an
    engine option held back from `base` as given)."""
    held = {f"engine.{o.key}": o for o in split_engine_options(overrides)[1]}
    pinned = {}
    for override in overrides:
        key, sep, value = override.partition("=")
        key = key.lstrip("+")
        if not sep or key not in axes:
            continue
        if key in GROUP_AXES:
            pinned[key] = [value.strip("'\"")]
        elif key in held and not _has_key(base, key):
            pinned[key] = [held[key].parsed()]
        else:
            pinned[key] = [OmegaConf.select(base, key)]
    return _check_axes(pinned)


def _flat_axes(axes: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A grid's axes with nested mappings under a group read as dotted keys: `engine:
    {service_ms: [1, 2]}` is the axis `engine.service_ms` (a group axis lists names, so a
    mapping there can only mean that)."""
    flat: dict[str, Any] = {}
    for key, values in axes.items():
        name = f"{prefix}{key}"
        nested = isinstance(values, dict) and (bool(prefix) or f"{name}." in DOTTED_PREFIXES)
        flat.update(_flat_axes(values, f"{name}.") if nested else {name: values})
    return flat


def _plain(node: Any, key: str) -> Any:
    """A grid section as plain data, resolved; one line naming the key when it is not a
    mapping or list, or an interpolation in it fails."""
    if not isinstance(node, (DictConfig, ListConfig)):
        return node
    try:
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as exc:
        raise resolution_error(exc, key) from None


def _blocks(base: DictConfig, overrides: list[str]) -> list[dict[str, list[Any]]]:
    """The products a grid is the union of: `grid.axes`, each `grid.blocks` entry laid over it
    (a block replaces the axes it names), and command-line pins on top of all."""
    axes = _plain(base.grid.get("axes"), "grid.axes")
    if not isinstance(axes, dict):
        raise ConfigError("grid.axes", axes, "must be a mapping of axis -> list of values")
    blocks = _plain(base.grid.get("blocks"), "grid.blocks")
    if not isinstance(blocks, list | None):
        raise ConfigError("grid.blocks", blocks, "must be a list of axis mappings")
    products = []
    for block in blocks or [{}]:
        if not isinstance(block, dict):
            raise ConfigError("grid.blocks", block, "each block is a mapping of axes to lists")
        product = _check_axes({**_flat_axes(axes), **_flat_axes(block)})
        product.update(_pinned_axes(overrides, product, base))
        products.append(product)
    return products


def _in_grid_file(exc: ConfigError, overrides: list[str]) -> ConfigError:
    """A grid's own error with the file it is in (when no override set the grid's keys)."""
    keys = [o.partition("=")[0].lstrip("+~") for o in overrides]
    chosen = [
        o.partition("=")[2].strip("'\"")
        for o in overrides
        if o.partition("=")[0].lstrip("+") == "grid"
    ]
    path = group_files("grid").get(chosen[-1]) if chosen else None
    if path is None or any(k.startswith("grid.") for k in keys):
        return exc
    return ConfigError(exc.key, exc.value, f"{exc.allowed} (in {path})")


def _varies_engine(base: DictConfig) -> bool:
    """Whether the grid has an engine axis (in its axes or any block)."""
    try:
        products = _blocks(base, [])
    except ConfigError:  # the grid's own error, raised where the grid is read
        return False
    return any("engine" in axes for axes in products)


def compose_base(overrides: list[str]) -> DictConfig:
    """The root config a grid is read from. Where the grid varies the engine, without the
    command line's engine options (`engine.KEY=V`): they are options of some of the grid's
    engines, not of the default one, and go to the cells whose engine takes them. Composed
    once in the common cases (no engine option, or no engine axis)."""
    rest, options = split_engine_options(overrides)
    if not options:
        return compose_one(overrides)
    try:
        whole = compose_one(overrides)
    except (ConfigError, UsageError) as exc:
        base = compose_one(rest)
        if not _varies_engine(base):
            raise exc from None  # the one engine's own error (no such key, did you mean)
        return base
    return compose_one(rest) if _varies_engine(whole) else whole


def _held_options(overrides: list[str], base: DictConfig) -> tuple[list[str], list[EngineOption]]:
    """(the overrides every combination composes, the engine options held back for the
    combinations whose engine takes them: none where the grid has no engine axis)."""
    rest, options = split_engine_options(overrides)
    return (rest, options) if options and _varies_engine(base) else (overrides, [])


def _composed_groups(
    products: list[dict[str, list[Any]]], overrides: list[str], base: DictConfig
) -> dict[tuple[tuple[str, Any], ...], DictConfig]:
    """One composed config per combination of group choices (model, engine) any block uses;
    each gets the command line's engine options its engine takes."""
    combos: list[tuple[tuple[str, Any], ...]] = []
    for axes in products:
        keys = [k for k in GROUP_AXES if k in axes]
        for values in itertools.product(*(axes[k] for k in keys)):
            combo = tuple(zip(keys, values, strict=True))
            if combo not in combos:
                combos.append(combo)
    overrides, held = _held_options(overrides, base)
    engines = [str(dict(combo).get("engine", base.engine.name)) for combo in combos]
    check_taken(held, list(dict.fromkeys(engines)))
    override_sets = []
    for combo, engine in zip(combos, engines, strict=True):
        keys = {k for k, _ in combo}
        kept = [o for o in overrides if o.partition("=")[0].lstrip("+") not in keys]
        taken = [o.setting() for o in held if takes(engine, o.option)]
        override_sets.append(kept + [f"{k}={v}" for k, v in combo] + taken)
    return dict(zip(combos, compose_many(override_sets), strict=True))


DEFAULT_MAX_CELLS = 100_000  # grid.max_cells: a typo like a 1e7-cell grid is refused at once


def _check_size(base: DictConfig, products: list[dict[str, list[Any]]], repeats: int) -> None:
    """Refuse a grid (with its repeats) over grid.max_cells from the lengths of its axes alone,
    before composing or expanding any of it."""
    limit = int_at_least("grid.max_cells", base.grid.get("max_cells", DEFAULT_MAX_CELLS), 1)
    configs = grid_size(products)
    raise_it = f"over grid.max_cells={limit}; raise grid.max_cells to allow it"
    if configs > limit:
        shape = " + ".join(
            " x ".join(f"{len(v)} {k}" for k, v in axes.items()) or "1" for axes in products
        )
        if len(shape) > 200:
            shape = f"{len(products)} blocks"
        raise ConfigError("grid", str(base.grid.name), f"{configs:,} cells ({shape}), {raise_it}")
    if configs * repeats > limit:
        raise ConfigError(
            "repeats",
            repeats,
            f"{configs:,} cells x {repeats:,} repeats is {configs * repeats:,} cells, {raise_it}",
        )


def check_models_dir(value: Any) -> None:
    """Where this machine's cells build and keep checkpoints: a folder, or a path where one
    can be made (a file there made every cell a failed row)."""
    path = Path(str(value)).expanduser()
    try:
        existing = next(p for p in (path, *path.parents) if p.exists())
        folder = existing.is_dir()
    except OSError as exc:  # a folder on the way that this user may not look into
        raise ConfigError("models_dir", value, f"cannot be read: {exc.strerror}") from None
    if not folder:
        what = "it is a file" if existing == path else f"{existing} is a file"
        raise ConfigError("models_dir", value, f"{what}: give a folder (made when missing)")


def _check_repeats(base: DictConfig) -> int:
    repeats = base.get("repeats", 1)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ConfigError("repeats", repeats, "must be an integer >= 1")
    return repeats


ExecutorCheck = Callable[[dict[str, Any]], None]


def _executor(base: DictConfig, check_executor: ExecutorCheck | None) -> dict[str, Any]:
    executor = OmegaConf.to_container(base.executor, resolve=True)
    assert isinstance(executor, dict)
    if check_executor is not None:  # its typed options, before any cell is made
        check_executor(executor)
    if executor.get("name") == "local":  # elsewhere it is a path on the machines running cells
        check_models_dir(base.models_dir)
    return executor


def plan_from_overrides(
    overrides: list[str],
    base: DictConfig | None = None,
    check_executor: ExecutorCheck | None = None,
) -> Plan:
    """Compose (unless `base`, the overrides' compose_base, is given), expand the grid,
    validate every cell. Raises ConfigError / UsageError. What does not depend on the cells
    is checked before any of them is made: the executor's options too where the caller, who
    knows the executors (the planner sits below them), passes `check_executor`
    (bench.executors.check_executor); a sweep checks them again as it makes its executor,
    before anything is written."""
    base = compose_base(overrides) if base is None else base
    repeats = _check_repeats(base)
    order = base.get("order", "manifest")
    if order not in ORDERS:
        raise ConfigError("order", order, "allowed: " + ", ".join(ORDERS))
    if base.sweep_id is not None:
        check_sweep_id(base.sweep_id)
    executor = _executor(base, check_executor)
    try:
        products = _blocks(base, overrides)
    except ConfigError as exc:
        raise _in_grid_file(exc, overrides) from None
    _check_size(base, products, repeats)
    by_groups = _composed_groups(products, overrides, base)
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
    drafts = expand(products, by_groups)

    grid_name = str(base.grid.name)
    sweep_id = base.sweep_id
    if sweep_id is None:
        sweep_id = f"{grid_name}-{digest(sorted(cell_id for _, cell_id in drafts), 8)}"
    check_sweep_id(sweep_id)
    cells = finish(drafts, repeats, str(sweep_id))
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
