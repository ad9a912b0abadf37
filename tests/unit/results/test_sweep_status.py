"""A sweep's live status from its store: its submissions as the executor that made them
describes them, the cells whose lease is held (with the phase their attempt said), and the
rows so far against the manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.executors import lease
from bench.executors.base import Submission, journal_submission
from bench.measure import progress
from bench.results import sweep_status
from bench.store import LocalStore
from tests.unit.results.sweep_store import cell_row, write_sweep

SWEEP = "s"


class Describing:
    """An executor that says which options it was made with and what it was asked about."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    def describe(self, submissions: list[Submission]) -> list[dict[str, Any]]:
        return [{"job": s.job_id, "options": self.options} for s in submissions]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStore:
    monkeypatch.setattr(sweep_status, "executor_class", lambda options: Describing)
    rows = [cell_row(SWEEP, "a"), cell_row(SWEEP, "d", status="failed")]
    return write_sweep(tmp_path, SWEEP, rows, cells=["a", "b", "c", "d", "e"])


def _phase(store: LocalStore, cell_id: str, attempt: str, phase: str, since: float) -> None:
    record = {"phase": phase, "detail": "", "since": since, "attempt": attempt}
    store.write_bytes(progress.progress_path(SWEEP, cell_id), json.dumps(record).encode())


def test_rows_so_far_running_and_pending_add_up_to_the_manifest(store: LocalStore) -> None:
    lease.acquire(store, SWEEP, "b", "b-a1", 600)
    _phase(store, "b", "b-a1", "load", 0.0)
    lease.acquire(store, SWEEP, "c", "c-a2", 600)
    _phase(store, "c", "c-old", "warmup", 0.0)  # an earlier attempt's: says nothing of this one
    found = sweep_status.sweep_status(store, SWEEP, {"name": "local"})
    assert found.cells == 5 and found.rows == {"ok": 1, "failed": 1}
    by_cell = {m.cell_id: m for m in found.measuring}
    assert sorted(by_cell) == ["b", "c"] and found.pending == 1  # e: no row, no lease
    assert by_cell["b"].phase == "load" and by_cell["b"].phase_s > 1e9  # since the epoch
    assert by_cell["c"].phase is None and "attempt c-a2" in by_cell["c"].holder
    assert found.summary() == (
        "sweep s: 5 cells; rows: failed 1, ok 1; running 2; pending (no row yet) 1"
    )
    assert found.jobs == []  # nothing was submitted to a scheduler


def test_each_executors_submissions_are_described_with_the_configured_options(
    store: LocalStore,
) -> None:
    for name, executor in (("batch-1", "aws_batch"), ("batch-2", "aws_batch"), ("s-1", "slurm")):
        journal_submission(store, SWEEP, Submission(executor, f"id-{name}", name, "g5", [0]))
    configured = {"name": "aws_batch", "queue": "q"}
    jobs = sweep_status.sweep_status(store, SWEEP, configured).jobs
    by_executor = {job[0]["options"]["name"]: job for job in jobs}
    assert [j["job"] for j in by_executor["aws_batch"]] == ["id-batch-1", "id-batch-2"]
    assert by_executor["aws_batch"][0]["options"] == configured
    assert by_executor["slurm"][0]["options"] == {"name": "slurm"}  # not the configured one's


def test_a_sweep_with_nothing_yet_says_none(tmp_path: Path) -> None:
    store = write_sweep(tmp_path, SWEEP, [], cells=["a"])
    found = sweep_status.sweep_status(store, SWEEP, {})
    assert found.summary() == "sweep s: 1 cells; rows: none; running 0; pending (no row yet) 1"
