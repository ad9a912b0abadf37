"""The sweeps in a store (`bench ls`), and what earlier ones say about the time a cell costs
beyond its measuring (`bench plan`).

`plan` prices a sweep as cells x (overhead + measured window). The overhead (process or
container start, imports, checkpoint build and load, warmup, teardown) is the part a fixed
guess gets wrong by an order of magnitude: two minutes is right for a container on AWS Batch
and 50x too much for a tiny model in a local subprocess. Where the store holds ok rows of
earlier sweeps run by the same executor, the overhead is measured from them:

    in the job  = finished_at - started_at - window_s     (per ok row)
    between jobs = next row's started_at - this finished_at (serial executors, per sweep:
                   process start and interpreter imports; gaps over GAP_LIMIT_S are resumes)
    overhead    = median(in the job) + median(between jobs)

from the MAX_SWEEPS most recent such sweeps (never from another executor's: a local CPU
sweep says nothing of a Batch job's container). Without such rows the overhead is the
executor's documented default (DEFAULT_OVERHEAD_S; AWS Batch: 300 s), else
`plan.cell_overhead_s`; `plan.cell_overhead_s=S` given on the command line replaces the
default. Reading never writes anything.
"""

from __future__ import annotations

import io
import statistics
from dataclasses import dataclass

from bench.row.status import Status
from bench.store import Store, SweepPaths, manifest_json

MAX_SWEEPS = 5  # the most recent sweeps of the executor: today's machine, today's code
GAP_LIMIT_S = 300.0  # a longer pause between two cells is a resume, not start-up
# Per cell beyond its measuring, before an executor has rows in the store. An AWS Batch job
# on a fresh GPU host pulls the cell's image (CUDA, PyTorch and the engines: several GB from
# ECR, 2-3 minutes), starts the container, imports torch and transformers (~20 s), builds or
# loads the checkpoint and warms up (~1 minute): 300 s. A job's rows cannot see the pull
# and the container start (they begin in the cell's process), so a measured Batch overhead
# may be the lower figure.
DEFAULT_OVERHEAD_S = {"aws_batch": 300.0}
DEFAULT_OVERHEAD_WHAT = {"aws_batch": "image pull, container start, imports, load"}


@dataclass(frozen=True)
class CellOverhead:
    seconds: float  # per cell, beyond its measured window
    source: str  # where the figure came from, for the plan's output
    rows: int = 0  # ok rows it is the median of (0: the configured guess)


@dataclass(frozen=True)
class SweepInfo:
    sweep_id: str
    grid: str
    created_at: str  # ISO 8601, UTC; "" when the manifest has none
    executor: str
    cells: int  # in the manifest
    statuses: dict[str, int]  # rows in the aggregate by status; empty when not collected
    collected: bool  # an aggregated.parquet exists


def list_sweeps(store: Store, statuses: bool = True) -> list[SweepInfo]:
    """Every folder of the store holding a readable manifest, newest first; with `statuses`
    each collected sweep's rows counted by status (one read of its aggregate)."""
    found = []
    for name in store.folders():
        paths = SweepPaths(name)
        try:
            manifest = manifest_json(store, name)
        except Exception:  # a torn manifest
            continue
        if manifest is None:  # not a sweep folder
            continue
        collected = store.exists(paths.aggregated)
        found.append(
            SweepInfo(
                sweep_id=name,
                grid=str(manifest.get("grid") or ""),
                created_at=str(manifest.get("created_at") or ""),
                executor=str((manifest.get("executor") or {}).get("name") or ""),
                cells=len(manifest.get("cells") or []),
                statuses=_statuses(store, paths) if collected and statuses else {},
                collected=collected,
            )
        )
    return sorted(found, key=lambda s: (s.created_at, s.sweep_id), reverse=True)


def _statuses(store: Store, paths: SweepPaths) -> dict[str, int]:
    import polars as pl

    try:
        frame = pl.read_parquet(io.BytesIO(store.read_bytes(paths.aggregated)), columns=["status"])
    except Exception:  # an unreadable aggregate: `collect` rewrites it
        return {}
    counts = frame["status"].value_counts(sort=True).iter_rows()
    return {str(status): int(count) for status, count in counts}


def sweeps_table(sweeps: list[SweepInfo], root: str) -> str:
    """`bench ls`: one line per sweep, newest first."""
    if not sweeps:
        return f"(no sweeps in {root})"
    header = ["sweep_id", "grid", "created (UTC)", "executor", "cells", "rows"]
    rows = [
        [
            s.sweep_id,
            s.grid,
            s.created_at[:19].replace("T", " "),
            s.executor,
            str(s.cells),
            ", ".join(f"{k} {v}" for k, v in s.statuses.items())
            if s.collected
            else "not collected",
        ]
        for s in sweeps
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *rows]
    )


def _sweep_overheads(store: Store, sweep_id: str, serial: bool) -> list[float]:
    """Per ok row of one sweep: its time in the job beyond the window, plus the sweep's
    median gap between jobs (serial executors)."""
    import polars as pl

    frame = pl.read_parquet(io.BytesIO(store.read_bytes(SweepPaths(sweep_id).aggregated)))
    frame = frame.filter(
        (pl.col("status") == Status.OK.value)
        & pl.col("started_at").is_not_null()
        & pl.col("finished_at").is_not_null()
        & pl.col("window_s").is_not_null()
    ).sort("started_at")
    if frame.is_empty():
        return []
    spans = (pl.col("finished_at") - pl.col("started_at")).dt.total_microseconds() / 1e6
    in_job = frame.select(spans - pl.col("window_s"))[:, 0].to_list()
    gap = 0.0
    if serial and frame.height > 1:
        starts = frame["started_at"].to_list()
        ends = frame["finished_at"].to_list()
        gaps = [
            (nxt - end).total_seconds()
            for end, nxt in zip(ends[:-1], starts[1:], strict=True)
            if 0 <= (nxt - end).total_seconds() <= GAP_LIMIT_S
        ]
        gap = statistics.median(gaps) if gaps else 0.0
    return [max(0.0, seconds) + gap for seconds in in_job]


def cell_overhead(
    store: Store, executor: str, serial: bool, fallback_s: float, fallback_given: bool = False
) -> CellOverhead:
    """The per-cell overhead measured from the store's recent sweeps by `executor`, else the
    executor's default (DEFAULT_OVERHEAD_S), else `fallback_s` (plan.cell_overhead_s; first
    when `fallback_given`: the user set it)."""
    default = DEFAULT_OVERHEAD_S.get(executor)
    if default is None or fallback_given:
        default, what, hint = fallback_s, "plan.cell_overhead_s", ""
    else:
        what = f"the {executor} default ({DEFAULT_OVERHEAD_WHAT[executor]})"
        hint = "; plan.cell_overhead_s=S sets another"
    overheads, used = [], []
    try:
        listed = list_sweeps(store, statuses=False)
        ran = [s for s in listed if s.executor == executor and s.collected]
        for sweep in ran[:MAX_SWEEPS]:
            found = _sweep_overheads(store, sweep.sweep_id, serial)
            if found:
                overheads += found
                used.append(sweep.sweep_id)
    except Exception as exc:  # an unreadable store costs the measured figure, not the plan
        return CellOverhead(default, f"{what}: store not read: {exc}{hint}")
    if not overheads:
        why = f"no ok rows of an earlier {executor} sweep in {store.root_uri}"
        return CellOverhead(default, f"{what}: {why}{hint}")
    return CellOverhead(
        statistics.median(overheads),
        f"measured: median of {len(overheads)} ok rows of {executor} sweeps {', '.join(used)}",
        len(overheads),
    )
