"""Grid size: a bound on cells (grid.max_cells, repeats included) checked before anything
expands. (The expansion itself, fast and the same as the plain per-cell one: test_expand.py.)"""

from __future__ import annotations

from typing import Any

import pytest

import bench.plan.grid as grid
from bench.config.checks import ConfigError
from bench.plan.grid import plan_from_overrides

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
