"""run_cell(cell) -> one result row (and the raw samples). Never raises past itself.

Order inside a cell: prepare (checkpoint onto local disk; not timed as load), load (timed:
load_s), make one synthetic batch (not timed), warmup + measured closed loop, summarise.
Any exception becomes a `failed` row with its class and message.
"""

from __future__ import annotations

import json
import os
import resource
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from bench.config import CellConfig
from bench.engines import ENGINES
from bench.engines.base import Unsupported
from bench.environment import host_facts
from bench.loadgen import LoadResult, run_closed_loop
from bench.metrics import summarize
from bench.rows import SAMPLES_SCHEMA, SCHEMA_VERSION

MAX_ERROR_CHARS = 2000


@dataclass
class CellResult:
    row: dict[str, Any]
    samples: pa.Table | None  # None when nothing was measured


def attempt_id() -> str:
    """One id per execution: the scheduler's job id where there is one, else a fresh uuid."""
    for var in ("BENCH_ATTEMPT_ID", "AWS_BATCH_JOB_ID", "SLURM_JOB_ID"):
        if value := os.environ.get(var):
            return value
    return uuid.uuid4().hex


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def base_row(cell: CellConfig) -> dict[str, Any]:
    """The columns every row has, whatever its status: identity, axes, price, host."""
    return {
        "schema_version": SCHEMA_VERSION,
        "sweep_id": cell.sweep_id,
        "cell_id": cell.cell_id,
        "attempt_id": attempt_id(),
        "cell_index": cell.index,
        "model": cell.model.name,
        "model_family": cell.model.family,
        "task": cell.model.task,
        "engine": cell.engine.name,
        "precision": cell.precision,
        "batch_size": cell.batch_size,
        "seq_len": cell.model.seq_len,
        "new_tokens": cell.model.new_tokens,
        "threads": cell.threads,
        "tp_degree": cell.tp_degree,
        "instance": cell.instance.type,
        "device": cell.device,
        "scenario": cell.scenario.name,
        "price_per_hour": cell.price_per_hour,
        "price_source": cell.price_source,
        "config_json": json.dumps(cell.to_dict(), sort_keys=True, default=str),
        **host_facts(),
    }


def failure_row(cell: CellConfig, status: str, error_class: str, error: str) -> dict[str, Any]:
    """A row for a cell that produced no measurement (used by executors for crashed jobs)."""
    row = base_row(cell)
    row.update(status=status, error_class=error_class, error=error[-MAX_ERROR_CHARS:])
    row["started_at"] = row["finished_at"] = now_utc()
    return row


def samples_table(result: LoadResult) -> pa.Table:
    return pa.Table.from_arrays(
        [result.thread, result.sent_ns, result.latency_ns], schema=SAMPLES_SCHEMA
    )


def _measure(cell: CellConfig, row: dict[str, Any]) -> LoadResult:
    engine = ENGINES[cell.engine.name](cell)
    try:
        prepared = engine.prepare()
        row.update(
            checkpoint=prepared.checkpoint,
            checkpoint_build_s=prepared.build_s,
            download_s=prepared.download_s,
        )
        started = time.perf_counter()
        loaded = engine.load()
        row["load_s"] = time.perf_counter() - started
        row.update(device=loaded.device, params=loaded.params)
        started = time.perf_counter()
        info = {**loaded.extra, **engine.initialize()}
        row["init_s"] = time.perf_counter() - started
        row["engine_info"] = json.dumps(info, sort_keys=True, default=str)
        batch = engine.make_batch()
        if cell.model.task == "generate":
            new_tokens = cell.model.new_tokens

            def request() -> object:
                return engine.generate(batch, new_tokens)
        else:

            def request() -> object:
                return engine.infer(batch)

        result = run_closed_loop(request, engine.synchronize, cell.threads, cell.scenario)
        row.update(engine.describe())
        return result
    finally:
        engine.close()


def unsupported_row(cell: CellConfig, reason: str) -> dict[str, Any]:
    """The row of a cell its engine cannot run: written without loading anything."""
    return failure_row(cell, "unsupported", "Unsupported", reason)


def run_cell(cell: CellConfig) -> CellResult:
    """Run one cell in this process; always returns a row."""
    engine_class = ENGINES[cell.engine.name]
    reason = engine_class.unsupported_reason(cell) or engine_class.host_reason(cell)
    if reason:
        return CellResult(row=unsupported_row(cell, reason), samples=None)
    row = base_row(cell)
    row["started_at"] = now_utc()
    samples = None
    try:
        result = _measure(cell, row)
        row.update(summarize(result, cell), status="ok")
        samples = samples_table(result)
    except Unsupported as exc:  # only the host could tell (a library missing, say)
        row.update(status="unsupported", error_class="Unsupported", error=str(exc))
    except Exception as exc:  # a failing cell is a row, never a crashed sweep
        row.update(
            status="failed",
            error_class=type(exc).__name__,
            error=str(exc)[:MAX_ERROR_CHARS] or repr(exc),
        )
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    row["finished_at"] = now_utc()
    return CellResult(row=row, samples=samples)
