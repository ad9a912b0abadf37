"""The job entry point: `python -m bench cell --manifest URI [--index N]`.

A job needs only the manifest's URI and its index. It runs its cell in this process and writes
the samples, then the row (the row last: a row present means the cell's files are complete).
"""

from __future__ import annotations

import json
import posixpath

from bench.plan import Plan
from bench.runner import CellResult, run_cell
from bench.store import Store, SweepPaths, open_store

MANIFEST_NAME = "manifest.json"


def manifest_location(uri: str) -> tuple[Store, str]:
    """(store, sweep_id) for a manifest URI `<root>/<sweep_id>/manifest.json`."""
    if posixpath.basename(uri) != MANIFEST_NAME:
        raise ValueError(f"--manifest {uri!r} must end in /<sweep_id>/{MANIFEST_NAME}")
    sweep_dir = posixpath.dirname(uri)
    return open_store(posixpath.dirname(sweep_dir) or "."), posixpath.basename(sweep_dir)


def write_manifest(store: Store, plan: Plan) -> str:
    paths = SweepPaths(plan.sweep_id)
    store.write_bytes(paths.manifest, json.dumps(plan.to_manifest(), indent=1).encode())
    return store.uri(paths.manifest)


def read_manifest(store: Store, sweep_id: str) -> Plan:
    return Plan.from_manifest(json.loads(store.read_bytes(SweepPaths(sweep_id).manifest)))


def save_result(store: Store, result: CellResult) -> None:
    from bench.rows import rows_to_table

    paths = SweepPaths(result.row["sweep_id"])
    cell_id = result.row["cell_id"]
    if result.samples is not None:
        store.write_table(paths.samples(cell_id), result.samples)
    # A one-row file is all metadata: snappy decodes faster than zstd, and the collector
    # reads thousands of these.
    store.write_table(paths.cell(cell_id), rows_to_table([result.row]), compression="snappy")


def array_map_path(sweep_id: str, name: str) -> str:
    return f"{sweep_id}/arrays/{name}.json"


def write_array_map(store: Store, sweep_id: str, name: str, indices: list[int]) -> None:
    """Store the manifest indices an array job covers; child i runs cell indices[i].

    A scheduler numbers array children 0..n-1, but the cells one array covers (one instance
    type's pending cells, say) are any subset of the manifest.
    """
    store.write_bytes(array_map_path(sweep_id, name), json.dumps({"indices": indices}).encode())


def resolve_index(store: Store, sweep_id: str, child: int, array: str | None) -> int:
    """The manifest index of array child `child` (itself when there is no array map)."""
    if array is None:
        return child
    indices = json.loads(store.read_bytes(array_map_path(sweep_id, array)))["indices"]
    if not 0 <= child < len(indices):
        raise IndexError(f"array index {child} is outside array {array!r} (0..{len(indices) - 1})")
    return int(indices[child])


def run_job(manifest_uri: str, index: int, array: str | None = None) -> CellResult:
    """Run cell `index` of the manifest (or child `index` of array map `array`) and store its
    row; returns what it stored."""
    store, sweep_id = manifest_location(manifest_uri)
    index = resolve_index(store, sweep_id, index, array)
    plan = read_manifest(store, sweep_id)
    if not 0 <= index < len(plan.cells):
        raise IndexError(f"--index {index} is outside the manifest's 0..{len(plan.cells) - 1}")
    result = run_cell(plan.cells[index])
    save_result(store, result)
    return result
