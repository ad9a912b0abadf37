"""open_loop: Poisson arrivals at rate_per_s, or at load_fraction x the requests/s a short
closed loop at `threads` concurrency reaches first (that capacity is in the row); with
workload=trace, the trace's own arrival times (its speedup applied), and the rate is theirs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from bench.config.checks import non_negative, positive, require
from bench.config.schema import ScenarioConfig
from bench.engines.base import Engine
from bench.measure.loadgen import Request, run_closed_loop, run_open_loop
from bench.measure.scenarios.base import Measured, Scenario, fixed_length


@dataclass(frozen=True)
class OpenLoopOptions:
    rate_per_s: float = 0.0  # arrivals per second; 0 = load_fraction x measured capacity
    load_fraction: float = 0.8
    calibrate_s: float = 2.0  # closed-loop seconds that measure that capacity


class OpenLoop(Scenario):
    name = "open_loop"
    Options = OpenLoopOptions
    columns = (
        (
            "capacity_rps",
            pa.float64(),
            "open loop: closed-loop requests/s the target was drawn from",
        ),
    )
    options: OpenLoopOptions

    @classmethod
    def validate(cls, options: OpenLoopOptions) -> None:
        non_negative("scenario.rate_per_s", options.rate_per_s)
        positive("scenario.load_fraction", options.load_fraction)
        positive("scenario.calibrate_s", options.calibrate_s)
        require(
            options.rate_per_s > 0 or options.load_fraction <= 1.5,
            "scenario.load_fraction",
            options.load_fraction,
            "must be <= 1.5 (set scenario.rate_per_s for an absolute rate)",
        )

    @classmethod
    def seconds(cls, config: ScenarioConfig) -> tuple[float, float]:
        least, most = super().seconds(config)
        options = cls.options_of(config.options)
        if options.rate_per_s:
            return least, most
        calibration = config.warmup_s + options.calibrate_s  # it warms up too
        return least + calibration, most + calibration

    def run(self, engine: Engine, request: Request, load_copy: Callable[[], Engine]) -> Measured:
        config, options, columns = self.config, self.options, {}
        schedule = getattr(getattr(request, "source", None), "schedule_ns", None)
        if schedule is not None:  # a trace: its own arrival times
            span_s = max(float(schedule[-1]) / 1e9, 1e-3)
            rate = schedule.size / span_s
            result = run_open_loop(
                request, engine.synchronize, self.cell.threads, rate, config, schedule_ns=schedule
            )
            return Measured(result, [result], columns)
        rate = options.rate_per_s
        if not rate:
            probe = run_closed_loop(
                request,
                engine.synchronize,
                self.cell.threads,
                fixed_length(config, options.calibrate_s),
            )
            capacity = probe.n / probe.window_s
            columns["capacity_rps"] = capacity
            rate = capacity * options.load_fraction
        seed = self.cell.seed * 1000 + self.cell.repeat
        result = run_open_loop(request, engine.synchronize, self.cell.threads, rate, config, seed)
        return Measured(result, [result], columns)
