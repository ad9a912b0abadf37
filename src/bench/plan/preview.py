"""`bench plan` and `bench fit`: what a sweep will do and cost, before it spends anything.

`plan` prints a summary (the grid's values, cells by decision, the sweep's own cost and where
its per-cell overhead comes from); the table of cells, a line each, only with `cells=true`,
and everything as JSON with `format=json`.
"""

from __future__ import annotations

import dataclasses
import json
import operator
from collections import Counter, defaultdict
from typing import Any

from bench.config.schema import CellConfig, InstanceSpec
from bench.measure.scenarios import SCENARIOS
from bench.measure.support import why_unsupported
from bench.plan.expand import varied_keys
from bench.plan.feasibility import (
    FitRow,
    cell_estimate,
    decide,
    fit_table,
    gpu_capacity_gb,
)
from bench.plan.history import CellOverhead
from bench.plan.manifest import Plan
from bench.row.schema import AXIS_COLUMNS


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


DECISIONS = ("run", "borderline", "unsupported", "infeasible")  # in the order they print


def _products(plan: Plan) -> list[dict[str, list[Any]]]:
    blocks = plan.axes.get("blocks")
    return blocks if isinstance(blocks, list) else [plan.axes]


def plan_report(plan: Plan, overhead: CellOverhead, this_host: bool = False) -> dict[str, Any]:
    """Per cell: axes (the dotted ones the grid varies too), memory estimate vs GPU memory,
    the planner's decision (with `this_host`, cells run on this machine: what it lacks
    counts, as in the sweep); cells by decision; per instance type: the sweep's own
    estimated instance-hours and dollars, as a range: cells that run x (overhead + the least
    and the most their scenario measures; repeats and ramp stages counted)."""
    varied = varied_keys(_products(plan))
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
                **{key: (cell.axes or {}).get(key) for key in varied},
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
    decisions = Counter(cell["decision"] for cell in cells)
    return {
        "sweep_id": plan.sweep_id,
        "grid": plan.grid_name,
        "executor": str(plan.executor.get("name")),
        "varied": list(varied),
        "decisions": {d: decisions[d] for d in (*DECISIONS, *decisions) if decisions[d]},
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
    """Rows as text, one line each, every column right-aligned under its name (blank where a
    row has no value). Written out here, a column at a time: pandas' to_string took a minute
    over a 100,000-cell plan."""
    if not rows:
        return "(none)"
    aligned = []
    for name in columns:
        values = map(operator.itemgetter(name), rows)
        texts = [name, *("" if value is None else str(value) for value in values)]
        width = max(map(len, texts))
        aligned.append([text.rjust(width) for text in texts])
    return "\n".join(map("  ".join, zip(*aligned, strict=True)))


SUMMARY_REASONS = 5  # the summary's lines of cells not run as planned; cells=true: all
SUMMARY_VALUES = 8  # an axis's values the summary names; more are counted


def _values_line(column: str, cells: list[dict[str, Any]]) -> str:
    """`  precision: fp32, amp_fp16`: a column's distinct values, in the order cells have them."""
    values = list(dict.fromkeys(str(cell[column]) for cell in cells if cell[column] is not None))
    more = len(values) - SUMMARY_VALUES
    shown = ", ".join(values[:SUMMARY_VALUES]) + (f" and {more} more" if more > 0 else "")
    return f"  {column}: {shown}"


def _reason_lines(cells: list[dict[str, Any]], limit: int | None) -> list[str]:
    """`decision: CELL: reason` for each cell that will not run as planned (all, or `limit`)."""
    lines = [f"{c['decision']}: {c['cell_id']}: {c['reason']}" for c in cells if c["reason"]]
    if limit is None or len(lines) <= limit:
        return lines
    return [*lines[:limit], f"... and {len(lines) - limit} more: cells=true lists them all"]


def plan_summary(report: dict[str, Any]) -> str:
    """What a sweep would do, in a screenful: the values its cells take, cells by decision
    (with the first reasons), the sweep's own cost per instance type and in total, and where
    the per-cell overhead comes from."""
    cells = report["cells"]
    decisions = ", ".join(f"{k} {v}" for k, v in report["decisions"].items()) or "none"
    lines = [
        f"plan {report['sweep_id']}: {len(cells)} cells of grid {report['grid']}, "
        f"executor {report['executor']}",
        *(_values_line(column, cells) for column in (*AXIS_COLUMNS, *report["varied"])),
        f"decisions: {decisions}",
        *_reason_lines(cells, SUMMARY_REASONS),
        f"cost of the sweep itself: cells that run x ({report['cell_overhead_s']:g} s overhead "
        "per cell + their scenario's least .. most measuring)",
        f"  overhead: {report['cell_overhead_source']}",
    ]
    per = [{"instance": k, **v} for k, v in report["per_instance"].items()]
    lines.append(_table(per, ["instance", "cells", "hours", "hours_max", "usd", "usd_max"]))
    lines.append(
        f"total: ${report['usd_total']:.2f} .. ${report['usd_total_max']:.2f}, "
        f"{report['hours_total'] * 60:.1f} .. {report['hours_total_max'] * 60:.1f} instance-minutes"
    )
    return "\n".join(lines)


def cell_table(report: dict[str, Any]) -> str:
    """A line per cell: its axes (the dotted ones the grid varies too), memory estimate
    against the GPU's, decision; then every reason a cell will not run as planned."""
    columns = [
        "index",
        *AXIS_COLUMNS,
        *report["varied"],
        "est_gb_per_gpu",
        "gpu_gb",
        "decision",
    ]
    return "\n".join([_table(report["cells"], columns), *_reason_lines(report["cells"], None)])


def format_plan(report: dict[str, Any], fmt: str, cells: bool = False) -> str:
    """`format=json`: the whole report. Else the summary, and with `cells` the table of
    cells under it; without, a line saying how to ask for them."""
    if fmt == "json":
        return json.dumps(report, indent=1)
    if cells:
        return plan_summary(report) + "\n" + cell_table(report)
    return (
        plan_summary(report)
        + "\na line per cell (axes, memory estimate, decision): cells=true; all of it as JSON: "
        "format=json"
    )


def format_fit(rows: list[FitRow], fmt: str, header: str) -> str:
    if fmt == "json":
        return json.dumps([r.as_dict() for r in rows], indent=1)
    return header + "\n" + _table([r.as_dict() for r in rows], list(FitRow.__dataclass_fields__))
