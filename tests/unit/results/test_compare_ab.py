"""Interleaved A/B in one sweep: `order=interleaved` alternates the sides, `compare SWEEP
ab=KEY` splits the sweep's rows on the axis and compares the two sides."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.config.checks import ConfigError
from bench.results.compare import compare
from bench.results.compare_ab import split_sides
from tests.unit.results.compare_rows import run_row


def _ab_sweep(new_p50s: list[float], key: str = "engine.service_ms") -> pd.DataFrame:
    """An A/B sweep of threads [4, 8] x KEY [40, 44] (KEY written last), 3 repeats each."""
    rows, index = [], 0
    for threads in (4, 8):
        for side, p50s in ((40, [40.0, 40.2, 39.9]), (44, new_p50s)):
            for repeat, p50 in enumerate(p50s):
                options = {"threads": threads, "service_ms": side, "index": index}
                axes = {"threads": threads, key: side}
                rows.append(run_row("ab", p50, repeat=repeat, axes=axes, **options))
                index += 1
    return pd.DataFrame(rows)


def test_interleaved_order_alternates_the_sides_round_by_round() -> None:
    from bench.plan.grid import plan_from_overrides

    plan = plan_from_overrides(
        [
            "engine=sleep",
            "grid.axes.threads=[1]",
            "grid.axes.engine.service_ms=[40,44]",  # the A/B axis last: its sides adjacent
            "repeats=3",
            "order=interleaved",
        ]
    )
    order = plan.run_order(list(range(len(plan.cells))))
    sides = [plan.cells[i].axes["engine.service_ms"] for i in order]
    assert sides == [40, 44, 44, 40, 40, 44]  # A B, B A, A B: a linear drift on both alike
    assert [plan.cells[i].repeat for i in order] == [0, 0, 1, 1, 2, 2]
    # a resumed sweep's pending cells keep the rule: 44 of repeat 0 before 40 of repeat 1
    assert plan.run_order([1, 3]) == [3, 1]


def test_a_sweep_splits_on_its_ab_axis_first_value_as_base() -> None:
    base, new, values = split_sides(_ab_sweep([44.0, 44.1, 43.9]), "engine.service_ms")
    assert values == [40, 44] and len(base) == len(new) == 6
    assert set(base["latency_ms_p50"]) == {40.0, 40.2, 39.9}
    result = compare(None, base, None, new, split_key="engine.service_ms")  # type: ignore[arg-type]
    p50 = result.table[result.table["metric"] == "latency_ms_p50"]
    assert len(p50) == 2 and (p50["verdict"] == "slower").all()  # threads 4 and 8, 3 v 3 runs
    assert (p50["runs_base"] == 3).all() and (p50["interval_over"] == "runs").all()
    assert set(p50["config_differs"]) == {"engine.options.service_ms"}
    assert not result.only_base and not result.only_new and result.exit_code == 1


def test_an_ab_split_on_a_matched_column_is_not_matched_on() -> None:
    # ab=threads: the sides differ in a column compare otherwise matches on
    rows = [run_row("ab", 40.0, repeat=k, threads=4, axes={"threads": 4}) for k in range(3)]
    rows += [
        run_row("ab", 40.1, repeat=k, threads=8, axes={"threads": 8}, index=3 + k) for k in range(3)
    ]
    base, new, values = split_sides(pd.DataFrame(rows), "threads")
    assert values == [4, 8]
    result = compare(None, base, None, new, split_key="threads")  # type: ignore[arg-type]
    assert len(result.table) == 5 and result.exit_code == 0  # one pair, five metrics


def test_two_sweeps_of_one_ab_axis_pair_each_side_with_its_own() -> None:
    # both sweeps vary service_ms: 40 pairs with 40 and 44 with 44, never 40 with 44
    both = [
        run_row("s", p50, repeat=k, service_ms=ms, axes={"engine.service_ms": ms})
        for ms, p50 in ((40, 40.0), (44, 44.0))
        for k in range(2)
    ]
    result = compare(None, pd.DataFrame(both), None, pd.DataFrame(both))  # type: ignore[arg-type]
    p50 = result.table[result.table["metric"] == "latency_ms_p50"]
    assert len(p50) == 2 and (p50["change"] == 0).all()


@pytest.mark.parametrize(
    ("key", "why"),
    [("seed", "not a grid axis of this sweep; its axes: engine.service_ms, threads")],
)
def test_an_ab_key_that_is_no_axis_is_one_usage_line(key: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        split_sides(_ab_sweep([44.0, 44.1, 43.9]), key)


def test_an_ab_axis_needs_exactly_two_values() -> None:
    rows = [run_row("x", 40.0, axes={"seed": s}, index=s) for s in range(3)]
    with pytest.raises(ConfigError, match="two values on its axis; this one has 3"):
        split_sides(pd.DataFrame(rows), "seed")
