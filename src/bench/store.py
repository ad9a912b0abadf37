"""The results store: a root URI, paths relative to it, atomic writes.

Layout under the root (see DESIGN.md):
    <sweep_id>/manifest.json
    <sweep_id>/cells/<cell_id>.parquet      one summary row (any status)
    <sweep_id>/samples/<cell_id>.parquet    raw per-request latencies
    <sweep_id>/logs/<cell_id>.log           the cell process's output
    <sweep_id>/aggregated.parquet           collector output

A reader never sees a half-written file: local writes go to a temp file in the same folder
and are renamed into place; S3 writes are one PUT each (bench.s3).
"""

from __future__ import annotations

import io
import os
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bench.config import ConfigError


class StoreError(RuntimeError):
    """The store cannot be used (missing bucket, access denied, unreachable endpoint ...)."""


class Store(ABC):
    """Files under a root URI, addressed by paths relative to it."""

    root_uri: str  # what open_store() was given, normalised: rebuilds the same store
    io_threads: int = 1  # concurrent reads worth issuing (remote stores hide latency)

    @abstractmethod
    def uri(self, rel: str) -> str: ...

    @abstractmethod
    def exists(self, rel: str) -> bool: ...

    @abstractmethod
    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write atomically: readers see the old object, or the whole new one."""

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """The object's bytes; FileNotFoundError when there is none."""

    @abstractmethod
    def list(self, rel_dir: str, suffix: str = "") -> list[str]:
        """Paths (relative to the root) of the files directly in `rel_dir` ending in suffix."""

    @abstractmethod
    def delete(self, rel: str) -> None: ...

    def check(self) -> None:
        """Raise StoreError, in one line, when the store cannot be used at all."""

    def write_table(self, rel: str, table: pa.Table, compression: str = "zstd") -> None:
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression=compression)
        self.write_bytes(rel, buffer.getvalue())

    def read_table(self, rel: str) -> pa.Table:
        # A zero-copy buffer and no per-file thread pool: for the small files a sweep is made
        # of this halves decode time (parallelism comes from the collector's processes).
        return pq.ParquetFile(pa.BufferReader(self.read_bytes(rel))).read(use_threads=False)


class LocalStore(Store):
    """A store rooted at a local folder."""

    def __init__(self, root: str) -> None:
        self.root = Path(root.removeprefix("file://")).expanduser().absolute()
        self.root_uri = str(self.root)

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

    def check(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"store.root={str(self.root)!r} exists and is not a folder")


def open_store(root: str) -> Store:
    """The store for a root URI: a local folder (plain path or file://) or s3://bucket/prefix."""
    scheme = root.split("://", 1)[0] if "://" in root else "file"
    if scheme == "file":
        return LocalStore(root)
    if scheme == "s3":
        from bench.s3 import S3Store

        return S3Store(root)
    raise ConfigError(
        "store.root", root, "allowed: a local folder, file://PATH or s3://BUCKET/prefix"
    )


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
