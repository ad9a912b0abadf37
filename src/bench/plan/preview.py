"""`bench plan` and `bench fit`: what a sweep will do and cost, before it spends anything."""

from __future__ import annotations

import dataclasses
import json
import operator
from collections import defaultdict
from typing import Any

from bench.config.schema import CellConfig, InstanceSpec
from bench.measure.scenarios import SCENARIOS
from bench.measure.support import why_unsupported
from bench.plan.feasibility import (
    FitRow,
    cell_estimate,
    decide,
    fit_table,
    gpu_capacity_gb,
)
from bench.plan.manifest import Plan
from bench.results.history import CellOverhead
from bench.results.schema import AXIS_COLUMNS


def _estimate_gb(cell: CellConfig) -> float | None:
    est = cell_estimate(cell)
    return round(est.rmme_per_gpu_gb, 2) if est is not None else None


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

    def unsupported(instance: InstanceSpec, partitions: int) -> str | None:
        return why_unsupported(
            dataclasses.replace(cell, instance=instance, tp_degree=partitions), this_host=False
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


def plan_report(plan: Plan, overhead: CellOverhead, this_host: bool = False) -> dict[str, Any]:
    """Per cell: axes, memory estimate vs GPU memory, the planner's decision (with
    `this_host`, cells run on this machine: what it lacks counts, as in the sweep); per
    instance type: the sweep's own estimated instance-hours and dollars, as a range: cells
    that run x (overhead + the least and the most their scenario measures; repeats and ramp
    stages counted)."""
    cells = []
    per_instance: dict[str, dict[str, float]] = defaultdict(
        lambda: {"cells": 0, "hours": 0.0, "hours_max": 0.0, "usd": 0.0, "usd_max": 0.0}
    )
    for cell in plan.cells:
        decision = decide(cell, this_host)
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
                "decision": decision.outcome,
                "reason": decision.reason,
            }
        )
        if decision.runs:
            least, most = SCENARIOS[cell.scenario.name].seconds(cell.scenario)
            entry = per_instance[cell.instance.type]
            entry["cells"] += 1
            for key, seconds in (("", least), ("_max", most)):
                hours = (overhead.seconds + seconds) / 3600
                entry[f"hours{key}"] += hours
                entry[f"usd{key}"] += hours * cell.price_per_hour
    totals = {
        k: {
            **v,
            **{h: round(v[h], 3) for h in ("hours", "hours_max")},
            **{u: round(v[u], 2) for u in ("usd", "usd_max")},
        }
        for k, v in per_instance.items()
    }
    return {
        "sweep_id": plan.sweep_id,
        "cells": cells,
        "per_instance": totals,
        "cell_overhead_s": round(overhead.seconds, 2),
        "cell_overhead_source": overhead.source,
        "hours_total": round(sum(v["hours"] for v in per_instance.values()), 3),
        "hours_total_max": round(sum(v["hours_max"] for v in per_instance.values()), 3),
        "usd_total": round(sum(v["usd"] for v in per_instance.values()), 2),
        "usd_total_max": round(sum(v["usd_max"] for v in per_instance.values()), 2),
    }


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Rows as text, one line each, every column right-aligned under its name. Written out
    here, a column at a time: pandas' to_string took a minute over a 100,000-cell plan."""
    if not rows:
        return "(none)"
    aligned = []
    for name in columns:
        texts = [name, *map(str, map(operator.itemgetter(name), rows))]
        width = max(map(len, texts))
        aligned.append([text.rjust(width) for text in texts])
    return "\n".join(map("  ".join, zip(*aligned, strict=True)))


def format_plan(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=1)
    columns = [
        "index",
        *AXIS_COLUMNS,
        "est_gb_per_gpu",
        "gpu_gb",
        "decision",
    ]
    lines = [_table(report["cells"], columns)]
    for cell in report["cells"]:
        if cell["reason"]:
            lines.append(f"{cell['decision']}: {cell['cell_id']}: {cell['reason']}")
    lines.append(
        f"estimated cost of the sweep itself: cells x ({report['cell_overhead_s']:g} s overhead "
        f"per cell + their scenario's least .. most measuring); overhead: "
        f"{report['cell_overhead_source']}"
    )
    per = [{"instance": k, **v} for k, v in report["per_instance"].items()]
    lines.append(_table(per, ["instance", "cells", "hours", "hours_max", "usd", "usd_max"]))
    lines.append(
        f"total: ${report['usd_total']:.2f} .. ${report['usd_total_max']:.2f}, "
        f"{report['hours_total'] * 60:.1f} .. {report['hours_total_max'] * 60:.1f} instance-minutes"
    )
    return "\n".join(lines)


def format_fit(rows: list[FitRow], fmt: str, header: str) -> str:
    if fmt == "json":
        return json.dumps([r.as_dict() for r in rows], indent=1)
    return header + "\n" + _table([r.as_dict() for r in rows], list(FitRow.__dataclass_fields__))
