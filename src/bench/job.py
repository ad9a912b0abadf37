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


def run_job(manifest_uri: str, index: int) -> CellResult:
    """Run cell `index` of the manifest and store its row; returns what it stored."""
    store, sweep_id = manifest_location(manifest_uri)
    plan = read_manifest(store, sweep_id)
    if not 0 <= index < len(plan.cells):
        raise IndexError(f"--index {index} is outside the manifest's 0..{len(plan.cells) - 1}")
    result = run_cell(plan.cells[index])
    save_result(store, result)
    return result
