"""bench.plan.history: the sweeps in a store, newest first (`bench ls`), and the per-cell
overhead `plan` prices a sweep with, measured from earlier sweeps of the same executor or else
that executor's default."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bench.plan.history import (
    DEFAULT_OVERHEAD_S,
    GAP_LIMIT_S,
    MAX_SWEEPS,
    cell_overhead,
    list_sweeps,
    sweeps_table,
)
from bench.store import LocalStore, StoreError, open_store

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _manifest(root: Path, sweep_id: str, executor: str, created: datetime, cells: int) -> Path:
    folder = root / sweep_id
    folder.mkdir(parents=True)
    manifest = {
        "sweep_id": sweep_id,
        "grid": "g",
        "created_at": created.isoformat(),
        "executor": {"name": executor},
        "cells": [{"cell_id": f"c{i}"} for i in range(cells)],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _sweep(
    root: Path,
    sweep_id: str,
    executor: str,
    in_job_s: float,
    rows: int = 3,
    gap_s: float = 590.0,
    created: datetime = START,
    statuses: list[str] | None = None,
) -> None:
    """A collected sweep in a local store: a manifest and rows (ok unless `statuses` says)
    that spent `in_job_s` beyond their 10 s window, each starting `gap_s` after the one
    before it finished."""
    import polars as pl

    folder = _manifest(root, sweep_id, executor, created, rows)
    starts = [created + timedelta(seconds=(10 + in_job_s + gap_s) * i) for i in range(rows)]
    pl.DataFrame(
        {
            "status": statuses or ["ok"] * rows,
            "started_at": starts,
            "finished_at": [s + timedelta(seconds=10 + in_job_s) for s in starts],
            "window_s": [10.0] * rows,
        }
    ).write_parquet(folder / "aggregated.parquet")


def test_batch_overhead_comes_from_batch_rows_not_a_local_sweep(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    _sweep(tmp_path, "local-cpu-sweep", "local", in_job_s=2.0)
    found = cell_overhead(store, "aws_batch", serial=False, fallback_s=120.0)
    assert found.seconds == DEFAULT_OVERHEAD_S["aws_batch"] == 300.0
    assert found.source.startswith("the aws_batch default (image pull, container start")
    assert "plan.cell_overhead_s=S sets another" in found.source
    _sweep(tmp_path, "on-batch", "aws_batch", in_job_s=95.0)
    found = cell_overhead(store, "aws_batch", serial=False, fallback_s=120.0)
    assert found.seconds == pytest.approx(95.0) and found.rows == 3
    assert found.source.startswith("measured: median of 3 ok rows of aws_batch sweeps on-batch")


def test_a_serial_executor_adds_the_median_gap_between_jobs_and_skips_resumes(tmp_path):
    store = open_store(str(tmp_path))
    _sweep(tmp_path, "local-1", "local", in_job_s=2.0, rows=4, gap_s=1.5)
    found = cell_overhead(store, "local", serial=True, fallback_s=120.0)
    assert found.seconds == pytest.approx(2.0 + 1.5) and found.rows == 4
    # a pause longer than GAP_LIMIT_S between two cells is a resume, not start-up
    _sweep(tmp_path, "local-2", "local", in_job_s=2.0, rows=2, gap_s=GAP_LIMIT_S + 1)
    again = cell_overhead(store, "local", serial=True, fallback_s=120.0)
    assert again.rows == 6 and again.seconds == pytest.approx(3.5)  # 4 x 3.5 s, 2 x 2.0 s


def test_only_ok_rows_of_the_most_recent_sweeps_count(tmp_path):
    store = open_store(str(tmp_path))
    for n in range(MAX_SWEEPS + 1):
        # the oldest sweep's rows are far slower: it must not count
        slow = 1000.0 if n == 0 else 10.0
        _sweep(tmp_path, f"s{n}", "slurm", slow, rows=1, created=START + timedelta(days=n))
    _sweep(
        tmp_path, "failed", "slurm", 500.0, created=START + timedelta(days=99),
        statuses=["failed", "timeout", "failed"],
    )  # fmt: skip
    found = cell_overhead(store, "slurm", serial=False, fallback_s=120.0)
    assert found.rows == MAX_SWEEPS - 1 and found.seconds == pytest.approx(10.0)
    assert "s0" not in found.source.split("sweeps ", 1)[1].split(", ")


def test_without_rows_a_given_or_configured_overhead_says_where_it_came_from(tmp_path):
    store = open_store(str(tmp_path))
    local = cell_overhead(store, "local", serial=True, fallback_s=120.0)
    assert local.seconds == 120.0 and local.rows == 0
    assert (
        local.source == f"plan.cell_overhead_s: no ok rows of an earlier local sweep in {tmp_path}"
    )
    given = cell_overhead(store, "aws_batch", serial=False, fallback_s=60.0, fallback_given=True)
    assert given.seconds == 60.0 and given.source.startswith("plan.cell_overhead_s: ")


class UnlistableStore(LocalStore):
    """A store whose listing fails (an S3 outage past its retries)."""

    def folders(self) -> list[str]:
        raise StoreError("list s3://b: the S3 endpoint is unreachable")


def test_an_unreadable_store_costs_the_measured_figure_not_the_plan(tmp_path):
    found = cell_overhead(UnlistableStore(str(tmp_path)), "aws_batch", False, 120.0)
    assert found.seconds == 300.0
    assert "store not read: list s3://b: the S3 endpoint is unreachable" in found.source


def test_ls_lists_the_sweeps_newest_first_with_their_rows(tmp_path: Path) -> None:
    _sweep(tmp_path, "s1", "local", 1.0, rows=3, statuses=["ok", "failed", "ok"])
    (tmp_path / "not-a-sweep").mkdir()
    (tmp_path / "not-a-sweep" / "notes.txt").write_text("x")
    _manifest(tmp_path, "newer", "slurm", datetime(2999, 1, 1, tzinfo=timezone.utc), 1)
    store = open_store(str(tmp_path))
    found = list_sweeps(store)
    assert [s.sweep_id for s in found] == ["newer", "s1"]
    assert found[1].statuses == {"ok": 2, "failed": 1} and not found[0].collected
    assert (found[0].executor, found[0].cells, found[0].grid) == ("slurm", 1, "g")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "ls", f"store.root={store.root_uri}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["sweep_id", "grid", "created", "(UTC)", "executor", "cells", "rows"]
    assert lines[1].startswith("newer") and "not collected" in lines[1]
    assert "s1" in lines[2] and "ok 2, failed 1" in lines[2]  # the most common first


def test_a_torn_manifest_or_aggregate_is_passed_over(tmp_path):
    _sweep(tmp_path, "good", "local", 1.0)
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "manifest.json").write_text('{"cells": [')
    folder = _manifest(tmp_path, "bad-aggregate", "local", START, 1)
    (folder / "aggregated.parquet").write_bytes(b"PAR1 cut short")
    found = {s.sweep_id: s for s in list_sweeps(open_store(str(tmp_path)))}
    assert set(found) == {"good", "bad-aggregate"}
    assert found["bad-aggregate"].collected and found["bad-aggregate"].statuses == {}
    assert not list_sweeps(open_store(str(tmp_path)), statuses=False)[0].statuses


def test_the_table_has_a_line_per_sweep_in_aligned_columns(tmp_path):
    assert sweeps_table([], "/r") == "(no sweeps in /r)"
    _sweep(tmp_path, "a-long-sweep-name", "local", 1.0, rows=1)
    _sweep(tmp_path, "b", "slurm", 1.0, rows=1, created=START + timedelta(days=1))
    lines = sweeps_table(list_sweeps(open_store(str(tmp_path))), str(tmp_path)).splitlines()
    assert [line.split()[0] for line in lines] == ["sweep_id", "b", "a-long-sweep-name"]
    assert {line.index("g ") for line in lines[1:]} == {lines[0].index("grid")}
    assert "2026-01-02 00:00:00" in lines[1] and lines[1].endswith("ok 1")
