"""`bench report` over a store: the decision sections asked for (a comparison, a fleet, the
ratio table), the report built from a sweep's rows and written under its report folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.config.checks import ConfigError
from bench.results.collect import collect
from bench.results.report import Sla
from bench.results.sweep_report import (
    RATIO_OFF,
    ReportAsks,
    decision_sections,
    ratio_pair,
    report_sweep,
    sla_from,
)
from bench.store import LocalStore
from tests.unit.results.sweep_store import cell_row, write_sweep

G5, G5_2X = "g5.xlarge", "g5.2xlarge"


def _sweep(root: Path, sweep_id: str = "s", p50_ms: float = 5.0) -> LocalStore:
    rows = [
        cell_row(sweep_id, "small", instance=G5, price_per_hour=1.0, latency_ms_p50=p50_ms),
        cell_row(sweep_id, "large", instance=G5_2X, price_per_hour=1.2, latency_ms_p50=p50_ms),
    ]
    return write_sweep(root, sweep_id, rows, latency_ms={"small": 5.0, "large": 4.0})


def _frame(store: LocalStore, sweep_id: str = "s") -> pd.DataFrame:
    return collect(store, sweep_id).table.to_pandas()


def _headings(sections: list) -> list[str]:
    return [section.blocks[0].text for section in sections]


def test_only_the_sections_asked_for_are_built(tmp_path: Path) -> None:
    store = _sweep(tmp_path)
    frame = _frame(store)
    root = str(tmp_path)
    off = ReportAsks(ratio=RATIO_OFF)
    assert decision_sections(store, frame, root, off) == []
    _frame(_sweep(tmp_path, "base"), "base")  # collected: the comparison reads its aggregate
    asked = ReportAsks(compare_to="base", rate=100.0, ratio=(G5, G5_2X))
    headings = _headings(decision_sections(store, frame, root, asked, p99_ms=50.0))
    assert headings == [
        "Compared with base",
        "Fleet for 100 inferences/s (P99 <= 50 ms)",
        f"{G5} over {G5_2X}",
    ]


def test_a_fleet_needs_its_latency_target(tmp_path: Path) -> None:
    store = _sweep(tmp_path)
    with pytest.raises(ConfigError, match=r"sla\.p99_ms"):
        decision_sections(store, _frame(store), str(tmp_path), ReportAsks(rate=100.0))


def test_the_ratio_pair_is_automatic_for_two_types_and_checked_when_named(tmp_path: Path) -> None:
    frame = _frame(_sweep(tmp_path))
    assert ratio_pair(None, frame) == (G5_2X, G5)  # the dearer over the cheaper
    assert ratio_pair(RATIO_OFF, frame) is None
    with pytest.raises(ConfigError, match=r"p3\.2xlarge has no ok rows here"):
        ratio_pair((G5, "p3.2xlarge"), frame)


def test_the_sla_takes_the_configs_targets_as_numbers() -> None:
    # a key the config lacks is no target, not the class's default
    assert sla_from({"p99_ms": 50, "ttft_ms": None}) == Sla(p99_ms=50.0, max_failed_share=None)
    assert sla_from({"max_failed_share": "0.01"}).max_failed_share == 0.01


def test_the_report_is_written_under_the_sweeps_report_folder(tmp_path: Path) -> None:
    store = _sweep(tmp_path)
    written = report_sweep(store, "s", str(tmp_path), Sla(p99_ms=50.0), ReportAsks())
    folder = tmp_path / "s" / "report"
    assert written.uri == f"{folder}/index.html"
    assert (folder / "report.md").read_text() == written.report.markdown
    assert (folder / "index.html").read_text() == written.report.html
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(written.report.images)
    assert f"## {G5_2X} over {G5}" in written.report.markdown  # two types: the ratio by itself
