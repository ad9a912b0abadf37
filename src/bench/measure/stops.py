"""Stop rules: when a measured window ends. A rule is a small callable asked after each
completed request, with the requests completed so far and the ns since the window opened; it
returns the reason to stop (the row's stop_reason) or None. The window ends at the first rule
that answers; requests in flight then complete and count.

- MaxDuration: the budget, `max_duration_s` (also asked after a failed request, so a window
  whose every request fails still ends on time).
- Minimums: `min_requests` and `min_duration_s` both met. With `ci_target` > 0 it is a gate
  instead: once it holds, the coordinator tests the intervals (IntervalsTight, every
  CHECK_INTERVAL_S, once the sample has grown by CHECK_GROWTH) and stops when they are tight.
A scenario's fixed-length stage is the same rules with min = max (scenarios.base.fixed_length).
The open loop's schedule ends its own window (its arrivals are drawn up front).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bench.config.schema import ScenarioConfig

CHECK_INTERVAL_S = 0.5  # how often the coordinator tests whether the intervals are tight ...
CHECK_GROWTH = 1.25  # ... once the sample has grown by this factor since the last test


class StopRule(Protocol):
    def __call__(self, count: int, elapsed_ns: int) -> str | None: ...


@dataclass(frozen=True)
class MaxDuration:
    limit_ns: int

    def __call__(self, count: int, elapsed_ns: int) -> str | None:
        return "max_duration" if elapsed_ns >= self.limit_ns else None


@dataclass(frozen=True)
class Minimums:
    requests: int
    duration_ns: int

    def __call__(self, count: int, elapsed_ns: int) -> str | None:
        return "targets_met" if count >= self.requests and elapsed_ns >= self.duration_ns else None


@dataclass(frozen=True)
class WindowRules:
    """A window's rules: `stops` end it; `gate`, when set, only opens the interval checks."""

    stops: tuple[StopRule, ...]
    gate: Minimums | None  # ci_target > 0: the minimums after which intervals are tested
    plan: str  # what the window will do, for the progress line

    @classmethod
    def of(cls, scenario: ScenarioConfig) -> WindowRules:
        minimums = Minimums(scenario.min_requests, int(scenario.min_duration_s * 1e9))
        budget = MaxDuration(int(scenario.max_duration_s * 1e9))
        waits = scenario.ci_target > 0
        plan = (
            f">= {scenario.min_requests} requests and {scenario.min_duration_s:g} s, "
            f"at most {scenario.max_duration_s:g} s"
        )
        return cls((budget,) if waits else (budget, minimums), minimums if waits else None, plan)

    def reason(self, count: int, elapsed_ns: int) -> str | None:
        for rule in self.stops:
            if (why := rule(count, elapsed_ns)) is not None:
                return why
        return None
