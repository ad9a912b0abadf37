"""Stop rules: the budget, the minimums, and the gate that opens the interval checks."""

from __future__ import annotations

from bench.measure.stops import MaxDuration, Minimums, WindowRules
from bench.plan.grid import plan_from_overrides

S = 1_000_000_000


def _rules(*overrides: str) -> WindowRules:
    cell = plan_from_overrides(["engine=sleep", *overrides]).cells[0]
    return WindowRules.of(cell.scenario)


def test_each_rule_names_its_reason() -> None:
    assert MaxDuration(2 * S)(5, 2 * S) == "max_duration"
    assert MaxDuration(2 * S)(5, S) is None
    assert Minimums(10, S)(10, S) == "targets_met"
    assert Minimums(10, S)(9, 5 * S) is None and Minimums(10, S)(50, S - 1) is None


def test_without_a_ci_target_the_minimums_stop_the_window() -> None:
    rules = _rules(
        "scenario.ci_target=0",
        "scenario.min_requests=10",
        "scenario.min_duration_s=5",
        "scenario.max_duration_s=8",
    )
    assert rules.gate is None
    assert rules.reason(10, 9 * S) == "max_duration"  # the budget is asked first
    assert rules.reason(10, 2 * S) is None  # min_duration_s not yet met
    quick = _rules("scenario.ci_target=0", "scenario.min_requests=10", "scenario.min_duration_s=1")
    assert quick.reason(10, S) == "targets_met"


def test_with_a_ci_target_the_minimums_only_open_the_checks() -> None:
    rules = _rules(
        "scenario.ci_target=0.05", "scenario.min_requests=10", "scenario.min_duration_s=1"
    )
    assert rules.reason(1000, 2 * S) is None and rules.gate is not None
    assert rules.gate(1000, 2 * S) == "targets_met"
    assert rules.reason(1000, 121 * S) == "max_duration"
