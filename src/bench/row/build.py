"""Every row is built here: a measured cell's (bench.cell.runner fills in its figures), a
cell the planner decides not to run, and a job that died or ran out of time without writing
its own. Each names its attempt once, at birth: the attempt's files are named by it and never
written over (docs/executors.md, "Store layout")."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

from bench.config.schema import CellConfig
from bench.config.tasks import image_size, task_of
from bench.measure.host_facts import host_facts
from bench.measure.workloads import workload_of
from bench.row.schema import SCHEMA_VERSION
from bench.row.status import RAN_AND_FAILED, Status

MAX_ERROR_CHARS = 2000
PLANNER_ATTEMPT = "planner"  # the attempt id of rows the planner writes (nothing was run)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def new_attempt_id() -> str:
    """An attempt id for a cell run outside any job (`bench run`, benchmarks); a job's comes
    from its executor (bench.executors.environment.attempt_id)."""
    return uuid.uuid4().hex


def cell_row(cell: CellConfig, attempt_id: str) -> dict[str, Any]:
    """The columns every row has, whatever its status: identity, axes, price, host."""
    return {
        "schema_version": SCHEMA_VERSION,
        "sweep_id": cell.sweep_id,
        "cell_id": cell.cell_id,
        "attempt_id": attempt_id,
        "cell_index": cell.index,
        "config_id": cell.cell_id.removesuffix(f"-r{cell.repeat}") if cell.repeat else cell.cell_id,
        "repeat": cell.repeat,
        "model": cell.model.name,
        "model_family": cell.model.family,
        "task": cell.model.task,
        "engine": cell.engine.name,
        "precision": cell.precision,
        "batch_size": cell.batch_size,
        "seq_len": cell.model.seq_len,
        "image_size": image_size(cell.model) if not task_of(cell.model).text else None,
        "new_tokens": cell.model.new_tokens,
        "threads": cell.threads,
        "tp_degree": cell.tp_degree,
        "instance": cell.instance.type,
        "device": cell.device,
        "scenario": cell.scenario.name,
        "workload": cell.workload.name,
        "workload_params": workload_of(cell.workload).describe(cell),
        "price_per_hour": cell.price_per_hour,
        "price_source": cell.price_source,
        "pricing": cell.pricing,
        "config_json": json.dumps(cell.to_dict(), sort_keys=True, default=str),
        **host_facts(),
    }


def failed(row: dict[str, Any], status: Status, error_class: str, error: str) -> dict[str, Any]:
    """`row` marked as not measured: its status, the error's class and message (the message's
    end kept: where a traceback or a log's tail says what happened)."""
    row.update(status=status.value, error_class=error_class, error=error[-MAX_ERROR_CHARS:])
    return row


def failure_row(
    cell: CellConfig,
    attempt_id: str,
    status: Status,
    error_class: str,
    error: str,
    warnings: str | None = None,
) -> dict[str, Any]:
    """The row of a cell that produced no measurement, started and finished now."""
    row = failed(cell_row(cell, attempt_id), status, error_class, error)
    row["started_at"] = row["finished_at"] = now_utc()
    row["warnings"] = warnings
    return row


def unsupported_row(cell: CellConfig, attempt_id: str, reason: str) -> dict[str, Any]:
    """The row of a cell its engine cannot run: written without loading anything."""
    return failure_row(cell, attempt_id, Status.UNSUPPORTED, "Unsupported", reason)


def planner_row(cell: CellConfig, outcome: str, reason: str) -> dict[str, Any]:
    """The row of a cell the planner decides not to run (bench.plan.feasibility.decide's
    `unsupported` or `infeasible`): one attempt per cell and outcome, written again on
    resume rather than beside itself."""
    if outcome == "unsupported":
        return unsupported_row(cell, PLANNER_ATTEMPT, reason)
    return failure_row(cell, PLANNER_ATTEMPT, Status.INFEASIBLE, "Infeasible", reason)


def crash_row(
    cell: CellConfig,
    attempt_id: str,
    status: Status,
    error_class: str,
    error: str,
    warnings: str | None,
) -> dict[str, Any]:
    """The row of a job whose process died or ran out of time without writing its own, under
    that job's attempt id (never over another attempt's row); a cell that ran carries the
    planner's `warnings` (a borderline estimate may be why)."""
    kept = warnings if status in RAN_AND_FAILED else None
    return failure_row(cell, attempt_id, status, error_class, error, kept)
