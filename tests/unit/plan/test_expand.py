"""bench.plan.expand: a grid's cells built once per template and checked once per distinct
value (100,000 cells in seconds), yet exactly the cells, ids and configs the plain per-cell
expansion made; ids that show the dotted axes a grid varies; each section's interpolations
resolved again only where an axis reaches them; prices from the catalog or an override."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

import bench.plan.grid as grid
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
from bench.plan import expand
from bench.plan.grid import plan_from_overrides
from bench.plan.manifest import digest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


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


def test_varied_keys_are_the_dotted_axes_with_more_than_one_value_over_the_grid():
    products = [
        {
            "engine": ["sleep"],
            "engine.service_ms": [1.0, 2.0],
            "model.seq_len": [8],
            "threads": [1, 2],
        },
        {"engine": ["hf"], "model.seq_len": [8], "server.cmd": ["x"]},
        {"engine": ["sleep"], "server.cmd": ["y"]},
    ]
    # model.seq_len holds 8 everywhere; server.cmd takes x in one block and y in another
    assert expand.varied_keys(products) == ("engine.service_ms", "server.cmd")


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("engine.service_ms", 2.5, "service_ms2.5"),
        ("engine.command", "vllm serve --port 8000", "commandvllm_serve_--port_8000"),
        ("model.architecture", {"n_layer": 2}, "architecture_n_layer_2_"),
        ("engine.url", "http://a..b/c", "urlhttp_a.b_c"),  # never `..` in an id
        ("engine.prompt", "x" * 40, "prompt" + "x" * expand.SHOWN_VALUE_CHARS),
    ],
)
def test_an_axis_value_is_spelled_as_an_id_may_hold_it(key, value, text):
    assert expand._id_text(key, value) == text


def _cell(*overrides: str) -> CellConfig:
    return plan_from_overrides(["engine=sleep", *overrides]).cells[0]


def test_an_id_hashes_what_shapes_the_measurement_and_nothing_else():
    base = _cell()
    prefix = "bert_tiny-sleep-fp32-b1-t1-tp1-local-cpu-"
    assert base.cell_id.startswith(prefix) and len(base.cell_id) == len(prefix) + 10
    assert expand.cell_id_for(base) == base.cell_id  # stable: the same cell, the same id
    # where it is kept, what it costs, its repeat and its quality check change no id
    same = dataclasses.replace(
        base, sweep_id="other", models_dir="/elsewhere", price_per_hour=9.0, repeat=3, quality="off"
    )
    assert expand.cell_id_for(same) == base.cell_id
    slower = dataclasses.replace(
        base, engine=dataclasses.replace(base.engine, options={"service_ms": 9.0})
    )
    assert expand.cell_id_for(slower) != base.cell_id
    assert expand.cell_id_for(dataclasses.replace(base, seed=1)) != base.cell_id


def test_an_id_shows_the_cells_value_of_each_varied_axis_and_stays_bounded():
    cell = dataclasses.replace(_cell(), axes={"engine.service_ms": 2.5, "engine.note": "y" * 400})
    shown = expand.cell_id_for(cell, shown=("engine.service_ms",))
    assert "-service_ms2.5-" in shown
    long = expand.cell_id_for(cell, shown=("engine.service_ms", "engine.note") * 10)
    assert len(long) <= expand.MAX_CELL_ID and long.endswith(shown[-11:])  # the hash is kept


@pytest.mark.parametrize(
    ("value", "reads"),
    [
        ("plain", set()),
        (5, set()),
        ("${sla.p99_ms}", {"sla"}),
        (
            {"a": "${threads}", "b": ["${model.seq_len} x ${batch_size}"]},
            {"threads", "model", "batch_size"},
        ),
        ("${oc.env:HOME}", None),  # a resolver could read anything
        ("${..sibling}", None),  # a relative interpolation, the same
    ],
)
def test_the_top_level_keys_an_interpolation_reads(value, reads):
    assert expand._references(value) == reads


def test_a_key_is_live_when_it_reads_an_axis_directly_or_through_another():
    raw = {
        "scenario": {"sla_p99_ms": "${sla.p99_ms}"},
        "sla": {"p99_ms": "${threads}"},
        "model": {"name": "m"},
        "report": "${oc.env:USER}",
        "threads": 1,
    }
    assert expand._live(raw, ["threads", "model"]) == ["report", "scenario", "sla"]
    assert expand._live(raw, ["model"]) == ["report"]  # a group axis is composed, not set


def test_a_value_is_put_in_by_copying_the_path_down_to_it():
    shared = {"engine": {"options": {"a": 1, "b": [1, 2]}}, "model": {"n": 1}}
    cell = dict(shared)
    expand._put(cell, ["engine", "options", "b", "1"], 9)
    assert cell["engine"]["options"] == {"a": 1, "b": [1, 9]}
    assert shared["engine"]["options"]["b"] == [1, 2]  # the template is untouched
    assert cell["model"] is shared["model"]  # what the path does not reach stays shared


def test_points_are_every_combination_with_its_positions_in_axis_order():
    found = list(expand.points({"threads": [1, 2], "batch_size": [4, 8, 16]}))
    assert found[0] == ({"threads": 1, "batch_size": 4}, (0, 0))
    assert found[-1] == ({"threads": 2, "batch_size": 16}, (1, 2))
    assert len(found) == 6 == expand.grid_size([{"threads": [1, 2], "batch_size": [4, 8, 16]}])
    assert expand.grid_size([{"a": [1, 2]}, {"b": [1, 2, 3]}]) == 5  # duplicates still counted


def test_finish_numbers_the_drafts_and_their_repeats():
    draft = _cell()
    cells = expand.finish(
        [(dataclasses.replace(draft), "x"), (dataclasses.replace(draft), "y")], 2, "sw"
    )
    assert [(c.cell_id, c.index, c.repeat, c.sweep_id) for c in cells] == [
        ("x", 0, 0, "sw"),
        ("x-r1", 1, 1, "sw"),
        ("y", 2, 0, "sw"),
        ("y-r1", 3, 1, "sw"),
    ]


def test_a_failed_interpolation_is_one_line_naming_its_key(monkeypatch):
    cfg = OmegaConf.create({"scenario": {"sla_p99_ms": "${nope.missing}"}})
    with pytest.raises(OmegaConfBaseException) as raised:
        OmegaConf.to_container(cfg, resolve=True)
    error = expand.resolution_error(raised.value, "config")
    assert error.key == "scenario.sla_p99_ms" and error.value == "${nope.missing}"
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("overrides", "price", "source", "pricing"),
    [
        (["instance=g5.xlarge", "price_per_hour=2.5"], 2.5, "price_per_hour override", "override"),
        (["instance=g5.xlarge"], None, ", ", "ec2"),
        (["instance=g5.xlarge", "pricing=sagemaker"], None, "ml.g5.xlarge", "sagemaker"),
    ],
)
def test_a_cells_price_is_the_override_or_the_catalogs_with_its_source(
    overrides, price, source, pricing
):
    cell = _cell(*overrides)
    assert cell.pricing == pricing and source in cell.price_source
    if price is not None:
        assert cell.price_per_hour == price
    else:
        assert cell.price_per_hour > 0
