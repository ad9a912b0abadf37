"""A fleet sized from a sweep in its store: the ok rows with stored samples, their service
times, and the Spot prices passed through."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.results.fleet import sweep_fleet
from tests.unit.results.sweep_store import cell_row, write_sweep


def _sweep(tmp_path: Path) -> tuple[object, pd.DataFrame]:
    rows = [
        cell_row("s", "fast", instance="g5.xlarge", price_per_hour=1.0),
        cell_row("s", "slow", instance="g5.2xlarge", price_per_hour=1.0),
        cell_row("s", "gone", instance="g5.xlarge"),  # its samples file is gone
        cell_row("s", "broke", status="failed"),
    ]
    store = write_sweep(tmp_path, "s", rows, latency_ms={"fast": 5.0, "slow": 20.0})
    return store, pd.DataFrame(rows)


def test_each_ok_row_with_samples_is_sized_from_its_service_times(tmp_path: Path) -> None:
    store, rows = _sweep(tmp_path)
    fleet = sweep_fleet(store, rows, rate=300, p99_ms=50).set_index("cell_id")
    assert sorted(fleet.index) == ["fast", "slow"]
    # 300/s at 20 ms a request keeps at least 6 servers busy; at 5 ms, at least 2
    assert fleet.loc["slow", "replicas"] >= 7 and fleet.loc["fast", "replicas"] >= 2
    assert fleet.loc["fast", "usd_per_month"] < fleet.loc["slow", "usd_per_month"]


def test_the_peak_and_spot_prices_reach_the_sizing(tmp_path: Path) -> None:
    store, rows = _sweep(tmp_path)
    calm = sweep_fleet(store, rows, 100, 50).set_index("cell_id")
    peak = sweep_fleet(store, rows, 100, 50, 3.0, {"g5.xlarge": 0.4}).set_index("cell_id")
    assert peak.loc["slow", "replicas"] > calm.loc["slow", "replicas"]
    assert peak.loc["fast", "spot_usd_per_month"] == pytest.approx(
        peak.loc["fast", "instances"] * 0.4 * 730
    )
    assert pd.isna(peak.loc["slow", "spot_usd_per_month"])  # no Spot price for its type
