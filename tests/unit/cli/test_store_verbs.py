"""collect, status and ls through main: what each prints and its exit code, over a sweep
written into a temporary store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.executors import lease
from tests.unit.results.sweep_store import cell_row, write_sweep


def test_collect_prints_the_table_and_writes_an_export_beside_it(tmp_path: Path, capsys) -> None:
    rows = [cell_row("s", "a"), cell_row("s", "b")]
    write_sweep(tmp_path, "s", rows)
    assert main(["collect", "s", "format=json", f"store.root={tmp_path}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"aggregated: {tmp_path}/s/aggregated.parquet" in out
    assert out[-1] == f"json: {tmp_path}/s/aggregated.json"
    assert [r["cell_id"] for r in json.loads((tmp_path / "s" / "aggregated.json").read_text())] == [
        "a",
        "b",
    ]


def test_collect_exits_1_when_a_cell_failed_or_is_missing(tmp_path: Path, capsys) -> None:
    write_sweep(tmp_path, "s", [cell_row("s", "a")], cells=["a", "b"])
    assert main(["collect", "s", f"store.root={tmp_path}"]) == 1
    assert "missing: b" in capsys.readouterr().out
    assert not (tmp_path / "s" / "aggregated.csv").exists()  # format=table: Parquet alone


def test_status_prints_the_cells_measured_now_and_the_rows_so_far(tmp_path: Path, capsys) -> None:
    store = write_sweep(tmp_path, "s", [cell_row("s", "a")], cells=["a", "b", "c"])
    lease.acquire(store, "s", "b", "b-a1", 600)
    assert main(["status", "s", f"store.root={tmp_path}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("measuring now: b: attempt b-a1 (pid ")
    assert out[-1] == "sweep s: 3 cells; rows: ok 1; running 1; pending (no row yet) 1"
    assert not (tmp_path / "s" / "aggregated.parquet").exists()  # status only reads


def test_a_grid_name_for_a_sweep_id_names_the_sweep(tmp_path: Path, capsys) -> None:
    write_sweep(tmp_path, "smoke-2b29ec4c", [cell_row("smoke-2b29ec4c", "x")])
    for verb in ("status", "collect"):
        assert main([verb, "smoke", f"store.root={tmp_path}"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.endswith("did you mean smoke-2b29ec4c?"), err


@pytest.mark.parametrize("collected", [False, True])
def test_ls_lists_the_stores_sweeps(tmp_path: Path, capsys, collected: bool) -> None:
    write_sweep(tmp_path, "smoke-1", [cell_row("smoke-1", "a")])
    if collected:
        assert main(["collect", "smoke-1", f"store.root={tmp_path}"]) == 0
        capsys.readouterr()
    assert main(["ls", f"store.root={tmp_path}"]) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.split()[:2] == ["sweep_id", "grid"]
    assert line.split()[:2] == ["smoke-1", "smoke"]
    assert line.endswith("ok 1" if collected else "not collected")
