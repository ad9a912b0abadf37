"""Where each of a sweep's files lives in a store, what a row file's name says, and the
manifest and collect cache as plain data (the layout: bench.store.local's docstring)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from bench.store.base import Store, StoreError

# the collect cache's own columns beside each row's: the row file it came from and that file's
# version in the listing (bench.results.collect writes it; a job reads it to skip re-reading)
FILE_COLUMN = "__bench_file"
VERSION_COLUMN = "__bench_file_version"


@dataclass(frozen=True)
class SweepPaths:
    """Where each of a sweep's files lives, relative to the store root."""

    sweep_id: str

    @property
    def manifest(self) -> str:
        return f"{self.sweep_id}/manifest.json"

    @property
    def cells_dir(self) -> str:
        return f"{self.sweep_id}/cells"

    @property
    def aggregated(self) -> str:
        return f"{self.sweep_id}/aggregated.parquet"

    @property
    def collected_rows(self) -> str:
        """Every attempt row the collector has read, with its file and version: attempt files
        are never written over, so a later collect reads only files it has not seen."""
        return f"{self.sweep_id}/collected/attempts.parquet"

    def cell_attempts_dir(self, cell_id: str) -> str:
        return f"{self.cells_dir}/{cell_id}"

    def attempt_row(self, cell_id: str, attempt: str, status: str) -> str:
        """An attempt's row; its status is in the name so resume can decide from a listing."""
        return f"{self.cells_dir}/{cell_id}/{attempt}.{status}.parquet"

    def legacy_cell(self, cell_id: str) -> str:
        """Where stores from before per-attempt files kept a cell's one row."""
        return f"{self.cells_dir}/{cell_id}.parquet"

    def samples(self, cell_id: str, attempt: str) -> str:
        return f"{self.sweep_id}/samples/{cell_id}/{attempt}.parquet"

    def telemetry(self, cell_id: str, attempt: str) -> str:
        return f"{self.sweep_id}/telemetry/{cell_id}/{attempt}.parquet"

    def log(self, cell_id: str, attempt: str) -> str:
        return f"{self.sweep_id}/logs/{cell_id}/{attempt}.log"

    @property
    def leases_dir(self) -> str:
        return f"{self.sweep_id}/leases"

    def lease(self, cell_id: str) -> str:
        return f"{self.leases_dir}/{cell_id}.json"

    @property
    def progress_dir(self) -> str:
        """Each running cell's phase, for `bench status` (bench.measure.progress)."""
        return f"{self.sweep_id}/progress"

    def progress(self, cell_id: str) -> str:
        return f"{self.progress_dir}/{cell_id}.json"

    @property
    def submissions_dir(self) -> str:
        """A scheduler's journal: one file per submission (bench.executors.base)."""
        return f"{self.sweep_id}/submissions"

    def submission(self, name: str) -> str:
        return f"{self.submissions_dir}/{name}.json"

    def array_map(self, name: str) -> str:
        """An array job's child index -> cell index map (bench.executors.job)."""
        return f"{self.sweep_id}/arrays/{name}.json"

    @property
    def report_dir(self) -> str:
        return f"{self.sweep_id}/report"


def manifest_json(store: Store, sweep_id: str) -> dict[str, Any] | None:
    """A sweep's manifest as plain JSON, None when it has none: for readers that want its cell
    ids or metadata (collect, ls, the sweep's same-grid check). A job's Plan, validated, is
    bench.plan.manifest.read_manifest, which reads it through here."""
    path = SweepPaths(sweep_id).manifest
    if not store.exists(path):
        return None
    try:
        manifest = json.loads(store.read_bytes(path))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError: cut short or edited
        raise StoreError(
            f"{store.uri(path)} is not a readable manifest ({exc}); move it aside and run the "
            "same sweep again to rewrite it (its rows are kept)"
        ) from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{store.uri(path)} is not a manifest (a JSON object)")
    return manifest


@dataclass(frozen=True)
class RowFile:
    """What a row file's path says: its cell, and (per-attempt layout) attempt and status."""

    cell_id: str
    attempt: str | None  # None: the older one-row-per-cell layout
    status: str | None


def row_file(path: str) -> RowFile:
    """Parse `.../cells/<cell_id>/<attempt>.<status>.parquet` or `.../cells/<cell_id>.parquet`."""
    parts = path.rsplit("/", 3)
    name = parts[-1].removesuffix(".parquet")
    if len(parts) >= 3 and parts[-3] == "cells" and "." in name:
        attempt, status = name.rsplit(".", 1)
        return RowFile(parts[-2], attempt, status)
    return RowFile(name, None, None)


def collected_files(store: Store, sweep_id: str, versions: dict[str, str]) -> set[str]:
    """The row files an earlier collect read as rows, unchanged since (`versions`: the
    current listing); empty without a readable cache."""
    paths = SweepPaths(sweep_id)
    try:
        if not store.exists(paths.collected_rows):
            return set()
        cached = pq.read_table(
            io.BytesIO(store.read_bytes(paths.collected_rows)),
            columns=[FILE_COLUMN, VERSION_COLUMN],
        )
    except Exception:  # a torn or foreign cache: every ok file is read instead
        return set()
    files, file_versions = (cached.column(c).to_pylist() for c in (FILE_COLUMN, VERSION_COLUMN))
    return {f for f, v in zip(files, file_versions, strict=True) if versions.get(f) == v}
