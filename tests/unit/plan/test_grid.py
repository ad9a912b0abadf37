"""Grid expansion: cell counts, stable ids, sweep ids, catalog prices, the manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from bench.config.checks import ConfigError
from bench.config.schema import conf_dir
from bench.plan.grid import plan_from_overrides
from bench.plan.manifest import Plan

REPO_CONF = Path(__file__).resolve().parents[3] / "conf"


@pytest.fixture(scope="module")
def smoke() -> Plan:
    return plan_from_overrides(["+grid=smoke"])


@pytest.fixture(scope="module")
def bert_g5() -> Plan:
    return plan_from_overrides(["+grid=bert_g5"])


@pytest.fixture(scope="module")
def catalog_prices() -> dict[str, float]:
    catalog = yaml.safe_load((REPO_CONF / "catalog.yaml").read_text())["catalog"]
    return {entry["type"]: entry["usd_per_hour"] for entry in catalog["instances"]}


def test_smoke_has_12_cells_with_unique_ids(smoke):
    # bert_tiny: 2 precisions x 2 batch sizes x 2 threads; opt_tiny the same at one thread
    assert len(smoke.cells) == 12
    ids = [cell.cell_id for cell in smoke.cells]
    assert len(set(ids)) == 12
    assert [cell.index for cell in smoke.cells] == list(range(12))
    assert {cell.model.name for cell in smoke.cells} == {"bert_tiny", "opt_tiny"}
    assert {cell.precision for cell in smoke.cells} == {"fp32", "bf16"}
    assert {cell.batch_size for cell in smoke.cells} == {1, 4}
    assert {cell.threads for cell in smoke.cells} == {1, 2}
    assert {c.threads for c in smoke.cells if c.model.name == "opt_tiny"} == {1}
    assert {cell.instance.type for cell in smoke.cells} == {"local-cpu"}
    # the grid's scenario block applies to every cell
    assert {cell.scenario.min_requests for cell in smoke.cells} == {500}
    assert all(cell.sweep_id == smoke.sweep_id for cell in smoke.cells)


def test_cell_ids_have_a_readable_prefix(smoke):
    for cell in smoke.cells:
        prefix = (
            f"{cell.model.name}-{cell.engine.name}-{cell.precision}-b{cell.batch_size}"
            f"-t{cell.threads}-tp{cell.tp_degree}-{cell.instance.type}-"
        )
        assert cell.cell_id.startswith(prefix)


def test_each_cell_records_its_axis_values(smoke):
    for cell in smoke.cells:
        assert cell.axes == {
            "model": cell.model.name,
            "engine": cell.engine.name,
            "precision": cell.precision,
            "batch_size": cell.batch_size,
            "threads": cell.threads,
            "instance": cell.instance.type,
        }


def test_ids_are_stable_across_calls(smoke):
    again = plan_from_overrides(["+grid=smoke"])
    assert [c.cell_id for c in again.cells] == [c.cell_id for c in smoke.cells]
    assert again.sweep_id == smoke.sweep_id


def test_sweep_id_defaults_to_grid_name_and_hash(smoke):
    assert smoke.sweep_id.startswith("smoke-")
    assert len(smoke.sweep_id) == len("smoke-") + 8
    assert smoke.grid_name == "smoke"


def test_a_scenario_change_changes_ids(smoke):
    changed = plan_from_overrides(["+grid=smoke", "scenario.min_requests=31"])
    assert {c.scenario.min_requests for c in changed.cells} == {31}
    old, new = {c.cell_id for c in smoke.cells}, {c.cell_id for c in changed.cells}
    assert len(new) == 12
    assert old.isdisjoint(new)
    assert changed.sweep_id != smoke.sweep_id


def test_a_price_change_does_not_change_ids(smoke):
    priced = plan_from_overrides(["+grid=smoke", "price_per_hour=9.99"])
    assert [c.cell_id for c in priced.cells] == [c.cell_id for c in smoke.cells]
    assert priced.sweep_id == smoke.sweep_id
    assert {c.price_per_hour for c in priced.cells} == {9.99}
    assert {c.price_source for c in priced.cells} == {"price_per_hour override"}
    assert {c.price_per_hour for c in smoke.cells} == {0.192}


def test_a_catalog_price_change_does_not_change_ids(tmp_path, monkeypatch):
    before = plan_from_overrides(["engine=null", "+grid.axes.batch_size=[1,2]"])
    conf = tmp_path / "conf"
    shutil.copytree(REPO_CONF, conf)
    catalog = (conf / "catalog.yaml").read_text()
    assert "usd_per_hour: 0.192" in catalog
    (conf / "catalog.yaml").write_text(catalog.replace("usd_per_hour: 0.192", "usd_per_hour: 0.5"))
    monkeypatch.setenv("BENCH_CONF_DIR", str(conf))
    after = plan_from_overrides(["engine=null", "+grid.axes.batch_size=[1,2]"])
    assert [c.price_per_hour for c in after.cells] == [0.5, 0.5]
    assert [c.instance.usd_per_hour for c in after.cells] == [0.5, 0.5]
    assert [c.cell_id for c in after.cells] == [c.cell_id for c in before.cells]
    assert after.sweep_id == before.sweep_id


def test_models_dir_does_not_change_ids(smoke, tmp_path):
    moved = plan_from_overrides(["+grid=smoke", f"models_dir={tmp_path}"])
    assert [c.cell_id for c in moved.cells] == [c.cell_id for c in smoke.cells]
    assert {c.models_dir for c in moved.cells} == {str(tmp_path)}


def test_explicit_sweep_id_is_used_verbatim():
    plan = plan_from_overrides(["+grid=smoke", "sweep_id=my-run"])
    assert plan.sweep_id == "my-run"
    assert {c.sweep_id for c in plan.cells} == {"my-run"}


@pytest.mark.parametrize("bad", ["'bad id!'", "'../up'", "'-leading-dash'"])
def test_bad_sweep_id_is_rejected(bad):
    with pytest.raises(ConfigError) as info:
        plan_from_overrides([f"sweep_id={bad}"])
    assert info.value.key == "sweep_id"
    assert bad.strip("'") in str(info.value)


def test_bert_g5_expands_to_240_g5_cells_at_catalog_prices(bert_g5, catalog_prices):
    # 1 model x 1 engine x 2 precisions x 5 batch sizes x 4 threads x 6 instance types
    assert len(bert_g5.cells) == 240
    assert len({c.cell_id for c in bert_g5.cells}) == 240
    assert bert_g5.sweep_id.startswith("bert_g5-")
    types = {c.instance.type for c in bert_g5.cells}
    assert types == {
        "g5.xlarge",
        "g5.2xlarge",
        "g5.4xlarge",
        "g5.12xlarge",
        "g5.24xlarge",
        "g5.48xlarge",
    }
    for cell in bert_g5.cells:
        assert cell.instance.type.startswith("g5.")
        assert cell.instance.gpu_model == "A10G"
        assert cell.price_per_hour == catalog_prices[cell.instance.type]
        assert cell.instance.usd_per_hour == catalog_prices[cell.instance.type]
        assert "2025-06-01" in cell.price_source
        assert cell.model.name == "bert_base"
        assert cell.model.seq_len == 128
        assert cell.scenario.min_requests == 1000
    g5_4x = [c for c in bert_g5.cells if c.instance.type == "g5.4xlarge"]
    assert len(g5_4x) == 40
    assert {c.price_per_hour for c in g5_4x} == {1.624}


def test_axis_value_listed_twice_is_one_cell():
    plan = plan_from_overrides(["engine=null", "+grid.axes.batch_size=[2,2,3]"])
    assert [c.batch_size for c in plan.cells] == [2, 3]


def test_scalar_axis_from_the_command_line():
    plan = plan_from_overrides(["engine=null", "+grid.axes.precision=[fp32,bf16]"])
    assert [c.precision for c in plan.cells] == ["fp32", "bf16"]
    assert plan.axes == {"precision": ["fp32", "bf16"]}
    assert plan.sweep_id.startswith("adhoc-")


def _conf_copy(tmp_path: Path, monkeypatch, name: str, axes: dict) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(REPO_CONF, conf)
    body = yaml.safe_dump({"grid": {"name": name, "axes": axes}})
    (conf / "grid" / f"{name}.yaml").write_text("# @package _global_\n" + body)
    monkeypatch.setenv("BENCH_CONF_DIR", str(conf))
    assert conf_dir() == conf.resolve()


def test_dotted_axis_inside_a_group_axis(tmp_path, monkeypatch):
    # The engine is chosen by the grid's own `engine` axis, not on the command line.
    _conf_copy(tmp_path, monkeypatch, "t", {"engine": ["sleep"], "engine.service_ms": [1.0, 2.0]})
    plan = plan_from_overrides(["+grid=t"])
    assert len(plan.cells) == 2
    assert [c.engine.name for c in plan.cells] == ["sleep", "sleep"]
    assert [c.engine.options["service_ms"] for c in plan.cells] == [1.0, 2.0]
    assert plan.cells[0].cell_id != plan.cells[1].cell_id


def test_dotted_axis_with_the_group_chosen_on_the_command_line(tmp_path, monkeypatch):
    _conf_copy(tmp_path, monkeypatch, "t", {"engine": ["sleep"], "engine.service_ms": [1.0, 2.0]})
    plan = plan_from_overrides(["+grid=t", "engine=sleep"])
    assert [c.engine.options["service_ms"] for c in plan.cells] == [1.0, 2.0]


def test_dotted_axes_on_model_and_scenario(tmp_path, monkeypatch):
    _conf_copy(
        tmp_path,
        monkeypatch,
        "t2",
        {"model.seq_len": [16, 32], "scenario.min_requests": [7, 9]},
    )
    plan = plan_from_overrides(["+grid=t2", "engine=null"])
    assert [(c.model.seq_len, c.scenario.min_requests) for c in plan.cells] == [
        (16, 7),
        (16, 9),
        (32, 7),
        (32, 9),
    ]
    assert len({c.cell_id for c in plan.cells}) == 4


def test_dotted_axis_on_a_missing_key_is_rejected(tmp_path, monkeypatch):
    _conf_copy(tmp_path, monkeypatch, "t3", {"model.colour": ["red"]})
    with pytest.raises(ConfigError) as info:
        plan_from_overrides(["+grid=t3"])
    assert info.value.key == "grid.axes.model.colour"


def test_manifest_round_trips_through_json(smoke):
    manifest = json.loads(json.dumps(smoke.to_manifest()))
    assert manifest["manifest_version"] == 1
    assert manifest["sweep_id"] == smoke.sweep_id
    assert manifest["grid"] == "smoke"
    assert [c["cell_id"] for c in manifest["cells"]] == [c.cell_id for c in smoke.cells]
    restored = Plan.from_manifest(manifest)
    assert restored.cells == smoke.cells
    assert restored.sweep_id == smoke.sweep_id
    assert restored.axes == smoke.axes
    assert restored.store_root == smoke.store_root
    assert restored.executor == smoke.executor


def test_manifest_of_a_dotted_sleep_grid_round_trips(tmp_path, monkeypatch):
    _conf_copy(tmp_path, monkeypatch, "t4", {"engine.service_ms": [1.5, 3.0]})
    plan = plan_from_overrides(["+grid=t4", "engine=sleep", "price_per_hour=0.5"])
    assert [c.engine.options["service_ms"] for c in plan.cells] == [1.5, 3.0]
    restored = Plan.from_manifest(json.loads(json.dumps(plan.to_manifest())))
    assert restored.cells == plan.cells
    assert {c.price_per_hour for c in restored.cells} == {0.5}
