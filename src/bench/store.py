"""The results store: a root URI, paths relative to it, atomic writes.

Layout under the root (see DESIGN.md):
    <sweep_id>/manifest.json
    <sweep_id>/cells/<cell_id>.parquet      one summary row (any status)
    <sweep_id>/samples/<cell_id>.parquet    raw per-request latencies
    <sweep_id>/logs/<cell_id>.log           the cell process's output
    <sweep_id>/aggregated.parquet           collector output

A reader never sees a half-written file: local writes go to a temp file in the same folder
and are renamed into place.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bench.config import ConfigError


class LocalStore:
    """A store rooted at a local folder."""

    def __init__(self, root: str) -> None:
        self.root = Path(root.removeprefix("file://")).expanduser().absolute()

    def uri(self, rel: str) -> str:
        return str(self.root / rel)

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def write_bytes(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read_bytes(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def list(self, rel_dir: str, suffix: str = "") -> list[str]:
        """Paths (relative to the root) of the files directly in `rel_dir` ending in suffix."""
        folder = self.root / rel_dir
        if not folder.is_dir():
            return []
        return sorted(
            f"{rel_dir}/{entry.name}"
            for entry in os.scandir(folder)
            if entry.is_file() and entry.name.endswith(suffix) and not entry.name.startswith(".")
        )

    def delete(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    def write_table(self, rel: str, table: pa.Table) -> None:
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        self.write_bytes(rel, buffer.getvalue())

    def read_table(self, rel: str) -> pa.Table:
        return pq.read_table(io.BytesIO(self.read_bytes(rel)))


Store = LocalStore


def open_store(root: str) -> Store:
    """The store for a root URI: a local folder (plain path or file://)."""
    scheme = root.split("://", 1)[0] if "://" in root else "file"
    if scheme != "file":
        raise ConfigError(
            "store.root", root, "this version writes to a local folder (path or file://) only"
        )
    return LocalStore(root)


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

    def cell(self, cell_id: str) -> str:
        return f"{self.cells_dir}/{cell_id}.parquet"

    def samples(self, cell_id: str) -> str:
        return f"{self.sweep_id}/samples/{cell_id}.parquet"

    def log(self, cell_id: str) -> str:
        return f"{self.sweep_id}/logs/{cell_id}.log"
