"""The job entry point: `python -m bench cell --manifest URI [--index N]`.

A job needs only the manifest's URI and its index. It takes the cell's lease (executors.lease),
stands down if another attempt holds it or (unless the sweep forces re-runs) the cell already
has an ok row, runs its cell in this process and writes its attempt's samples, then its row
(the row last: a row present means the attempt's files are complete), then gives the lease
back. Every attempt writes files of its own: no attempt's row is ever written over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bench.cell.runner import CellResult, run_cell
from bench.config.schema import CellConfig
from bench.engines.process_groups import terminate_as_exit
from bench.executors import lease
from bench.executors.environment import attempt_id
from bench.measure import progress
from bench.plan.feasibility import planner_warnings
from bench.plan.manifest import Plan, manifest_location, read_manifest
from bench.row.status import Status
from bench.store import Store, SweepPaths, row_file
from bench.store.paths import collected_files


def save_result(store: Store, result: CellResult) -> None:
    from bench.row.schema import rows_to_table

    row = result.row
    paths = SweepPaths(row["sweep_id"])
    cell_id, attempt = row["cell_id"], row["attempt_id"]
    if result.samples is not None:
        store.write_table(paths.samples(cell_id, attempt), result.samples)
    if result.telemetry is not None:
        store.write_table(paths.telemetry(cell_id, attempt), result.telemetry)
    # A one-row file is all metadata: snappy decodes faster than zstd, and the collector
    # reads thousands of these.
    store.write_table(
        paths.attempt_row(cell_id, attempt, row["status"]),
        rows_to_table([row]),
        compression="snappy",
    )


def _statuses(
    store: Store, row_files: list[str], read_before: set[str] = frozenset()
) -> dict[str, set[str]]:
    """The statuses of the attempts these row files hold, per cell: from the name, except
    that an ok name counts only when the file reads as an ok row (a truncated file named ok
    would otherwise stand for a row forever, and the cell never re-run) unless it is in
    `read_before`; files of the older one-row-per-cell layout, from the file. An unreadable
    file holds none (collect names it)."""
    found: dict[str, set[str]] = {}
    for path in row_files:
        parsed = row_file(path)
        status = parsed.status
        if status is None or (status == Status.OK and path not in read_before):
            status = _status_in(store, path)
            if status is None:
                continue
        found.setdefault(parsed.cell_id, set()).add(str(status))
    return found


def _status_in(store: Store, path: str) -> str | None:
    """The status a row file holds, or None when it cannot be read as a row."""
    try:
        column = store.read_table(path).column("status")
        return str(column[0].as_py()) if len(column) else None
    except Exception:  # torn, truncated or foreign: no row
        return None


def cell_statuses(store: Store, sweep_id: str) -> dict[str, set[str]]:
    """The statuses of every attempt of every cell, from one listing. An ok row file counts
    only once read: those an earlier collect read, unchanged since, are taken as read."""
    versions = store.list_versions(SweepPaths(sweep_id).cells_dir, ".parquet")
    return _statuses(store, sorted(versions), collected_files(store, sweep_id, versions))


def has_ok_row(store: Store, sweep_id: str, cell_id: str) -> bool:
    """Whether one cell has an ok attempt (its own folder and the older layout's file)."""
    paths = SweepPaths(sweep_id)
    files = store.list(paths.cell_attempts_dir(cell_id), ".parquet")
    if store.exists(legacy := paths.legacy_cell(cell_id)):
        files.append(legacy)
    return Status.OK in _statuses(store, files).get(cell_id, set())


def clear_stale_progress(store: Store, sweep_id: str) -> list[str]:
    """Remove the progress records whose attempt no longer holds its cell's lease: their
    process was killed before it could remove them (a cell removes its record before it gives
    its lease back, so a live attempt's record always has its lease). The cells cleared."""
    cleared = []
    for rel in store.list(SweepPaths(sweep_id).progress_dir, ".json"):
        cell_id = rel.rsplit("/", 1)[1].removesuffix(".json")
        said = progress.read_phase(store, sweep_id, cell_id)
        attempt = said.get("attempt") if isinstance(said, dict) else None
        if not isinstance(attempt, str):  # not a record bench wrote: not ours to remove
            continue
        holder = lease.holder_of(store, sweep_id, cell_id)
        if (holder is None or holder.attempt != attempt) and progress.forget(
            store, sweep_id, cell_id, attempt
        ):
            cleared.append(cell_id)
    return cleared


def array_map_path(sweep_id: str, name: str) -> str:
    return SweepPaths(sweep_id).array_map(name)


def write_array_map(store: Store, sweep_id: str, name: str, indices: list[int]) -> None:
    """Store the manifest indices an array job covers; child i runs cell indices[i].

    A scheduler numbers array children 0..n-1, but the cells one array covers (one instance
    type's pending cells, say) are any subset of the manifest.
    """
    store.write_bytes(array_map_path(sweep_id, name), json.dumps({"indices": indices}).encode())


def resolve_index(store: Store, sweep_id: str, child: int, array: str | None) -> int:
    """The manifest index of array child `child` (itself when there is no array map)."""
    if array is None:
        return child
    indices = json.loads(store.read_bytes(array_map_path(sweep_id, array)))["indices"]
    if not 0 <= child < len(indices):
        raise IndexError(f"array index {child} is outside array {array!r} (0..{len(indices) - 1})")
    return int(indices[child])


@dataclass
class JobOutcome:
    """What a job did: the result it stored, or why it stood down (and stored nothing)."""

    cell_id: str
    attempt: str
    result: CellResult | None
    stood_down: str = ""  # "busy: ..." (another attempt holds the lease) or "ok: ..."


def job_cell(
    manifest_uri: str, index: int, array: str | None = None
) -> tuple[Store, Plan, CellConfig]:
    """The store, the manifest's plan holding only the cell a job runs (cell `index`, or
    child `index` of array map `array`: the one cell read and validated), and that cell."""
    store, sweep_id = manifest_location(manifest_uri)
    index = resolve_index(store, sweep_id, index, array)
    plan = read_manifest(store, sweep_id, only=index)
    return store, plan, plan.cells[0]


def run_job(store: Store, plan: Plan, cell: CellConfig, lease_s: float) -> JobOutcome:
    """Run `cell` of the plan (as job_cell found it) under the cell's lease (held for
    `lease_s` seconds: lease.lease_seconds) and store its row, unless another attempt holds
    the lease or (without force) the cell has an ok row already. SIGTERM (the executor's,
    or a scheduler's at its time limit) ends it through its `finally` blocks: the engine
    stops any server it started, the progress record goes, the lease is given back."""
    with terminate_as_exit():
        return _run_job(store, plan, cell, lease_s)


def _run_job(store: Store, plan: Plan, cell: CellConfig, lease_s: float) -> JobOutcome:
    sweep_id = plan.sweep_id
    attempt = attempt_id()
    try:
        lease.acquire(store, sweep_id, cell.cell_id, attempt, lease_s)
    except lease.CellBusy as busy:
        return JobOutcome(cell.cell_id, attempt, None, f"busy: {busy}")
    try:
        if not plan.force and has_ok_row(store, sweep_id, cell.cell_id):
            return JobOutcome(cell.cell_id, attempt, None, "ok: the cell has an ok row already")
        said = progress.CellProgress(store, sweep_id, cell.cell_id, attempt)
        progress.begin(said)
        try:
            result = run_cell(cell, planner_warnings, attempt)  # the lease's id names the files
            progress.enter("write", str(result.row["status"]))
            save_result(store, result)
        finally:
            progress.begin(None)
            said.finish()
        return JobOutcome(cell.cell_id, attempt, result)
    finally:
        lease.release(store, sweep_id, cell.cell_id, attempt)
