"""The manifest a job reads: its own cell alone, validated as the command line is."""

from __future__ import annotations

import json

import pytest

from bench.config.checks import ConfigError
from bench.plan.grid import plan_from_overrides
from bench.plan.manifest import read_manifest, write_manifest
from bench.store import LocalStore, SweepPaths


def _stored(tmp_path, sweep_id: str = "m") -> LocalStore:
    store = LocalStore(str(tmp_path))
    plan = plan_from_overrides(["engine=null", "grid.axes.threads=[1,2,3]", f"sweep_id={sweep_id}"])
    write_manifest(store, plan)
    return store


def test_a_job_reads_and_checks_its_own_cell_alone(tmp_path) -> None:
    store = _stored(tmp_path)
    path = tmp_path / SweepPaths("m").manifest
    manifest = json.loads(path.read_text())
    manifest["cells"][2]["engine"]["name"] = "no_such_engine"  # another cell, broken
    path.write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="no_such_engine"):
        read_manifest(store, "m")  # the whole plan: every cell checked
    one = read_manifest(store, "m", only=1)
    assert [c.index for c in one.cells] == [1] and one.cells[0].threads == 2
    with pytest.raises(ConfigError, match="no_such_engine"):
        read_manifest(store, "m", only=2)  # its own cell is checked


def test_an_index_outside_the_manifest_says_its_range(tmp_path) -> None:
    store = _stored(tmp_path)
    with pytest.raises(IndexError, match=r"--index 3 is outside the manifest's 0\.\.2"):
        read_manifest(store, "m", only=3)
