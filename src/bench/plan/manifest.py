"""A sweep's plan as the jobs read it: the Plan (its cells, executor options, order), its
manifest JSON, and where a manifest lives in a store. Planning (bench.plan.grid, with Hydra) writes
it; every job process reads it with this module alone, so a cell's process never imports
Hydra or OmegaConf.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
import random
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bench.config.checks import SWEEP_ID_PATTERN as SWEEP_ID_PATTERN
from bench.config.checks import ConfigError
from bench.config.checks import check_sweep_id as check_sweep_id
from bench.config.schema import CellConfig, cell_from_dict
from bench.engines import check_engine
from bench.measure.scenarios import check_scenario
from bench.measure.workloads import check_workload
from bench.store import Store, SweepPaths, manifest_json, open_store
from bench.store.base import StoreError

MANIFEST_VERSION = 1
ORDERS = ("manifest", "shuffled", "interleaved")
# a cell id names a folder of its own (a file name: at most 255 bytes, less its suffixes)
CELL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


@dataclass
class Plan:
    sweep_id: str
    grid_name: str
    axes: dict[str, list[Any]]
    cells: list[CellConfig]
    store_root: str = "results"
    executor: dict[str, Any] = dataclasses.field(default_factory=dict)
    force: bool = False
    wait: bool = False  # with a scheduler: block until the jobs finish, then collect
    run_infeasible: bool = False  # run cells the memory planner rules out
    order: str = "manifest"  # manifest | shuffled | interleaved: the order cells are run in

    def run_order(self, indices: list[int]) -> list[int]:
        """`indices` in the order to run them: as listed, or shuffled with a seed taken from
        the sweep id (the same sweep resumes in the same order), so drift over a long sweep
        (thermals, neighbours, a cache warming) does not line up with any axis; or
        interleaved: round k runs repeat k of every configuration, odd rounds in reverse
        (A B, B A, A B ...), so the two sides of an A/B axis alternate and a drifting host
        falls on both alike (`bench compare SWEEP ab=KEY`)."""
        if self.order == "interleaved":
            rounds: dict[int, list[int]] = {}
            for index in indices:
                rounds.setdefault(self.cells[index].repeat, []).append(index)
            return [i for k in sorted(rounds) for i in (rounds[k][::-1] if k % 2 else rounds[k])]
        if self.order != "shuffled":
            return list(indices)
        shuffled = list(indices)
        random.Random(digest(self.sweep_id, 16)).shuffle(shuffled)
        return shuffled

    def to_manifest(self) -> dict[str, Any]:
        return {
            "manifest_version": MANIFEST_VERSION,
            "sweep_id": self.sweep_id,
            "grid": self.grid_name,
            "created_at": datetime.now(timezone.utc).isoformat(),
            "axes": self.axes,
            "store_root": self.store_root,
            "executor": self.executor,
            "force": self.force,  # a job stands down on a cell with an ok row unless forced
            "cells": [cell.to_dict() for cell in self.cells],
        }

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], only: int | None = None) -> Plan:
        """The manifest's Plan, every cell validated; with `only`, that cell alone (a job
        runs one cell: validating all of them in every job would be quadratic over a
        sweep). IndexError when `only` is not one of its cells."""
        cells = manifest["cells"]
        if only is not None:
            if not 0 <= only < len(cells):
                raise IndexError(f"--index {only} is outside the manifest's 0..{len(cells) - 1}")
            cells = [cells[only]]
        return cls(
            sweep_id=check_sweep_id(manifest["sweep_id"]),
            grid_name=manifest.get("grid", ""),
            axes=manifest.get("axes", {}),
            store_root=manifest.get("store_root", ""),
            executor=manifest.get("executor", {}),
            force=bool(manifest.get("force", False)),
            cells=[_checked(cell_from_dict(d)) for d in cells],
        )


def _checked(cell: CellConfig) -> CellConfig:
    """A manifest's cell whose id names a folder of the store (a hand-edited manifest is
    checked as the command line is) and whose engine, scenario and workload are registered
    here and take its options."""
    if not CELL_ID_PATTERN.match(cell.cell_id) or ".." in cell.cell_id:
        raise ConfigError(
            "cell_id", cell.cell_id, "use letters, digits, '.', '_' and '-' only (no '..')"
        )
    check_engine({"name": cell.engine.name, **cell.engine.options})
    if check_scenario(cell.scenario) != cell.scenario:  # the planner kept only its own keys
        raise ConfigError("scenario", cell.scenario.options, "keys of another scenario")
    if check_workload(cell) != cell.workload:
        raise ConfigError("workload", cell.workload.options, "keys of another workload")
    return cell


def digest(obj: Any, length: int) -> str:
    """The first `length` hex digits of the SHA-256 of `obj` as sorted JSON: ids and seeds."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[
        :length
    ]


MANIFEST_NAME = "manifest.json"


def manifest_location(uri: str) -> tuple[Store, str]:
    """(store, sweep_id) for a manifest URI `<root>/<sweep_id>/manifest.json`."""
    if posixpath.basename(uri) != MANIFEST_NAME:
        raise ValueError(f"--manifest {uri!r} must end in /<sweep_id>/{MANIFEST_NAME}")
    sweep_dir = posixpath.dirname(uri)
    return open_store(posixpath.dirname(sweep_dir) or "."), posixpath.basename(sweep_dir)


def check_manifest_store(uri: str) -> None:
    """StoreError in one line when the manifest's store cannot be used (before any retries)."""
    manifest_location(uri)[0].check()


def write_manifest(store: Store, plan: Plan) -> str:
    paths = SweepPaths(plan.sweep_id)
    store.write_bytes(paths.manifest, json.dumps(plan.to_manifest(), indent=1).encode())
    return store.uri(paths.manifest)


def read_manifest(store: Store, sweep_id: str, only: int | None = None) -> Plan:
    """The sweep's Plan, every cell validated, or with `only` that cell alone (StoreError
    when the sweep has no manifest)."""
    manifest = readable_manifest(store, sweep_id)
    if manifest is None:
        raise StoreError(f"no manifest at {store.uri(SweepPaths(sweep_id).manifest)}")
    plan = Plan.from_manifest(manifest, only)
    if plan.sweep_id != sweep_id:  # its rows would land in another sweep's folder
        raise ConfigError(
            "sweep_id", plan.sweep_id, f"the manifest's folder says {sweep_id}: they must agree"
        )
    return plan


def readable_manifest(store: Store, sweep_id: str) -> dict[str, Any] | None:
    """The sweep's manifest as JSON (None when it has none); one that cannot be read (cut
    short, edited) is a StoreError naming the file (bench.store.manifest_json)."""
    return manifest_json(store, sweep_id)


def unreadable_manifests(store: Store, besides: set[str]) -> list[str]:
    """For `ls`: why each sweep folder not in `besides` whose manifest exists cannot be read
    (a listing that skipped it would hide the sweep)."""
    found = []
    for name in store.folders():
        if name in besides or not store.exists(SweepPaths(name).manifest):
            continue
        try:
            readable_manifest(store, name)
        except StoreError as exc:
            found.append(str(exc))
    return found
