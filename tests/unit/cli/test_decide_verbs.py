"""report, compare and capacity through main: what each prints, where it writes, its exit
code, and its one line when a sweep is not where it is looked for."""

from __future__ import annotations

import json
from pathlib import Path

from bench.cli import main
from tests.unit.results.compare_rows import runs, write_aggregate
from tests.unit.results.sweep_store import cell_row, write_sweep


def test_compare_says_whether_a_sweep_is_uncollected_or_elsewhere(tmp_path, capsys):
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "manifest.json").write_text("{}")
    assert main(["compare", "s1", "s1", f"store.root={tmp_path}"]) == 2
    assert "not collected yet: python -m bench collect s1" in capsys.readouterr().err
    assert main(["compare", "s2", "s2", f"store.root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "no sweep s2 in the store" in err and "aggregated.parquet" in err


def test_compare_prints_its_verdicts_and_where_it_kept_them(tmp_path: Path, capsys) -> None:
    write_aggregate(tmp_path, "base", runs("base", [40.0, 40.2, 39.9]))
    write_aggregate(tmp_path, "new", runs("new", [40.1, 39.9, 40.0]))
    assert main(["compare", "base", "new", f"store.root={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith(f"comparison: {tmp_path}/new/compared/base.parquet")
    assert main(["compare", "base", "new", "format=json", f"store.root={tmp_path}"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) and "host: alike" in captured.err  # stdout stays JSON


def _sweep(root: Path) -> None:
    rows = [
        cell_row("s", "small", instance="g5.xlarge", price_per_hour=1.0),
        cell_row("s", "large", instance="g5.2xlarge", price_per_hour=1.2),
    ]
    write_sweep(root, "s", rows, latency_ms={"small": 5.0, "large": 4.0})


def test_capacity_prints_the_fleet_as_a_table_or_json(tmp_path: Path, capsys) -> None:
    _sweep(tmp_path)
    assert main(["collect", "s", f"store.root={tmp_path}"]) == 0
    capsys.readouterr()
    args = ["capacity", "s", "rate=100", "sla.p99_ms=50", f"store.root={tmp_path}"]
    assert main(args) == 0
    assert "M/G/c" in capsys.readouterr().out
    assert main([*args, "format=json"]) == 0
    fleet = json.loads(capsys.readouterr().out)
    assert {r["cell_id"] for r in fleet} == {"small", "large"}


def test_report_prints_its_headline_and_where_the_page_is(tmp_path: Path, capsys) -> None:
    _sweep(tmp_path)
    args = ["report", "s", "sla.p99_ms=50", "rate=100", f"store.root={tmp_path}"]
    assert main(args) == 0
    out = capsys.readouterr().out.rstrip().splitlines()
    assert out[-1].startswith(f"report: {tmp_path}/s/report/index.html (and report.md, ")
    markdown = (tmp_path / "s" / "report" / "report.md").read_text()
    assert "Fleet for 100 inferences/s" in markdown and "g5.2xlarge over g5.xlarge" in markdown
    assert "## Plots" not in "\n".join(out)  # the headline: what comes before the plots


def test_a_fleet_without_its_target_is_one_line(tmp_path: Path, capsys) -> None:
    _sweep(tmp_path)
    assert main(["report", "s", "rate=100", f"store.root={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: sla.p99_ms=None is not allowed; rate= sizes a fleet for a target: give sla.p99_ms=X"
    )
