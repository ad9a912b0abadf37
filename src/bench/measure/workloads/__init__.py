"""The workloads a cell can send (conf/workload/NAME.yaml): what each request carries. One
module and one class each; this registry is the only list of them."""

from __future__ import annotations

import dataclasses

from bench.config.checks import choice
from bench.config.plugin import discover
from bench.config.schema import CellConfig, WorkloadConfig
from bench.measure.workloads.base import Source, Workload

# every Workload subclass under this package that names itself: a workload is its module and
# its conf/workload/NAME.yaml (tests/unit/measure/workloads/test_conformance.py)
WORKLOADS: dict[str, type[Workload]] = discover(__name__, Workload)


def workload_of(config: WorkloadConfig) -> type[Workload]:
    return WORKLOADS[choice("workload", config.name, tuple(WORKLOADS), "workloads")]


def check_workload(cell: CellConfig) -> WorkloadConfig:
    """The cell's workload with its own keys only, checked (ConfigError naming the key, the
    value and what is allowed). A key another workload owns is dropped, as for scenarios: a
    grid over workloads sets each one's keys once."""
    workload = workload_of(cell.workload)
    others = {key for w in WORKLOADS.values() if w is not workload for key in w.option_keys()}
    own = {
        k: v
        for k, v in cell.workload.options.items()
        if k in workload.option_keys() or k not in others
    }
    checked = dataclasses.replace(cell.workload, options=own)
    workload.check(own)
    workload.check_cell(dataclasses.replace(cell, workload=checked))
    return checked


def workload_columns() -> list[tuple[str, object, str]]:
    """The row columns every workload owns, in registry order (for the row schema)."""
    return [column for workload in WORKLOADS.values() for column in workload.columns]


__all__ = ["WORKLOADS", "Source", "Workload", "check_workload", "workload_columns", "workload_of"]
