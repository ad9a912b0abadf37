"""`bench plan` and `bench fit`: what a sweep will do and cost, before it spends anything."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from typing import Any

from bench.config import CellConfig, InstanceSpec, ScenarioConfig
from bench.engines import ENGINES
from bench.feasibility import (
    FitRow,
    borderline_reason,
    cell_estimate,
    cell_warnings,
    fit_table,
    gpu_capacity_gb,
    infeasible_reason,
)
from bench.plan import Plan


def _estimate_gb(cell: CellConfig) -> float | None:
    est = cell_estimate(cell)
    return round(est.rmme_per_gpu_gb, 2) if est is not None else None


def cell_verdict(cell: CellConfig) -> tuple[str, str]:
    """(run | borderline | unsupported | infeasible, reason); borderline cells run."""
    if reason := ENGINES[cell.engine.name].unsupported_reason(cell):
        return "unsupported", reason
    if reason := infeasible_reason(cell):
        return "infeasible", reason
    if reason := borderline_reason(cell):
        return "borderline", "; ".join(cell_warnings(cell))
    return "run", "; ".join(cell_warnings(cell))


def fit_rows(
    cell: CellConfig,
    catalog: list[InstanceSpec],
    margin: float,
    partitions: tuple[int, ...],
    params: int | None = None,
    pricing: str = "ec2",
) -> list[FitRow]:
    """`fit` for the model, precision, engine and batch of `cell`: only the instance types and
    partition degrees its engine can run, so `fit` never offers what `plan` would refuse."""
    engine = ENGINES[cell.engine.name]

    def unsupported(instance: InstanceSpec, partitions: int) -> str | None:
        return engine.unsupported_reason(
            dataclasses.replace(cell, instance=instance, tp_degree=partitions)
        )

    return fit_table(
        cell.model,
        cell.precision,
        cell.engine.name,
        cell.batch_size,
        catalog,
        margin,
        partitions,
        unsupported,
        params,
        pricing,
    )


def plan_report(plan: Plan, cell_overhead_s: float) -> dict[str, Any]:
    """Per cell: axes, memory estimate vs GPU memory, verdict; per instance type: the sweep's
    own estimated instance-hours and dollars (cells that run x (overhead + measuring))."""
    cells, per_instance = [], defaultdict(lambda: {"cells": 0, "hours": 0.0, "usd": 0.0})
    for cell in plan.cells:
        verdict, reason = cell_verdict(cell)
        cells.append(
            {
                "index": cell.index,
                "cell_id": cell.cell_id,
                "model": cell.model.name,
                "engine": cell.engine.name,
                "precision": cell.precision,
                "batch_size": cell.batch_size,
                "threads": cell.threads,
                "tp_degree": cell.tp_degree,
                "instance": cell.instance.type,
                "est_gb_per_gpu": _estimate_gb(cell),
                "gpu_gb": round(gpu_capacity_gb(cell.instance), 1) if cell.instance.gpus else None,
                "verdict": verdict,
                "reason": reason,
            }
        )
        if verdict in ("run", "borderline"):
            hours = (cell_overhead_s + measured_seconds(cell.scenario)) / 3600
            entry = per_instance[cell.instance.type]
            entry["cells"] += 1
            entry["hours"] += hours
            entry["usd"] += hours * cell.price_per_hour
    totals = {
        k: {**v, "hours": round(v["hours"], 3), "usd": round(v["usd"], 2)}
        for k, v in per_instance.items()
    }
    return {
        "sweep_id": plan.sweep_id,
        "cells": cells,
        "per_instance": totals,
        "usd_total": round(sum(v["usd"] for v in per_instance.values()), 2),
    }


def measured_seconds(scenario: ScenarioConfig) -> float:
    """The least time a cell's scenario measures (its stopping rule may take longer)."""
    if scenario.name == "ramp":
        return len(scenario.stages) * (scenario.stage_duration_s + scenario.stage_warmup_s)
    if scenario.name == "open_loop" and not scenario.rate_per_s:  # calibration warms up too
        return 2 * scenario.warmup_s + scenario.calibrate_s + scenario.min_duration_s
    return scenario.warmup_s + scenario.min_duration_s


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    import pandas as pd

    if not rows:
        return "(none)"
    return pd.DataFrame(rows)[columns].to_string(index=False)


def format_plan(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=1)
    columns = [
        "index",
        "model",
        "engine",
        "precision",
        "batch_size",
        "threads",
        "tp_degree",
        "instance",
        "est_gb_per_gpu",
        "gpu_gb",
        "verdict",
    ]
    lines = [_table(report["cells"], columns)]
    for cell in report["cells"]:
        if cell["reason"]:
            lines.append(f"{cell['verdict']}: {cell['cell_id']}: {cell['reason']}")
    lines.append("estimated cost of the sweep itself (overhead + minimum measuring per cell):")
    per = [{"instance": k, **v} for k, v in report["per_instance"].items()]
    lines.append(_table(per, ["instance", "cells", "hours", "usd"]))
    lines.append(f"total: ${report['usd_total']:.2f}")
    return "\n".join(lines)


def format_fit(rows: list[FitRow], fmt: str, header: str) -> str:
    if fmt == "json":
        return json.dumps([r.as_dict() for r in rows], indent=1)
    return header + "\n" + _table([r.as_dict() for r in rows], list(FitRow.__dataclass_fields__))
