"""sla_search's bracketing and bisection, against a load whose answer is known exactly, and
its checks."""

from __future__ import annotations

import pytest

from bench.config.checks import ConfigError
from bench.measure.scenarios.sla_search import SlaSearch, Try
from bench.plan.grid import plan_from_overrides


def _search(truth: float, start: float, *overrides: str) -> tuple[float | None, str, list]:
    cell = plan_from_overrides(
        ["engine=sleep", "scenario=sla_search", "slo.e2e_ms=10", *overrides]
    ).cells[0]
    scenario = SlaSearch(cell)
    tried: list[float] = []

    def attempt(load: float, window) -> Try:
        tried.append(load)
        return Try(load, 100, 0, 1.0 if load <= truth else 0.5, load <= truth)

    low, reason = scenario._search(start, attempt)
    return low, reason, tried


@pytest.mark.parametrize("start", [1.0, 37.0, 500.0])
def test_the_search_brackets_then_bisects_to_the_answer(start: float) -> None:
    low, reason, tried = _search(37.0, start, "scenario.tolerance=0.02")
    assert low is not None and 37.0 * 0.98 <= low <= 37.0
    assert "bracketed" in reason and len(tried) <= 14


def test_concurrency_lands_on_a_whole_number() -> None:
    low, _, tried = _search(13.0, 4.0, "scenario.over=concurrency")
    assert low == 13.0 and all(float(t).is_integer() for t in tried)


def test_a_load_nothing_meets_has_no_answer() -> None:
    low, reason, _ = _search(0.0, 4.0, "scenario.over=concurrency")
    assert low is None and "one client" in reason
    low, reason, _ = _search(-1.0, 100.0, "scenario.max_stages=30")
    assert low is None and "missed the target" in reason


def test_a_load_everything_meets_stops_at_max_concurrency_and_says_so() -> None:
    low, reason, tried = _search(
        1e9, 4.0, "scenario.over=concurrency", "scenario.max_concurrency=64"
    )
    assert low == 64.0 and tried == [4.0, 8.0, 16.0, 32.0, 64.0]
    assert reason == "met the target up to max_concurrency=64"


def test_a_search_out_of_stages_keeps_what_it_met() -> None:
    low, reason, tried = _search(37.0, 1.0, "scenario.max_stages=3")
    assert tried == [1.0, 2.0, 4.0] and low == 4.0 and reason == "max_stages=3 tries"


def test_the_search_needs_an_slo_and_sane_options() -> None:
    with pytest.raises(ConfigError) as caught:
        plan_from_overrides(["engine=sleep", "scenario=sla_search"])
    assert caught.value.key == "slo"
    for override, key in (
        ("scenario.target=1.5", "scenario.target"),
        ("scenario.over=threads", "scenario.over"),
        ("scenario.max_stages=1", "scenario.max_stages"),
        ("slo.e2e_ms=-3", "slo.e2e_ms"),
    ):
        with pytest.raises(ConfigError) as caught:
            plan_from_overrides(["engine=sleep", "scenario=sla_search", "slo.e2e_ms=5", override])
        assert caught.value.key == key
