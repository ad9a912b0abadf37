"""Engine options when the engine is a grid axis: `engine.KEY=V` goes to the cells whose
engine takes it; a dotted axis over engines some of which do not take it points at
grid.blocks; the values of the dotted axes a grid varies show in cell ids and in `plan`'s
table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.cli import main
from bench.config.checks import ConfigError
from bench.plan.grid import plan_from_overrides
from bench.plan.manifest import CELL_ID_PATTERN

SLEEP_AND_NULL = "grid.axes.engine=[sleep,null]"
PLAIN_ID = re.compile(r"^[a-z_]+-[a-z_]+-fp32-b1-t1-tp1-local-cpu-[0-9a-f]{10}$")


def _options(overrides: list[str]) -> dict[str, dict]:
    return {c.engine.name: c.engine.options for c in plan_from_overrides(overrides).cells}


@pytest.mark.parametrize("prefix", ["", "+", "++"])
def test_an_engine_option_goes_to_the_engines_that_take_it(prefix: str) -> None:
    options = _options([SLEEP_AND_NULL, f"{prefix}engine.service_ms=2"])
    assert options["sleep"]["service_ms"] == 2
    assert options["null"] == {}


def test_a_grid_file_listing_several_engines_takes_an_option_of_one(conf_copy: Path) -> None:
    (conf_copy / "grid" / "two_engines.yaml").write_text(
        "# @package _global_\ngrid:\n  name: two_engines\n  axes:\n    engine: [sleep, null]\n"
        "    threads: [1, 2]\n"
    )
    plan = plan_from_overrides(["+grid=two_engines", "engine.distribution=lognormal"])
    assert [c.engine.name for c in plan.cells] == ["sleep", "sleep", "null", "null"]
    assert {c.engine.options.get("distribution") for c in plan.cells} == {"lognormal", None}


def test_an_option_only_the_engines_options_dataclass_declares_is_taken(conf_copy: Path) -> None:
    """An engine takes a key its Options dataclass has, though its YAML file leaves it out."""
    sleep = conf_copy / "engine" / "sleep.yaml"
    sleep.write_text("".join(ln for ln in sleep.read_text().splitlines(True) if "sigma" not in ln))
    options = _options([SLEEP_AND_NULL, "engine.distribution=lognormal", "engine.sigma=0.25"])
    assert options["sleep"]["sigma"] == 0.25 and options["null"] == {}


def test_an_option_no_engine_of_the_grid_takes_is_one_line_naming_those_that_do() -> None:
    with pytest.raises(ConfigError) as refused:
        plan_from_overrides(["grid.axes.engine=[hf,null]", "engine.service_ms=2"])
    message = str(refused.value)
    assert refused.value.key == "engine.service_ms" and "\n" not in message
    assert "the grid's engines: hf, null" in message and "engines that take it: sleep" in message


def test_a_misspelt_option_of_a_varied_engine_is_named_with_the_nearest_key() -> None:
    with pytest.raises(ConfigError, match=r"no engine takes it; did you mean service_ms\?"):
        plan_from_overrides([SLEEP_AND_NULL, "engine.servce_ms=2"])


def test_without_an_engine_axis_an_engine_option_is_checked_as_before() -> None:
    with pytest.raises(ConfigError, match="no such config key under engine; did you mean"):
        plan_from_overrides(["engine=sleep", "engine.servce_ms=2"])
    assert _options(["engine=sleep", "engine.service_ms=3"])["sleep"]["service_ms"] == 3


def test_a_dotted_axis_some_engines_do_not_take_points_at_blocks() -> None:
    with pytest.raises(ConfigError) as refused:
        plan_from_overrides([SLEEP_AND_NULL, "grid.axes.engine.service_ms=[1,2]"])
    message = str(refused.value)
    assert "engine null does not take it" in message and "\n" not in message
    assert message.endswith(
        "vary it in grid.blocks with the engines that take it: blocks: "
        "[{engine: [sleep], engine.service_ms: [1, 2]}, {engine: [null]}]"
    )


BLOCKS = "grid.blocks=[{engine:[sleep],engine.service_ms:[1,2.5]},{engine:[null]}]"


def test_blocks_vary_an_option_with_the_engines_that_take_it_and_ids_show_it() -> None:
    plan = plan_from_overrides([BLOCKS])
    ids = [c.cell_id for c in plan.cells]
    assert [c.engine.options.get("service_ms") for c in plan.cells] == [1, 2.5, None]
    assert ids[0].startswith("bert_tiny-sleep-fp32-b1-t1-tp1-local-cpu-service_ms1-")
    assert ids[1].startswith("bert_tiny-sleep-fp32-b1-t1-tp1-local-cpu-service_ms2.5-")
    # a cell without the axis keeps the id it has in a grid without dotted axes
    assert ids[2] == plan_from_overrides(["engine=null"]).cells[0].cell_id
    assert all(CELL_ID_PATTERN.match(i) and ".." not in i for i in ids)


def test_a_pinned_option_narrows_its_blocks_axis() -> None:
    plan = plan_from_overrides([BLOCKS, "engine.service_ms=2.5"])
    assert [(c.engine.name, c.engine.options.get("service_ms")) for c in plan.cells] == [
        ("sleep", 2.5),
        ("null", None),
    ]


def test_ids_without_dotted_axes_are_unchanged() -> None:
    plan = plan_from_overrides([SLEEP_AND_NULL, "engine.service_ms=2"])
    assert all(PLAIN_ID.match(c.cell_id) for c in plan.cells), [c.cell_id for c in plan.cells]


def test_a_dotted_axis_with_one_value_stays_out_of_ids() -> None:
    """A setting laid over a block (a server command, say) varies nothing."""
    plan = plan_from_overrides(["engine=sleep", "grid.axes.engine.distribution=[lognormal]"])
    assert PLAIN_ID.match(plan.cells[0].cell_id)


def test_long_and_odd_values_are_cut_to_what_an_id_may_hold() -> None:
    long = "a/b c" + "x" * 300
    plan = plan_from_overrides(
        [
            "engine=http",
            "model=opt_tiny",
            "engine.url=http://127.0.0.1:9/v1",
            f"++grid.axes={{engine.served_model:['{long}','..y']}}",
            "++grid.axes={scenario.min_requests:[10,20]}",
        ]
    )
    ids = [c.cell_id for c in plan.cells]
    assert len(set(ids)) == 4
    for cell_id in ids:
        assert CELL_ID_PATTERN.match(cell_id) and ".." not in cell_id, cell_id
    assert "-served_modela_b_cxxx" in ids[0] and "-min_requests10-" in ids[0]


def test_plan_shows_each_varied_dotted_axis_as_a_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", BLOCKS, "cells=true", f"store.root={tmp_path}"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.lstrip().startswith("index"))
    assert "engine.service_ms" in header.split()
    rows = [line.split() for line in out.splitlines() if "local-cpu" in line and "run" in line]
    assert [row[header.split().index("engine.service_ms")] for row in rows[:2]] == ["1", "2.5"]
    assert "  engine.service_ms: 1, 2.5" in out  # in the summary too
    assert main(["plan", BLOCKS, "format=json", f"store.root={tmp_path}"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["engine.service_ms"] for c in report["cells"]] == [1, 2.5, None]
