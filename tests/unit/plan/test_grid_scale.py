"""Grid size: a bound on cells (grid.max_cells, repeats included) checked before anything
expands, and an expansion that neither copies nor re-validates the whole config per cell yet
makes exactly the cells, ids and configs the plain per-cell expansion made."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf, open_dict

import bench.plan.grid as grid
from bench.config.checks import ConfigError
from bench.config.compose import compose_one
from bench.config.schema import (
    CellConfig,
    catalog_entries,
    cell_from_dict,
    instance_from_catalog,
)
from bench.engines import check_engine
from bench.measure.scenarios import check_scenario
from bench.measure.workloads import WORKLOADS, check_workload
from bench.plan.grid import plan_from_overrides
from bench.plan.manifest import digest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
# 10 x 10 x 10 x 10 x 10 x 10 x 10 = 1e7 cells of the sleep engine
HUGE = [
    "engine=sleep",
    f"grid.axes.threads=[{','.join(str(i) for i in range(1, 11))}]",
    f"grid.axes.batch_size=[{','.join(str(i) for i in range(1, 11))}]",
    f"grid.axes.seed=[{','.join(str(i) for i in range(10))}]",
    "++grid.axes={"
    + ",".join(
        f"{key}:[{','.join(str(v) for v in values)}]"
        for key, values in {
            "engine.service_ms": range(1, 11),
            "engine.sigma": [i / 10 for i in range(1, 11)],
            "scenario.min_requests": range(10, 20),
            "scenario.warmup_requests": range(10),
        }.items()
    )
    + "}",
]


@pytest.fixture
def no_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    """Composing a group's configs or expanding a cell fails the test: a refusal must come
    from the axes' lengths alone."""

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the grid was composed or expanded before its size was checked")

    monkeypatch.setattr(grid, "_composed_groups", never)
    monkeypatch.setattr(grid, "expand", never, raising=False)


def test_a_1e7_cell_grid_is_refused_before_anything_expands(no_expansion: None) -> None:
    with pytest.raises(ConfigError) as refused:
        plan_from_overrides(HUGE)
    message = str(refused.value)
    assert "10,000,000 cells" in message
    assert "over grid.max_cells=100000" in message  # the default
    assert "raise grid.max_cells" in message and "\n" not in message


def test_repeats_count_toward_the_bound_and_are_named(no_expansion: None) -> None:
    with pytest.raises(ConfigError) as refused:
        plan_from_overrides(["engine=sleep", "repeats=100000000"])
    assert refused.value.key == "repeats"
    assert "1 cells x 100,000,000 repeats" in str(refused.value)
    assert "grid.max_cells" in str(refused.value)


def test_grid_max_cells_is_the_override_that_lifts_the_bound() -> None:
    four = ["engine=sleep", "grid.axes.threads=[1,2]", "grid.axes.batch_size=[1,2]"]
    with pytest.raises(ConfigError, match=r"4 cells \(2 threads x 2 batch_size\), over grid"):
        plan_from_overrides([*four, "grid.max_cells=3"])
    assert len(plan_from_overrides([*four, "grid.max_cells=4"]).cells) == 4
    with pytest.raises(ConfigError, match="repeats"):
        plan_from_overrides([*four, "grid.max_cells=7", "repeats=2"])


@pytest.mark.parametrize("limit", ["0", "-5", "1.5", "many"])
def test_grid_max_cells_takes_a_positive_integer(limit: str) -> None:
    with pytest.raises(ConfigError, match=r"grid\.max_cells"):
        plan_from_overrides(["engine=sleep", f"grid.max_cells={limit}"])


def test_a_large_expansion_says_how_far_it_is(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.plan.expand import Progress

    monkeypatch.setattr(Progress, "FIRST_S", 0.0)
    threads = ",".join(str(i) for i in range(1, 41))
    plan = plan_from_overrides(
        [
            "engine=sleep",
            f"grid.axes.threads=[{threads}]",
            "grid.axes.batch_size=[1,2,3,4,5]",
            "++grid.axes={engine.service_ms:[1,2,3,4,5]}",
        ]
    )
    assert len(plan.cells) == 1000
    assert "planning: 1,000 of 1,000 cells" in capsys.readouterr().err


def test_the_config_is_not_copied_per_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole composed config (the catalog and all) deep-copied per cell made 1,000 cells
    take 35 s: copies of a composed config number at most the products' group choices."""
    copies = []
    real = copy.deepcopy

    def counting(obj: Any, *args: Any, **kwargs: Any) -> Any:
        root = isinstance(obj, DictConfig) and obj._get_parent() is None and not obj._is_none()
        if root and "catalog" in obj:  # a whole composed config
            copies.append(1)
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(copy, "deepcopy", counting)
    plan = plan_from_overrides(
        [
            "scenario=ramp",  # it interpolates ${sla.p99_ms}
            "engine=sleep",
            "sla.p99_ms=40",
            "grid.axes.threads=[1,2,3,4,5]",
            "grid.axes.batch_size=[1,2,3,4,5,6,7,8]",
        ]
    )
    assert len(plan.cells) == 40
    assert len(copies) <= 1


# The expansion as it was: per cell, a deep copy of the composed config, each axis value put
# in with OmegaConf, the whole resolved and validated, the id hashed from the cell's dict
# (its readable part ending in the cell's value of each dotted axis the grid varies).
def _old_cell(cfg: DictConfig, point: dict[str, Any], shown: list[str]) -> CellConfig:
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        for key, value in point.items():
            if key not in grid.GROUP_AXES:
                OmegaConf.update(cfg, key, value, merge=False)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    instance = instance_from_catalog(catalog_entries(resolved["catalog"]), resolved["instance"])
    check_engine(resolved["engine"])
    price = resolved["price_per_hour"]
    cell = cell_from_dict(
        {
            **resolved,
            "instance": instance,
            "price_per_hour": price if price is not None else instance.usd_per_hour,
            "price_source": (
                "price_per_hour override"
                if price is not None
                else f"{resolved['catalog']['price_source']}, {instance.price_date}"
                + (f" ({instance.price_note})" if instance.price_note else "")
            ),
            "pricing": "override" if price is not None else "ec2",
            "axes": point,
        }
    )
    cell = dataclasses.replace(cell, scenario=check_scenario(cell.scenario))
    cell = dataclasses.replace(cell, workload=check_workload(cell))
    identity = {
        k: v
        for k, v in cell.to_dict().items()
        if k not in ("sweep_id", "cell_id", "index", "models_dir", "axes", "repeat", "quality")
        and k not in ("price_per_hour", "price_source", "pricing")
    }
    identity["instance"] = cell.instance.type
    prefix = (
        f"{cell.model.name}-{cell.engine.name}-{cell.precision}-b{cell.batch_size}"
        f"-t{cell.threads}-tp{cell.tp_degree}-{cell.instance.type}"
    )
    prefix += "".join(f"-{key.rsplit('.', 1)[1]}{point[key]}" for key in shown if key in point)
    return dataclasses.replace(cell, cell_id=f"{prefix}-{digest(identity, 10)}")


def _varied(products: list[dict[str, list[Any]]]) -> list[str]:
    """The dotted axes with more than one value over the grid's products."""
    values: dict[str, set[str]] = {}
    for axes in products:
        for key, listed in axes.items():
            if "." in key:
                values.setdefault(key, set()).update(map(repr, listed))
    return [key for key, seen in values.items() if len(seen) > 1]


def _old_plan(overrides: list[str], products: list[dict[str, list[Any]]]) -> list[dict]:
    cells: list[CellConfig] = []
    seen: set[str] = set()
    composed: dict[tuple[str, ...], DictConfig] = {}
    for axes in products:
        groups = [k for k in grid.GROUP_AXES if k in axes]
        for values in itertools.product(*axes.values()):
            point = dict(zip(axes, values, strict=True))
            kept = [o for o in overrides if o.partition("=")[0].lstrip("+") not in groups]
            choices = tuple(f"{k}={point[k]}" for k in groups)
            if choices not in composed:
                composed[choices] = compose_one([*kept, *choices])
            cell = _old_cell(composed[choices], point, _varied(products))
            if cell.cell_id not in seen:
                seen.add(cell.cell_id)
                cells.append(cell)
    sweep_id = f"adhoc-{digest(sorted(seen), 8)}"
    return [
        dataclasses.replace(c, sweep_id=sweep_id, index=i).to_dict() for i, c in enumerate(cells)
    ]


@pytest.mark.parametrize(
    ("overrides", "products"),
    [
        (  # an interpolating scenario, one of its interpolated keys an axis
            [
                "scenario=ramp",
                "engine=sleep",
                "sla.p99_ms=40",
                "grid.axes.threads=[1,2]",
                "++grid.axes={scenario.sla_p99_ms:[10,20]}",
            ],
            [{"threads": [1, 2], "scenario.sla_p99_ms": [10, 20]}],
        ),
        (  # an interpolation that reads an axis: resolved again per cell
            [
                "scenario=ramp",
                "engine=sleep",
                "scenario.sla_p99_ms=${threads}",
                "grid.axes.threads=[1,2,3]",
                "grid.axes.batch_size=[1,2]",
            ],
            [{"threads": [1, 2, 3], "batch_size": [1, 2]}],
        ),
        (  # group axes over blocks, dotted axes of one engine, prices overridden in some
            [
                "grid.axes.model=[bert_tiny,opt_tiny]",
                "++grid.axes={model.seq_len:[8,16]}",
                "++grid.blocks=[{engine:[sleep],engine.service_ms:[1.0,2.5]},"
                "{engine:[hf],precision:[fp32,bf16],price_per_hour:[null,2.0]}]",
            ],
            [
                {
                    "model": ["bert_tiny", "opt_tiny"],
                    "model.seq_len": [8, 16],
                    "engine": ["sleep"],
                    "engine.service_ms": [1.0, 2.5],
                },
                {
                    "model": ["bert_tiny", "opt_tiny"],
                    "model.seq_len": [8, 16],
                    "engine": ["hf"],
                    "precision": ["fp32", "bf16"],
                    "price_per_hour": [None, 2.0],
                },
            ],
        ),
    ],
)
def test_the_cells_ids_and_configs_are_those_of_the_per_cell_expansion(
    overrides: list[str], products: list[dict[str, list[Any]]]
) -> None:
    plan = plan_from_overrides(overrides)
    assert [c.to_dict() for c in plan.cells] == _old_plan(overrides, products)


def test_repeats_keep_the_plain_id_first_then_number_the_rest() -> None:
    plan = plan_from_overrides(["engine=sleep", "grid.axes.threads=[1,2]", "repeats=3"])
    ids = [c.cell_id for c in plan.cells]
    assert ids[1:3] == [f"{ids[0]}-r1", f"{ids[0]}-r2"] and ids[4] == f"{ids[3]}-r1"
    assert [c.index for c in plan.cells] == list(range(6))
    assert [c.repeat for c in plan.cells] == [0, 1, 2, 0, 1, 2]
    assert {c.sweep_id for c in plan.cells} == {plan.sweep_id}


class _Unread:
    """A field a workload's checks must not read (the planner checks a workload once per
    distinct value of bench.plan.expand.WORKLOAD_READS, not per cell): any use of it fails."""

    def _used(self, *args: Any) -> Any:
        raise AssertionError("a workload check used a field outside WORKLOAD_READS")

    __getattr__ = __eq__ = __lt__ = __le__ = __gt__ = __ge__ = _used  # type: ignore[assignment]
    __bool__ = __int__ = __index__ = __float__ = __str__ = __iter__ = _used  # type: ignore[assignment]
    __hash__ = None  # type: ignore[assignment]


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_a_workloads_checks_read_only_the_fields_the_planner_keys_them_on(
    workload: str, tmp_path: Path
) -> None:
    from bench.plan.expand import WORKLOAD_READS

    trace = tmp_path / "trace.jsonl"
    trace.write_text('{"timestamp": 0, "input_length": 8, "output_length": 4}\n')
    extra = {
        "dataset": [f"workload.path={FIXTURES / 'sharegpt_tiny.json'}"],
        "trace": [f"workload.path={trace}", "scenario=open_loop"],
    }.get(workload, [])
    cell = plan_from_overrides(
        ["model=opt_tiny", "engine=sleep", f"workload={workload}", *extra]
    ).cells[0]
    kept = set(WORKLOAD_READS) | {"sweep_id", "cell_id", "index", "repeat"}
    unread = {f.name: _Unread() for f in dataclasses.fields(cell) if f.name not in kept}
    assert check_workload(dataclasses.replace(cell, **unread)) == cell.workload
