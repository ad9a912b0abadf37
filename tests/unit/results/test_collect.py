"""The collector: cell files -> one row per cell, with missing, failed and unreadable named."""

from __future__ import annotations

import json
import math
import os
import re
from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pytest

from bench.results.collect import UnreadableCellFile, collect, summary_text
from bench.row.schema import ROW_SCHEMA, rows_to_table
from bench.store import LocalStore, SweepPaths

SWEEP = "s1"
PATHS = SweepPaths(SWEEP)
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


def _row(cell_id: str, index: int, status: str = "ok", minutes: int = 0, **extra) -> dict:
    row = {
        "schema_version": 1,
        "sweep_id": SWEEP,
        "cell_id": cell_id,
        "attempt_id": f"{cell_id}-{status}-{minutes}",
        "cell_index": index,
        "model": "bert_tiny",
        "engine": "sleep",
        "precision": "fp32",
        "batch_size": 1,
        "threads": 1,
        "instance": "local-cpu",
        "status": status,
        "started_at": T0 + timedelta(minutes=minutes),
        "finished_at": T0 + timedelta(minutes=minutes, seconds=30),
    }
    if status == "ok":
        row.update(n=100, latency_ms_p50=5.0, latency_ms_p99=6.0, inferences_per_s=200.0)
        row.update(usd_per_million_inferences=0.27, usd_per_million_tokens=0.002)
    else:
        row.update(error_class="BoomError", error=f"{cell_id} broke")
    row.update(extra)
    return row


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(str(tmp_path / "results"))


def _manifest(store: LocalStore, cell_ids: list[str]) -> None:
    manifest = {"sweep_id": SWEEP, "cells": [{"cell_id": c} for c in cell_ids]}
    store.write_bytes(PATHS.manifest, json.dumps(manifest).encode())


def _write(store: LocalStore, name: str, rows: list[dict]) -> None:
    store.write_table(PATHS.legacy_cell(name), rows_to_table(rows))


def _ids(table: pa.Table) -> list[str]:
    return table.column("cell_id").to_pylist()


def test_missing_and_failed_cells_are_named(store):
    _manifest(store, ["a", "b", "c"])
    _write(store, "a", [_row("a", 0)])
    _write(store, "b", [_row("b", 1, status="failed")])
    got = collect(store, SWEEP)
    assert got.expected == ["a", "b", "c"]
    assert got.missing == ["c"]
    assert got.failed == ["b"]
    assert got.unreadable == []
    assert _ids(got.table) == ["a", "b"]
    assert got.table.schema == ROW_SCHEMA
    text = summary_text(got)
    assert "failed: b: b broke" in text
    assert "missing: c" in text


def test_timeout_counts_as_failed_but_unsupported_does_not(store):
    _manifest(store, ["a", "b"])
    _write(store, "a", [_row("a", 0, status="timeout")])
    _write(store, "b", [_row("b", 1, status="unsupported")])
    got = collect(store, SWEEP)
    assert got.failed == ["a"]
    assert got.missing == []


def test_a_corrupt_file_is_reported_and_skipped(store):
    _manifest(store, ["a", "b", "c"])
    _write(store, "a", [_row("a", 0)])
    _write(store, "b", [_row("b", 1)])
    store.write_bytes(PATHS.legacy_cell("x"), b"this is not parquet at all")
    got = collect(store, SWEEP)
    assert [path for path, _ in got.unreadable] == [PATHS.legacy_cell("x")]
    assert got.unreadable[0][1]  # the error is described
    assert _ids(got.table) == ["a", "b"]
    assert got.missing == ["c"]
    assert store.exists(PATHS.aggregated)
    assert f"unreadable, skipped: {PATHS.legacy_cell('x')}" in summary_text(got)


def test_strict_makes_a_corrupt_file_fatal(store):
    _manifest(store, ["a"])
    _write(store, "a", [_row("a", 0)])
    store.write_bytes(PATHS.legacy_cell("x"), b"\x00garbage")
    with pytest.raises(UnreadableCellFile) as info:
        collect(store, SWEEP, strict=True)
    assert "x.parquet" in str(info.value)
    assert not store.exists(PATHS.aggregated)


def test_strict_without_bad_files_succeeds(store):
    _manifest(store, ["a"])
    _write(store, "a", [_row("a", 0)])
    assert _ids(collect(store, SWEEP, strict=True).table) == ["a"]


def test_duplicate_attempts_collapse_to_the_ok_one(store):
    _manifest(store, ["a"])
    _write(store, "a", [_row("a", 0, status="ok", minutes=0)])
    # a later retry that failed must not hide the earlier ok row
    _write(store, "a-retry", [_row("a", 0, status="failed", minutes=5)])
    got = collect(store, SWEEP)
    assert got.table.num_rows == 1
    assert got.table.column("status")[0].as_py() == "ok"
    assert got.table.column("attempt_id")[0].as_py() == "a-ok-0"
    assert got.failed == []


def test_duplicate_attempts_without_ok_keep_the_latest(store):
    _manifest(store, ["b"])
    rows = [
        _row("b", 0, status="failed", minutes=10),
        _row("b", 0, status="timeout", minutes=3),
        _row("b", 0, status="failed", minutes=7),
    ]
    _write(store, "b", rows)  # several attempts in one file
    got = collect(store, SWEEP)
    assert got.table.num_rows == 1
    assert got.table.column("attempt_id")[0].as_py() == "b-failed-10"
    assert got.failed == ["b"]


def test_latest_ok_wins_among_several_ok(store):
    _manifest(store, ["a"])
    _write(store, "a1", [_row("a", 0, minutes=1, n=10)])
    _write(store, "a2", [_row("a", 0, minutes=9, n=90)])
    _write(store, "a3", [_row("a", 0, minutes=5, n=50)])
    got = collect(store, SWEEP)
    assert got.table.column("n").to_pylist() == [90]


def test_older_file_without_newer_columns_loads_with_nulls(store):
    _manifest(store, ["a", "b"])
    _write(store, "a", [_row("a", 0)])
    old = rows_to_table([_row("b", 1)])
    dropped = ["usd_per_million_tokens", "peak_gpu_mem_mb", "git_sha", "latency_ms_p99"]
    old = old.drop_columns(dropped)
    # and an older, wider integer type for a column
    old = old.set_column(
        old.schema.get_field_index("cell_index"),
        "cell_index",
        pa.array([1], pa.int64()),
    )
    store.write_table(PATHS.legacy_cell("b"), old)
    got = collect(store, SWEEP)
    assert got.unreadable == []
    assert got.table.schema == ROW_SCHEMA
    by_id = {row["cell_id"]: row for row in got.table.to_pylist()}
    assert by_id["b"]["usd_per_million_tokens"] is None
    assert by_id["b"]["latency_ms_p99"] is None
    assert by_id["b"]["latency_ms_p50"] == 5.0
    assert by_id["b"]["cell_index"] == 1
    assert by_id["a"]["latency_ms_p99"] == 6.0


def test_aggregated_parquet_has_one_row_per_cell(store):
    _manifest(store, ["a", "b", "c"])
    _write(store, "c", [_row("c", 2)])
    _write(store, "a", [_row("a", 0, status="failed", minutes=0)])
    _write(store, "a-2", [_row("a", 0, status="ok", minutes=1)])
    _write(store, "b", [_row("b", 1, status="failed")])
    collect(store, SWEEP)
    frame = pd.read_parquet(store.uri(PATHS.aggregated))
    assert len(frame) == 3
    assert frame["cell_id"].is_unique
    assert list(frame["cell_id"]) == ["a", "b", "c"]  # manifest order (cell_index)
    assert list(frame["status"]) == ["ok", "failed", "ok"]
    assert str(frame["finished_at"].dt.tz) == "UTC"
    assert frame["n"].dtype.kind in "if"
    assert frame["latency_ms_p50"].dtype == "float64"
    assert list(frame.columns) == ROW_SCHEMA.names


def test_rerunning_collect_is_idempotent(store):
    _manifest(store, ["a"])
    _write(store, "a", [_row("a", 0)])
    first = collect(store, SWEEP).table
    second = collect(store, SWEEP).table
    assert first.equals(second)
    # aggregated.parquet is not a cell file
    assert store.list(PATHS.cells_dir, ".parquet") == [PATHS.legacy_cell("a")]


def test_empty_sweep_reports_every_cell_missing(store):
    _manifest(store, ["a", "b"])
    got = collect(store, SWEEP)
    assert got.table.num_rows == 0
    assert got.table.schema == ROW_SCHEMA
    assert got.missing == ["a", "b"]
    assert store.exists(PATHS.aggregated)
    summary_text(got)  # renders without rows


def test_only_unreadable_files_reports_them_and_every_cell_missing(store):
    _manifest(store, ["a"])
    store.write_bytes(PATHS.legacy_cell("a"), b"truncated")
    got = collect(store, SWEEP)
    assert [path for path, _ in got.unreadable] == [PATHS.legacy_cell("a")]
    assert got.table.num_rows == 0
    assert got.missing == ["a"]


def test_no_manifest_means_nothing_expected(store):
    _write(store, "a", [_row("a", 0)])
    got = collect(store, SWEEP)
    assert got.expected == []
    assert got.missing == []
    assert _ids(got.table) == ["a"]


def _attempt(store: LocalStore, row: dict) -> None:
    path = PATHS.attempt_row(row["cell_id"], row["attempt_id"], row["status"])
    store.write_table(path, rows_to_table([row]))


def test_per_attempt_files_keep_the_ok_one_and_list_the_rest(store):
    _manifest(store, ["a", "b"])
    _attempt(store, _row("a", 0, minutes=0))
    _attempt(store, _row("a", 0, status="timeout", minutes=5))  # a forced re-run that failed
    _attempt(store, _row("b", 1, status="failed", minutes=1))
    _write(store, "b", [_row("b", 1, minutes=0)])  # the older layout beside the newer
    got = collect(store, SWEEP)
    assert got.table.column("status").to_pylist() == ["ok", "ok"]
    assert got.table.column("attempt_id").to_pylist() == ["a-ok-0", "b-ok-0"]
    assert got.superseded == [("a", "a-timeout-5", "timeout"), ("b", "b-failed-1", "failed")]
    text = summary_text(got)
    assert "other attempt, not in the aggregate: a: timeout (attempt a-timeout-5)" in text


def test_a_parquet_file_that_is_not_a_bench_row_is_named_and_skipped(store):
    _manifest(store, ["a"])
    _attempt(store, _row("a", 0))
    store.write_table(f"{PATHS.cells_dir}/notes.parquet", pa.table({"x": [1, 2]}))
    no_cell = rows_to_table([_row("a", 0)]).set_column(
        ROW_SCHEMA.get_field_index("cell_id"), "cell_id", pa.nulls(1, pa.string())
    )
    store.write_table(f"{PATHS.cells_dir}/a/x.ok.parquet", no_cell)
    got = collect(store, SWEEP)
    assert _ids(got.table) == ["a"]
    assert dict(got.unreadable) == {
        f"{PATHS.cells_dir}/a/x.ok.parquet": "ForeignFile: not a bench row file (a row without "
        "a cell_id)",
        f"{PATHS.cells_dir}/notes.parquet": "ForeignFile: not a bench row file (no "
        "schema_version, sweep_id, cell_id, status column)",
    }
    with pytest.raises(UnreadableCellFile, match="not a bench row file"):
        collect(store, SWEEP, strict=True)


def test_a_clean_local_store_is_read_in_one_scan_not_file_by_file(store, monkeypatch):
    pytest.importorskip("polars")
    import bench.results.collect as collector

    _manifest(store, ["a", "b"])
    _attempt(store, _row("a", 0))
    _attempt(store, _row("b", 1, status="failed"))
    slow = []
    monkeypatch.setattr(collector, "read_chunk", lambda s, paths: slow.append(paths) or (None, []))
    got = collect(store, SWEEP)
    assert slow == []  # the fast path read every file
    assert _ids(got.table) == ["a", "b"]
    assert got.table.schema == ROW_SCHEMA
    assert got.table.column("finished_at").type == ROW_SCHEMA.field("finished_at").type


def _reads(monkeypatch) -> list[list[str]]:
    """Record the files each collect decodes (the cache's whole point is that it is few)."""
    import bench.results.collect as collector

    calls: list[list[str]] = []
    real = collector._read_all
    monkeypatch.setattr(
        collector, "_read_all", lambda s, files, v: calls.append(files) or real(s, files, v)
    )
    return calls


def test_a_later_collect_decodes_only_new_or_rewritten_files(store, monkeypatch):
    _manifest(store, ["a", "b", "c"])
    _attempt(store, _row("a", 0))
    _attempt(store, _row("b", 1, status="failed"))
    reads = _reads(monkeypatch)
    first = collect(store, SWEEP)
    assert len(reads[-1]) == 2 and store.exists(PATHS.collected_rows)
    again = collect(store, SWEEP)
    assert reads[-1] == [] and again.table.equals(first.table)  # nothing decoded twice

    _attempt(store, _row("b", 1, minutes=3))  # a new attempt: ok this time
    _attempt(store, _row("c", 2))
    third = collect(store, SWEEP)
    assert sorted(reads[-1]) == sorted(
        [PATHS.attempt_row("b", "b-ok-3", "ok"), PATHS.attempt_row("c", "c-ok-0", "ok")]
    )
    assert third.table.column("status").to_pylist() == ["ok", "ok", "ok"]
    assert third.superseded == [("b", "b-failed-0", "failed")]

    planner = PATHS.attempt_row("c", "c-ok-0", "ok")  # rewritten in place (a planner row)
    store.write_table(planner, rows_to_table([_row("c", 2, n=7)]))
    os.utime(store.uri(planner), ns=(1, 1))  # a different modification time, whatever the clock
    assert collect(store, SWEEP).table.column("n").to_pylist()[2] == 7
    assert reads[-1] == [planner]

    (store.root / PATHS.attempt_row("a", "a-ok-0", "ok")).unlink()  # a deleted file
    fourth = collect(store, SWEEP)
    assert reads[-1] == [] and _ids(fourth.table) == ["b", "c"] and fourth.missing == ["a"]


def test_a_torn_cache_is_rebuilt_and_status_writes_none(store, monkeypatch):
    _manifest(store, ["a"])
    _attempt(store, _row("a", 0))
    got = collect(store, SWEEP, write=False)
    assert _ids(got.table) == ["a"] and not store.exists(PATHS.collected_rows)
    store.write_bytes(PATHS.collected_rows, b"torn")
    reads = _reads(monkeypatch)
    assert _ids(collect(store, SWEEP).table) == ["a"]
    assert len(reads[-1]) == 1  # read again, and the cache rewritten
    assert collect(store, SWEEP).table.num_rows == 1 and reads[-1] == []


def test_summary_table_aligns_columns_and_names_interval_and_stability(store):
    _manifest(store, ["a", "b"])
    _attempt(store, _row("a", 0, latency_ms_p99_lo=5.5, latency_ms_p99_hi=None, stability="stable"))
    _attempt(store, _row("b", 1, status="failed"))
    lines = summary_text(collect(store, SWEEP)).splitlines()
    header, first, second = lines[:3]
    assert header.split()[:3] == ["model", "engine", "prec"]
    assert "p99 95% CI" in header and header.rstrip().endswith("stability")
    assert len(header) == len(first) == len(second)  # one width per column, right-aligned
    assert first.rstrip().endswith("stable")
    assert "5.5-?" in first and "200" in first  # inf/s of the ok row; the failed row's is blank
    assert any(line.strip().startswith("p99 95% CI 'x-?'") for line in lines)  # the legend


def test_the_summary_says_how_to_clear_the_percentile_flags(store):
    from bench import stats

    _manifest(store, ["a", "b", "c"])
    # a: 200 requests in 4 s (50/s); b: 900 in 3 s (300/s), its neighbours correlated
    flags_a = stats.percentile_flags(200, (50, 99), 0.95)
    _attempt(store, _row("a", 0, percentile_flags=flags_a, n=200, window_s=4.0))
    worth = {50: 300, 99: 310}
    flags_b = stats.percentile_flags(900, (50, 99), 0.95, worth)
    _attempt(store, _row("b", 1, percentile_flags=flags_b, n=900, window_s=3.0))
    _attempt(store, _row("c", 2))
    text = summary_text(collect(store, SWEEP))
    assert "2 of 3 rows carry percentile_flags" in text
    # the most requests any row needs (b's 1069), and the window that gives the slowest row
    # (a, at 50/s) its own need (368) with a tenth to spare: both settings, so it can be met
    need_a = int(re.search(r"min_requests=(\d+)", flags_a).group(1))
    assert "to clear them all: scenario.min_requests=1069 scenario.max_duration_s=" in text
    seconds = int(text.split("scenario.max_duration_s=")[1].split()[0].rstrip(")"))
    assert seconds == math.ceil(max(need_a / 50, 1069 / 300) * 1.1)


@pytest.mark.parametrize("export", ["csv", "json"])
def test_collect_exports_the_aggregate_for_tools_without_parquet(store, tmp_path, export):
    from tests.conftest import run_cli

    _manifest(store, ["a", "b"])
    _write(store, "a", [_row("a", 0, latency_ms_p99=12.5)])
    _write(store, "b", [_row("b", 1, status="failed")])
    proc = run_cli(["collect", SWEEP, f"format={export}", f"store.root={store.root}"], tmp_path)
    assert proc.returncode == 1, proc.stderr  # b failed: the exit code says so either way
    out = tmp_path / "results" / SWEEP / f"aggregated.{export}"
    assert f"{export}: {out}" in proc.stdout
    exported = pd.read_csv(out) if export == "csv" else pd.DataFrame(json.loads(out.read_text()))
    parquet = pd.read_parquet(tmp_path / "results" / SWEEP / "aggregated.parquet")
    assert list(exported.columns) == list(parquet.columns)
    assert sorted(exported["cell_id"]) == ["a", "b"]
    assert exported.set_index("cell_id").loc["a", "latency_ms_p99"] == 12.5


def test_collect_refuses_an_export_it_does_not_write(store, tmp_path):
    from tests.conftest import run_cli

    _manifest(store, ["a"])
    _write(store, "a", [_row("a", 0)])
    proc = run_cli(["collect", SWEEP, "format=xml", f"store.root={store.root}"], tmp_path)
    assert proc.returncode == 2 and "format='xml'" in proc.stderr
    assert not (tmp_path / "results" / SWEEP / "aggregated.parquet").exists()  # nothing written


def test_an_interval_with_an_end_unknown_says_so() -> None:
    from bench.results.collect import _interval

    assert _interval(None, None) == ""
    assert _interval(1.5, 2.25) == "1.5-2.25"
    assert _interval(1.5, None) == "1.5-?"
    assert _interval(None, 2.25) == "?-2.25"  # raised a TypeError before
