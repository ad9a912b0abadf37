"""`bench compare` over a store: the sides read from their aggregates (two sweeps, or one A/B
sweep split on its axis), compared, and the table kept beside NEW."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.config.checks import ConfigError, UsageError
from bench.results.compare_sweeps import compare_sweeps
from tests.unit.results.compare_rows import run_row, runs, write_aggregate

BASE_P50S = [40.0, 40.2, 39.9]


def test_two_sweeps_are_compared_and_the_table_kept_beside_new(tmp_path: Path) -> None:
    write_aggregate(tmp_path, "base", runs("base", BASE_P50S))
    write_aggregate(tmp_path, "new", runs("new", [44.0, 44.2, 43.9]))
    compared = compare_sweeps("base", "new", str(tmp_path))
    assert compared.uri == f"{tmp_path}/new/compared/base.parquet"
    kept = pd.read_parquet(tmp_path / "new" / "compared" / "base.parquet")
    assert len(kept) == len(compared.result.table) > 0
    assert compared.result.exit_code == 1  # 10 % slower, past the 5 % threshold
    lenient = compare_sweeps("base", "new", str(tmp_path), threshold=0.5)
    assert lenient.result.exit_code == 0


def test_an_ab_sweep_is_split_on_its_axis(tmp_path: Path) -> None:
    rows = [
        run_row("ab", p50, repeat=k, service_ms=ms, axes={"engine.service_ms": ms}, index=i)
        for i, (k, ms, p50) in enumerate([(0, 40, 40.0), (0, 44, 40.1), (1, 40, 40.2)])
    ]
    rows.append(run_row("ab", 39.9, repeat=1, service_ms=44, axes={"engine.service_ms": 44}))
    write_aggregate(tmp_path, "ab", rows)
    compared = compare_sweeps("ab", None, str(tmp_path), ab="engine.service_ms")
    assert compared.uri == f"{tmp_path}/ab/compared/ab-engine.service_ms.parquet"
    assert compared.result.exit_code == 0
    with pytest.raises(ConfigError, match="not a grid axis of this sweep"):
        compare_sweeps("ab", None, str(tmp_path), ab="precision")


def test_nothing_in_common_is_a_usage_error_not_a_pass(tmp_path: Path) -> None:
    write_aggregate(tmp_path, "base", runs("base", BASE_P50S, threads=4))
    write_aggregate(tmp_path, "new", runs("new", BASE_P50S, threads=8, service_ms=10.0))
    with pytest.raises(UsageError, match=r"no ok cells of base and new match on .*nothing"):
        compare_sweeps("base", "new", str(tmp_path))
    assert not (tmp_path / "new" / "compared").exists()  # nothing was written


def test_a_side_that_is_not_there_is_named(tmp_path: Path) -> None:
    write_aggregate(tmp_path, "base", runs("base", BASE_P50S))
    with pytest.raises(ConfigError, match="no sweep nope in the store"):
        compare_sweeps("base", "nope", str(tmp_path))
