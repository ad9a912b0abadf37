"""A sweep written into a local store as the verbs find it, for the tests of the modules
that read one (bench.results.sweep_rows, sweep_status, sweep_report, fleet) and of the CLI
verbs over them: a manifest, each cell's attempt row, and samples of chosen latencies."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bench.row.schema import SAMPLES_SCHEMA, rows_to_table
from bench.store import LocalStore, SweepPaths

STARTED = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


def cell_row(sweep_id: str, cell_id: str, status: str = "ok", **columns: Any) -> dict[str, Any]:
    """A cell's row: a sleep cell on local-cpu, ok with a few figures, or not ok with why."""
    row: dict[str, Any] = {
        "schema_version": 1,
        "sweep_id": sweep_id,
        "cell_id": cell_id,
        "attempt_id": f"{cell_id}-a0",
        "model": "bert_tiny",
        "engine": "sleep",
        "precision": "fp32",
        "batch_size": 1,
        "threads": 1,
        "replicas_per_instance": 1,
        "instance": "local-cpu",
        "price_per_hour": 0.192,
        "status": status,
        "started_at": STARTED,
        "finished_at": STARTED,
    }
    config = {"sweep_id": sweep_id, "cell_id": cell_id, "engine": {"name": "sleep"}}
    row["config_json"] = json.dumps({**config, "instance": columns.get("instance", "local-cpu")})
    if status == "ok":
        row.update(n=500, latency_ms_p50=5.0, latency_ms_p99=6.0)
        row.update(latency_ms_p99_lo=5.5, latency_ms_p99_hi=6.5)
        row.update(inferences_per_s=200.0, usd_per_million_inferences=0.27)
        row.update(stability="stable")
    else:
        row.update(error_class="BoomError", error=f"{cell_id} broke")
    row.update(columns)
    return row


def samples(latency_ms: float, n: int = 500) -> pa.Table:
    """A closed loop's samples, every request taking `latency_ms`, back to back."""
    latency_ns = int(latency_ms * 1e6)
    sent = np.arange(n, dtype=np.int64) * latency_ns
    columns = {
        "thread": np.zeros(n, dtype=np.int16),
        "sent_ns": sent,
        "latency_ns": np.full(n, latency_ns, dtype=np.int64),
        "stage": np.zeros(n, dtype=np.int16),
        "scheduled_ns": sent,
        "ok": np.ones(n, dtype=bool),
    }
    return pa.table(
        {
            field.name: pa.array(columns[field.name], field.type)
            if field.name in columns
            else pa.nulls(n, field.type)
            for field in SAMPLES_SCHEMA
        },
        schema=SAMPLES_SCHEMA,
    )


def write_sweep(
    root: Path,
    sweep_id: str,
    rows: list[dict[str, Any]],
    *,
    cells: list[str] | None = None,
    latency_ms: dict[str, float] | None = None,
) -> LocalStore:
    """The sweep in the store at `root`: a manifest of `cells` (the rows' cell ids when
    None), each row as its attempt's file, and samples for the cells `latency_ms` names."""
    store = LocalStore(str(root))
    paths = SweepPaths(sweep_id)
    cells = [r["cell_id"] for r in rows] if cells is None else cells
    manifest = {
        "sweep_id": sweep_id,
        "grid": sweep_id.rsplit("-", 1)[0],
        "created_at": STARTED.isoformat(),
        "executor": {"name": "local"},
        "cells": [{"cell_id": c} for c in cells],
    }
    store.write_bytes(paths.manifest, json.dumps(manifest).encode())
    for row in rows:
        path = paths.attempt_row(row["cell_id"], row["attempt_id"], row["status"])
        store.write_table(path, rows_to_table([row]))
    for cell_id, ms in (latency_ms or {}).items():
        attempt = next(r["attempt_id"] for r in rows if r["cell_id"] == cell_id)
        store.write_table(paths.samples(cell_id, attempt), samples(ms))
    return store
