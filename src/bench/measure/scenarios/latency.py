"""latency: the closed loop of `threads` clients (loadgen.run_closed_loop), until the stopping
rule or the budget."""

from __future__ import annotations

from collections.abc import Callable

from bench.engines.base import Engine
from bench.measure.admission import limits_set
from bench.measure.loadgen import Request, run_closed_loop
from bench.measure.scenarios.base import Measured, Scenario


class Latency(Scenario):
    name = "latency"

    def run(self, engine: Engine, request: Request, load_copy: Callable[[], Engine]) -> Measured:
        result = run_closed_loop(
            request,
            engine.synchronize,
            self.cell.threads,
            self.config,
            # a refused or late request is a result
            tolerate_errors=limits_set(self.config) or engine.remote,
        )
        return Measured(result, [result])
