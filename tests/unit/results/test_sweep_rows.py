"""Finding a sweep in a store: its folder checked for rows or a manifest, its aggregate read
by id or URI, and, for an id the store lacks, the sweeps it may stand for."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.config.checks import ConfigError
from bench.results.collect import collect
from bench.results.sweep_rows import find_sweep, read_aggregate, sweep_hint
from bench.store import LocalStore
from tests.unit.results.sweep_store import cell_row, write_sweep


def _message(caught: pytest.ExceptionInfo[ConfigError]) -> str:
    text = str(caught.value)
    assert "\n" not in text
    return text


def test_a_sweep_with_rows_is_found_and_one_without_is_named(tmp_path: Path) -> None:
    write_sweep(tmp_path, "smoke-1", [cell_row("smoke-1", "a")])
    store, paths = find_sweep(str(tmp_path), "smoke-1", "rows")
    assert paths.sweep_id == "smoke-1" and store.root_uri == str(tmp_path)
    write_sweep(tmp_path, "empty-1", [], cells=["a"])  # planned, nothing ran yet
    assert find_sweep(str(tmp_path), "empty-1", "manifest")[1].sweep_id == "empty-1"
    with pytest.raises(ConfigError) as caught:
        find_sweep(str(tmp_path), "empty-1", "rows")
    assert f"no cell rows under {tmp_path}/empty-1" in _message(caught)
    with pytest.raises(ConfigError) as caught:
        find_sweep(str(tmp_path), "smoke-2", "manifest")
    assert _message(caught).endswith(
        "no manifest under " + f"{tmp_path}/smoke-2; did you mean smoke-1?"
    )


def test_a_grid_name_stands_for_its_sweeps_newest_first(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path))
    assert sweep_hint(store, "smoke") == ""  # an empty store: nothing to suggest
    write_sweep(tmp_path, "smoke-aaaa", [cell_row("smoke-aaaa", "a")])
    assert sweep_hint(store, "smoke") == "; did you mean smoke-aaaa?"
    write_sweep(tmp_path, "smoke-bbbb", [cell_row("smoke-bbbb", "a")])
    hint = sweep_hint(store, "smoke")
    assert hint.startswith("; did you mean smoke-") and "(or 1 more: python -m bench ls)" in hint
    assert sweep_hint(store, "smoke-aaab") == "; did you mean smoke-aaaa?"  # the closest id
    assert sweep_hint(store, "zzz") == ""


def test_the_aggregate_is_read_by_id_or_by_its_uri(tmp_path: Path) -> None:
    store = write_sweep(tmp_path / "elsewhere", "s1", [cell_row("s1", "a"), cell_row("s1", "b")])
    collect(store, "s1")
    by_uri = read_aggregate(f"{tmp_path}/elsewhere/s1/aggregated.parquet", str(tmp_path / "x"))
    assert by_uri.sweep_id == "s1" and by_uri.store.root_uri == str(tmp_path / "elsewhere")
    assert isinstance(by_uri.rows, pd.DataFrame) and sorted(by_uri.rows["cell_id"]) == ["a", "b"]
    _, sweep_id, rows = read_aggregate("s1", str(tmp_path / "elsewhere"))
    assert sweep_id == "s1" and len(rows) == 2


def test_an_uncollected_sweep_and_one_in_another_store_are_told_apart(tmp_path: Path) -> None:
    write_sweep(tmp_path, "run-a1", [cell_row("run-a1", "a")])
    with pytest.raises(ConfigError) as caught:
        read_aggregate("run-a1", str(tmp_path))
    said = _message(caught)
    assert f"not collected yet: python -m bench collect run-a1 store.root={tmp_path}" in said
    with pytest.raises(ConfigError) as caught:
        read_aggregate("run-a2", str(tmp_path))
    said = _message(caught)
    assert f"no sweep run-a2 in the store {tmp_path}; did you mean run-a1?" in said
    assert "(ROOT/SWEEP_ID/aggregated.parquet)" in said


def test_an_id_never_names_a_path_out_of_the_store(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sweep_id"):
        read_aggregate("../outside", str(tmp_path))
