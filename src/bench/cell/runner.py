"""run_cell(cell) -> one result row (and the raw samples). Never raises past itself.

Order inside a cell: the thread policy (before torch is imported: see bench.measure.threads), the
engine's imports and device context (timed: import_s), prepare (checkpoint onto local disk;
not timed as load), load (timed: load_s), initialize (timed: init_s), make one synthetic
batch (not timed), warmup + measured window, summarise; then, when the cell's quality is
checked, the engine's outputs, and (the engine closed) their comparison with eager fp32.
Host memory is read after the imports and after loading, and its peak (and each GPU's) is
reset after loading, so the peaks are the measurement's own. Any exception becomes a
`failed` row with its class and message.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from bench.config.schema import CellConfig
from bench.engines import ENGINES, device_memory
from bench.engines.base import Engine, Unsupported, device_kind
from bench.measure import (
    heap,
    lockstep,
    progress,
    quality_check,
    telemetry,
    threads,
)
from bench.measure.client_health import client_health
from bench.measure.loadgen import LoadResult
from bench.measure.metrics import summarize
from bench.measure.scenarios import SCENARIOS, Measured, request_for
from bench.measure.support import why_unsupported
from bench.measure.workloads import workload_of
from bench.row.build import (
    MAX_ERROR_CHARS,
    cell_row,
    failed,
    new_attempt_id,
    now_utc,
    unsupported_row,
)
from bench.row.schema import SAMPLES_SCHEMA
from bench.row.status import Status
from bench.store import arrow


@dataclass
class CellResult:
    row: dict[str, Any]
    samples: pa.Table | None  # None when nothing was measured
    telemetry: pa.Table | None = None  # host and GPU samples of the measured window(s)


# Set in a cell forked from the local fork server: the modules it imported before forking.
FORK_SERVER_PRELOAD_VARIABLE = "BENCH_FORK_SERVER_PRELOAD"


# the per-request counts a sample row carries (null where not known)
COUNTED = ("input_tokens", "server_input_tokens", "output_tokens_asked", "output_tokens", "turn")


def _known(values: np.ndarray | None, size: int) -> pa.Array:
    """Counts as an int32 column, null where negative (not known)."""
    if values is None:
        return pa.nulls(size, pa.int32())
    return arrow.array(values.astype(np.int32), pa.int32(), mask=values < 0)


def samples_table(stages: list[LoadResult]) -> pa.Table:
    """Every measured request of every stage, warmup excluded."""
    columns: list[list[pa.Array]] = [[] for _ in SAMPLES_SCHEMA]
    for index, r in enumerate(stages):
        ttft = arrow.array(r.ttft_ns, pa.int64(), mask=r.ttft_ns < 0)
        parts = [
            r.thread,
            r.sent_ns,
            r.done_ns - r.scheduled_ns,
            np.full(r.ok.size, index, dtype=np.int16),
            r.scheduled_ns,
            ttft,
            r.ok,
            *(_known(getattr(r, name), r.ok.size) for name in COUNTED),
        ]
        for column, part, field in zip(columns, parts, SAMPLES_SCHEMA, strict=True):
            column.append(part if isinstance(part, pa.Array) else arrow.array(part, field.type))
    return pa.Table.from_arrays(
        [pa.chunked_array(c, type=f.type) for c, f in zip(columns, SAMPLES_SCHEMA, strict=True)],
        schema=SAMPLES_SCHEMA,
    )


def _load(
    engine: Engine,
    row: dict[str, Any] | None,
    policy: threads.ThreadPolicy,
    before_load: Callable[[], None] | None = None,
) -> None:
    """imports (timed), prepare, load (timed), initialize (timed); the first copy's figures
    go into `row`."""
    first = row is not None  # further copies (a scenario's load_copy) go unsaid
    if first:
        progress.enter("import", engine.name)
    started = time.perf_counter()
    engine.import_libraries()
    import_s = time.perf_counter() - started
    threads.apply_torch_threads(policy)  # torch is loaded now, if the engine uses it
    rss_after_import = device_memory.rss_mb()
    if first:
        progress.enter("prepare")
    prepared = engine.prepare()
    if before_load is not None:
        before_load()
    if first:
        progress.enter("load")
    started = time.perf_counter()
    loaded = engine.load()
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    info = {**loaded.extra, **engine.initialize()}
    if (preloaded := os.environ.get(FORK_SERVER_PRELOAD_VARIABLE)) is not None:
        info["fork_server_preload"] = preloaded  # import_s left out what the server imported
    init_s = time.perf_counter() - started
    if row is not None:
        rss_after_load = device_memory.rss_mb()
        row.update(
            import_s=import_s,
            rss_after_import_mb=rss_after_import,
            rss_after_load_mb=rss_after_load,
            model_rss_mb=(
                rss_after_load - rss_after_import
                if rss_after_load is not None and rss_after_import is not None
                else None
            ),
            checkpoint=prepared.checkpoint,
            checkpoint_build_s=prepared.build_s,
            download_s=prepared.download_s,
            load_s=load_s,
            device=loaded.device,
            params=loaded.params,
            init_s=init_s,
            engine_info=json.dumps(info, sort_keys=True, default=str),
        )


def _start_measuring() -> bool:
    """Loading is over: restart the memory peaks so they describe serving alone. False when
    the kernel would not reset the host's peak."""
    device_memory.reset_cuda_peaks()
    return device_memory.reset_peak_rss()


def _memory_columns(host_peak_reset: bool) -> dict[str, Any]:
    """Peaks since _start_measuring: host RSS, and per GPU allocated / reserved / driver."""
    devices = device_memory.cuda_memory()
    columns: dict[str, Any] = {
        "peak_rss_mb": device_memory.peak_rss_mb(),
        "peak_rss_scope": "measurement" if host_peak_reset else "process",
    }
    if devices:
        columns.update(
            peak_gpu_mem_mb=max(d["allocated_peak_mb"] for d in devices),
            peak_gpu_reserved_mb=max(d["reserved_peak_mb"] for d in devices),
            gpu_used_mb=sum(d["driver_used_mb"] for d in devices),
            gpu_memory_json=json.dumps(devices),
        )
    return columns


def _sync_scope(engine: Engine) -> str:
    device = str(getattr(engine, "device", None) or "cpu")
    return engine.cuda_sync_scope if device.startswith("cuda") else "host"


def _cuda_indices(engine: Engine, cell: CellConfig) -> list[int]:
    """The CUDA devices this cell's process uses (none on CPU)."""
    device = str(getattr(engine, "device", None) or "cpu")
    if not device.startswith("cuda"):
        return []
    if cell.tp_degree > 1:  # a model split over GPUs (rank 0's process sees them all)
        return list(range(cell.tp_degree))
    index = device.partition(":")[2]
    if index:
        return [int(index)]
    import torch

    return [torch.cuda.current_device()]


def _windows(measured: Measured) -> list[tuple[int, int]]:
    """[opened_ns, closed_ns] of each measured window (perf_counter_ns)."""
    stages = measured.stages or [measured.headline]
    return [(s.opened_ns, s.opened_ns + int(s.window_s * 1e9)) for s in stages]


def _window_telemetry(
    sampler: telemetry.Sampler, windows: list[tuple[int, int]], row: dict[str, Any]
) -> list[telemetry.Sample]:
    """The samples inside the measured windows, summarised into the row."""
    kept = telemetry.in_windows(sampler.samples, windows)
    row.update(telemetry.summary(kept, sampler.gpu.unavailable, sampler.server))
    return kept


def _measure(cell: CellConfig, row: dict[str, Any]) -> tuple[Measured, list[telemetry.Sample]]:
    engine_class = ENGINES[cell.engine.name]
    engine = lockstep.lead(engine_class(cell))  # rank 0 of an MPI group: the others follow
    copies: list[Engine] = []
    got: dict[str, Any] | str | None = None  # the engine's outputs for the quality check
    # the MPI ranks of a CPU cell (DeepSpeed TP on CPU) share this host's CPUs: each gets its
    # part (every rank at the whole count ran generation at 2.6 s a token on 2 cores)
    ranks = engine_class.mpi_ranks(cell) if device_kind(cell) == "cpu" else 1
    policy = threads.plan_policy(cell.threads * ranks, cell.torch_threads)  # before torch
    row.update(
        omp_wait_policy=policy.omp_wait_policy,
        cpu_affinity_list=policy.cpu_affinity_list,
        cpus_busy_at_start=policy.cpus_busy_at_start,
    )
    scenario = SCENARIOS[cell.scenario.name](cell)

    def load_copy() -> Engine:  # another copy of the model (a scenario that fills memory)
        copies.append(engine_class(cell))
        _load(copies[-1], None, policy)
        return copies[-1]

    try:
        _load(engine, row, policy, lambda: scenario.before_load(engine))
        host_peak_reset = _start_measuring()
        progress.enter("warmup")
        sampler = telemetry.Sampler(
            _cuda_indices(engine, cell), server_url=engine.metrics_url()
        ).start()
        collections = heap.CollectionLog().start()
        traffic = request_for(engine, cell)
        try:
            measured = scenario.run(engine, traffic, load_copy)
        finally:
            sampler.stop()
            collections.stop()
        row.update(traffic.source.facts())
        if "torch" in sys.modules:
            row["torch_threads"] = policy.intra_op_threads  # describe() reads torch's own
        described = engine.describe()
        if isinstance(more := described.pop("engine_info", None), dict):
            info = {**json.loads(row.get("engine_info") or "{}"), **more}
            described["engine_info"] = json.dumps(info, sort_keys=True, default=str)
        row.update(described, sync_scope=_sync_scope(engine))
        row.update(measured.columns)
        row.update(_memory_columns(host_peak_reset))
        windows = _windows(measured)
        row.update(collections.summary(windows))
        kept = _window_telemetry(sampler, windows, row)
        if quality_check.asked(cell, engine_class):  # after every reading of the window
            progress.enter("quality")
            got = quality_check.candidate_outputs(engine, cell)
    finally:
        for copy in copies:
            copy.close()
        engine.close()
    if got is not None:  # the reference is computed with the engine's memory given back
        row.update(quality_check.check(cell, got, row.get("params")))
    return measured, kept


class NoCompletedRequests(RuntimeError):
    """Every request of the measured window failed (or none was sent)."""


def run_cell(
    cell: CellConfig,
    warnings_for: Callable[[CellConfig], str | None] | None = None,
    attempt_id: str | None = None,
) -> CellResult:
    """Run one cell in this process; always returns a row. `warnings_for` gives the row's
    planner warnings (bench.plan.feasibility.planner_warnings: the caller's, since measuring code
    imports no planning code), asked after measuring: it may import transformers. The row
    names `attempt_id` (a job's: its files are named by it), else a fresh one."""
    attempt_id = attempt_id or new_attempt_id()
    if reason := why_unsupported(cell, this_host=True):
        return CellResult(row=unsupported_row(cell, attempt_id, reason), samples=None)
    row = cell_row(cell, attempt_id)
    row["started_at"] = now_utc()
    samples = trace = None
    try:
        measured, window_samples = _measure(cell, row)
        headline = measured.headline
        if headline.n == 0:  # nothing to report figures from: not an ok row
            why = f": {text}" if (text := headline.failure_text()) else ""
            raise NoCompletedRequests(
                f"no request completed ({headline.errors} failed, {headline.dropped} dropped)" + why
            )
        row.update(summarize(headline, cell), status=Status.OK.value)
        row.update(workload_of(cell.workload).summarize(headline))
        row.update(client_health(row, ENGINES[cell.engine.name].remote))
        samples = samples_table(measured.stages)
        trace = telemetry.table(window_samples)
    except Unsupported as exc:  # only the host could tell (a library missing, say)
        failed(row, Status.UNSUPPORTED, "Unsupported", str(exc))
    except Exception as exc:  # a failing cell is a row, never a crashed sweep
        traceback.print_exc(file=sys.stderr)  # the row keeps the message, the log where from
        failed(row, Status.FAILED, type(exc).__name__, str(exc)[:MAX_ERROR_CHARS] or repr(exc))
    row.setdefault("peak_rss_mb", device_memory.peak_rss_mb())  # a failed cell: the process's
    row["warnings"] = warnings_for(cell) if warnings_for else None
    row["finished_at"] = now_utc()
    return CellResult(row=row, samples=samples, telemetry=trace)
