"""bench.plan.arch_cache: a model's architecture figures worked out once per machine and
transformers release, then read from `$XDG_CACHE_HOME/bench/architectures.json`; a cache that
cannot be read or written costs only the time, never the plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bench.plan.feasibility as feasibility
from bench.plan import arch_cache
from bench.plan.grid import plan_from_overrides


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def _made(value: object) -> tuple[list[int], object]:
    calls: list[int] = []

    def make() -> object:
        calls.append(1)
        return value

    return calls, make


def test_the_cache_lives_under_xdg_cache_home_or_the_home_folder(cache_home, monkeypatch):
    assert arch_cache.cache_path() == cache_home / "bench" / "architectures.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(cache_home / "home"))
    assert (
        arch_cache.cache_path() == cache_home / "home" / ".cache" / "bench" / arch_cache.CACHE_FILE
    )


def test_a_figure_is_made_once_then_read_back(cache_home):
    calls, make = _made(123)
    key = arch_cache.entry_key("params", "bert_tiny")
    assert arch_cache.cached(key, make) == 123
    assert arch_cache.cached(key, make) == 123
    assert calls == [1]
    stored = json.loads((cache_home / "bench" / "architectures.json").read_text())
    assert stored == {key: 123}
    assert not list((cache_home / "bench").glob(".architectures-*"))  # no temp file left


def test_figures_of_other_processes_are_kept_beside_a_new_one(cache_home):
    path = arch_cache.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"shape:other": [2, 64]}))
    arch_cache.cached("params:mine", lambda: 7)
    assert json.loads(path.read_text()) == {"shape:other": [2, 64], "params:mine": 7}


def test_a_cache_grown_past_its_bound_starts_afresh(cache_home, monkeypatch):
    monkeypatch.setattr(arch_cache, "MAX_ENTRIES", 2)
    for n in range(2):
        arch_cache.cached(f"k:{n}", lambda n=n: n)
    arch_cache.cached("k:new", lambda: 9)
    assert json.loads(arch_cache.cache_path().read_text()) == {"k:new": 9}


@pytest.mark.parametrize("content", ["{torn", "[1, 2]", ""])
def test_an_unreadable_cache_is_worked_out_again(cache_home, content):
    path = arch_cache.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text(content)
    calls, make = _made({"layers": 2})
    assert arch_cache.cached("shape:m", make) == {"layers": 2} and calls == [1]
    assert json.loads(path.read_text()) == {"shape:m": {"layers": 2}}  # rewritten whole


def test_a_key_names_its_kind_and_changes_with_what_it_is_read_from():
    key = arch_cache.entry_key("params", "bert_tiny", "fp32")
    assert key.startswith("params:") and len(key) == len("params:") + 32
    assert key == arch_cache.entry_key("params", "bert_tiny", "fp32")
    assert key != arch_cache.entry_key("params", "bert_tiny", "fp16")
    assert key.split(":")[1] != arch_cache.entry_key("shape", "bert_tiny", "fp32").split(":")[1]


def test_a_models_figures_are_counted_once_then_read_from_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.plan.memory_estimate as memory_estimate

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (cell,) = plan_from_overrides(["model=bert_tiny", "instance=g5.xlarge"]).cells
    feasibility._params.cache_clear()
    feasibility._shape.cache_clear()
    first = feasibility.cell_estimate(cell)
    assert (tmp_path / "bench" / "architectures.json").is_file()

    def never(*args: object) -> None:
        raise AssertionError("counted again")

    monkeypatch.setattr(memory_estimate, "count_parameters", never)
    monkeypatch.setattr(memory_estimate, "architecture_shape", never)
    feasibility._params.cache_clear()
    feasibility._shape.cache_clear()
    assert feasibility.cell_estimate(cell) == first
    feasibility._params.cache_clear()
    feasibility._shape.cache_clear()


def test_an_unwritable_cache_costs_only_the_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bench").write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (cell,) = plan_from_overrides(["model=bert_tiny", "instance=g5.xlarge"]).cells
    feasibility._params.cache_clear()
    assert feasibility.model_parameters(cell.model) > 0
    feasibility._params.cache_clear()
