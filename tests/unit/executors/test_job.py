"""bench.executors.job: a job finds its one cell from the manifest's URI and its index (or its
array map), runs it under the cell's lease and stores samples then the row; it stands down
when another attempt holds the lease or the cell has an ok row. Which attempts a cell has is
read from file names, except that an ok name counts only once its file reads as a row."""

from __future__ import annotations

import pytest

from bench.cell.runner import CellResult
from bench.executors import lease
from bench.executors.job import (
    cell_statuses,
    clear_stale_progress,
    has_ok_row,
    job_cell,
    resolve_index,
    run_job,
    save_result,
    write_array_map,
)
from bench.measure import progress
from bench.plan.grid import plan_from_overrides
from bench.plan.manifest import Plan, write_manifest
from bench.row.build import failure_row
from bench.row.schema import rows_to_table
from bench.row.status import Status
from bench.store import LocalStore, SweepPaths
from bench.store.paths import FILE_COLUMN, VERSION_COLUMN

SWEEP = "jobs"
PATHS = SweepPaths(SWEEP)
FAST = [
    "engine=sleep",
    "engine.service_ms=1",
    "scenario.warmup_requests=1",
    "scenario.warmup_s=0",
    "scenario.min_requests=5",
    "scenario.min_duration_s=0.01",
    "scenario.ci_target=0",
]


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(str(tmp_path))


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_from_overrides([*FAST, f"sweep_id={SWEEP}", "grid.axes.threads=[1,2,3]"])


def _row_file(store: LocalStore, cell_id: str, attempt: str, status: str, torn: bool = False):
    path = PATHS.attempt_row(cell_id, attempt, status)
    if torn:
        store.write_bytes(path, b"PAR1 cut short")
    else:
        store.write_table(path, rows_to_table([{"cell_id": cell_id, "status": status}]))
    return path


def test_statuses_come_from_names_and_an_ok_name_only_once_it_reads_as_a_row(store):
    _row_file(store, "a", "1", "failed", torn=True)  # a name that is not ok: taken as said
    _row_file(store, "a", "2", "ok", torn=True)  # torn: it holds no row, the cell reruns
    _row_file(store, "b", "1", "ok")
    store.write_table(PATHS.legacy_cell("c"), rows_to_table([{"cell_id": "c", "status": "ok"}]))
    assert cell_statuses(store, SWEEP) == {"a": {"failed"}, "b": {"ok"}, "c": {"ok"}}
    assert not has_ok_row(store, SWEEP, "a")
    assert has_ok_row(store, SWEEP, "b") and has_ok_row(store, SWEEP, "c")
    assert not has_ok_row(store, SWEEP, "nothing")


def test_an_ok_file_an_earlier_collect_read_unchanged_is_not_read_again(store, monkeypatch):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = _row_file(store, "a", "1", "ok", torn=True)  # it would not read as a row now
    version = store.list_versions(PATHS.cells_dir, ".parquet")[path]
    cache = io.BytesIO()
    pq.write_table(pa.table({FILE_COLUMN: [path], VERSION_COLUMN: [version]}), cache)
    store.write_bytes(PATHS.collected_rows, cache.getvalue())
    assert cell_statuses(store, SWEEP) == {"a": {"ok"}}  # taken as read


def test_save_result_writes_samples_and_telemetry_then_the_row(store, plan):
    import pyarrow as pa

    row = failure_row(plan.cells[0], "att1", Status.FAILED, "X", "boom")
    samples = pa.table({"latency_ns": [1, 2]})
    save_result(store, CellResult(row=row, samples=samples, telemetry=pa.table({"t": [0]})))
    cell_id = plan.cells[0].cell_id
    assert store.read_table(PATHS.samples(cell_id, "att1")).equals(samples)
    assert store.exists(PATHS.telemetry(cell_id, "att1"))
    stored = store.read_table(PATHS.attempt_row(cell_id, "att1", "failed")).to_pylist()
    assert stored[0]["error"] == "boom" and stored[0]["cell_id"] == cell_id


def test_an_array_child_runs_the_cell_its_map_names(store):
    write_array_map(store, SWEEP, "arr-1", [4, 9, 2])
    assert [resolve_index(store, SWEEP, child, "arr-1") for child in range(3)] == [4, 9, 2]
    assert resolve_index(store, SWEEP, 7, None) == 7  # no array: the index is the cell's
    with pytest.raises(IndexError, match=r"array index 3 is outside array 'arr-1' \(0\.\.2\)"):
        resolve_index(store, SWEEP, 3, "arr-1")


def test_a_job_reads_only_its_own_cell_from_the_manifest(store, plan):
    uri = write_manifest(store, plan)
    write_array_map(store, SWEEP, "arr", [2, 0])
    found_store, found_plan, cell = job_cell(uri, 0, "arr")
    assert isinstance(found_store, LocalStore) and found_store.root == store.root
    assert cell.cell_id == plan.cells[2].cell_id and len(found_plan.cells) == 1
    assert job_cell(uri, 1)[2].cell_id == plan.cells[1].cell_id


def test_a_job_runs_its_cell_then_stands_down_once_the_cell_has_an_ok_row(store, plan, monkeypatch):
    monkeypatch.setenv("BENCH_ATTEMPT_ID", "job-1")
    cell = plan.cells[0]
    done = run_job(store, plan, cell, lease_s=60)
    assert done.attempt == "job-1" and done.stood_down == ""
    assert done.result is not None and done.result.row["status"] == "ok"
    assert store.exists(PATHS.attempt_row(cell.cell_id, "job-1", "ok"))
    assert store.exists(PATHS.samples(cell.cell_id, "job-1"))
    # it gave its lease back and left no progress record
    assert lease.holder_of(store, SWEEP, cell.cell_id) is None
    assert progress.read_phase(store, SWEEP, cell.cell_id) is None
    monkeypatch.setenv("BENCH_ATTEMPT_ID", "job-2")
    again = run_job(store, plan, cell, lease_s=60)
    assert again.result is None and again.stood_down == "ok: the cell has an ok row already"
    assert lease.holder_of(store, SWEEP, cell.cell_id) is None


def test_a_job_stands_down_while_another_attempt_holds_the_cells_lease(store, plan, monkeypatch):
    cell = plan.cells[1]
    lease.acquire(store, SWEEP, cell.cell_id, "orphan", 60)
    monkeypatch.setenv("BENCH_ATTEMPT_ID", "job-3")
    busy = run_job(store, plan, cell, lease_s=60)
    assert busy.result is None and busy.stood_down.startswith("busy: ")
    assert "orphan" in busy.stood_down
    assert lease.holder_of(store, SWEEP, cell.cell_id).attempt == "orphan"  # not its to free
    assert store.list(PATHS.cell_attempts_dir(cell.cell_id), ".parquet") == []


def test_stale_progress_records_are_cleared_and_live_or_foreign_ones_kept(store):
    for cell_id, attempt in (("dead", "a1"), ("live", "a2")):
        progress.CellProgress(store, SWEEP, cell_id, attempt, terminal=None).enter("measure")
    lease.acquire(store, SWEEP, "live", "a2", 60)
    store.write_bytes(progress.progress_path(SWEEP, "foreign"), b'{"phase": "load"}')
    assert clear_stale_progress(store, SWEEP) == ["dead"]
    assert progress.read_phase(store, SWEEP, "dead") is None
    assert progress.read_phase(store, SWEEP, "live")["attempt"] == "a2"
    assert progress.read_phase(store, SWEEP, "foreign") == {"phase": "load"}
