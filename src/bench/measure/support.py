"""Whether a cell can run at all, and why not: the one place that asks the cell's engine (its
capability table and own rules), its scenario and, where the cell runs on this machine, the
host (a library or a launcher missing). The planner adds what memory and prices decide
(bench.plan.feasibility.decide); the runner asks this before loading anything."""

from __future__ import annotations

from bench.config.schema import CellConfig
from bench.engines import ENGINES
from bench.measure.scenarios import SCENARIOS
from bench.measure.workloads import workload_of


def why_unsupported(cell: CellConfig, this_host: bool) -> str | None:
    """The reason `cell` cannot run (None when it can); `this_host`: it runs here."""
    engine, scenario = ENGINES[cell.engine.name], SCENARIOS[cell.scenario.name]
    reason = (
        engine.unsupported_reason(cell)
        or scenario.unsupported_reason(cell)
        or workload_of(cell.workload).unsupported_reason(cell)
    )
    return reason or (engine.host_reason(cell) if this_host else None)
