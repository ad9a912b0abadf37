"""The store under attack: torn row files, collects racing each other, ids and roots that
point out of the store. Cells are the sleep engine's, a second or two each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.results import collect as collect_module
from bench.store import open_store
from tests.conftest import run_cli

S = [
    "engine=sleep",
    "scenario.min_duration_s=1",
    "scenario.max_duration_s=2",
    "scenario.min_requests=10",
]


def sweep(work: Path, *extra: str) -> str:
    proc = run_cli(["sweep", *S, *extra], work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def ok_files(work: Path, sweep_id: str) -> list[Path]:
    return sorted((work / "results" / sweep_id / "cells").glob("*/*.ok.parquet"))


def aggregate(work: Path, sweep_id: str) -> pd.DataFrame:
    return pd.read_parquet(work / "results" / sweep_id / "aggregated.parquet")


def test_a_truncated_ok_row_file_does_not_stand_for_its_cell(tmp_path: Path) -> None:
    sweep(tmp_path, "sweep_id=torn")
    (torn,) = ok_files(tmp_path, "torn")
    torn.write_bytes(torn.read_bytes()[:100])  # a torn write, a full disk, a bad copy
    said = sweep(tmp_path, "sweep_id=torn")
    assert "1 to run, 0 already ok" in said, said
    rows = aggregate(tmp_path, "torn")
    assert list(rows["status"]) == ["ok"]
    assert rows.iloc[0]["attempt_id"] not in torn.name  # the new attempt's row


def test_a_slower_collect_never_writes_over_a_newer_aggregate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Collect A lists the cells before cell Z's row lands; collect B, started later, sees
    it and writes the aggregate first; A finishes last. Z must stay ok."""
    sweep(tmp_path, "sweep_id=race", "grid.axes.threads=[1,2]")
    z_file = ok_files(tmp_path, "race")[-1]
    aside = tmp_path / "aside.parquet"
    shutil.move(z_file, aside)
    store = open_store(str(tmp_path / "results"))
    collect_module.collect(store, "race")  # the cache and aggregate without Z
    read_all, raced = collect_module._read_all, []

    def slow_read(*args, **kwargs):  # A, between its listing and its write
        found = read_all(*args, **kwargs)
        if not raced:
            raced.append(True)
            shutil.move(aside, z_file)  # Z's row lands
            collect_module.collect(store, "race")  # B: sees Z, writes first
        return found

    monkeypatch.setattr(collect_module, "_read_all", slow_read)
    collect_module.collect(store, "race")  # A
    assert raced
    rows = aggregate(tmp_path, "race")
    assert sorted(rows["status"]) == ["ok", "ok"], rows[["cell_id", "status"]]


def test_a_forced_rerun_that_fails_every_cell_says_so(tmp_path: Path) -> None:
    sweep(tmp_path, "sweep_id=forced", "grid.axes.threads=[1,2]")
    proc = run_cli(
        ["sweep", *S, "sweep_id=forced", "grid.axes.threads=[1,2]", "force=true",
         "executor.timeout_s=0.5"],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 cells failed or timed out in this run" in proc.stdout
    assert "ok cells" not in proc.stderr  # no time split taken from the older rows
    # the older ok rows still stand: no row is overwritten by a worse one
    assert sorted(aggregate(tmp_path, "forced")["status"]) == ["ok", "ok"]


def test_a_manifest_cell_id_out_of_the_store_is_refused(tmp_path: Path) -> None:
    sweep(tmp_path, "sweep_id=edited")
    manifest = tmp_path / "results" / "edited" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["cells"][0]["cell_id"] = "../../../escaped"
    manifest.write_text(json.dumps(data))
    before = sorted(p for p in tmp_path.rglob("*"))
    proc = run_cli(["cell", "--manifest", str(manifest), "--index", "0"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("error: cell_id=")
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written anywhere
    # a manifest moved under another sweep's folder is refused too
    data["cells"][0]["cell_id"] = "fine"
    other = tmp_path / "results" / "other" / "manifest.json"
    other.parent.mkdir()
    other.write_text(json.dumps(data))
    proc = run_cli(["cell", "--manifest", str(other), "--index", "0"], tmp_path)
    assert proc.returncode == 2 and "error: sweep_id='edited'" in proc.stderr, proc.stderr[-2000:]


def test_an_empty_store_root_is_refused_and_nothing_written(tmp_path: Path) -> None:
    proc = run_cli(["sweep", *S, "store.root="], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().startswith("error: store.root=")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_compare_of_sweeps_with_no_matching_cells_is_a_usage_error(tmp_path: Path) -> None:
    sweep(tmp_path, "sweep_id=one", "threads=1")
    sweep(tmp_path, "sweep_id=two", "threads=2")
    proc = run_cli(["compare", "one", "two"], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: no ok cells of one and two match")
    assert not (tmp_path / "results" / "two" / "compared").exists()
