"""What every results store is (results.store for the local folder and open_store, results.s3
for S3): files under a root URI addressed by relative paths, atomic writes, compare-and-swap
replaces. A module of its own so that a store implementation imports the interface, not the
module that picks among implementations.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod

import pyarrow as pa
import pyarrow.parquet as pq


class StoreError(RuntimeError):
    """The store cannot be used (missing bucket, access denied, unreachable endpoint ...)."""


class Store(ABC):
    """Files under a root URI, addressed by paths relative to it."""

    root_uri: str  # what open_store() was given, normalised: rebuilds the same store
    io_threads: int = 1  # concurrent reads worth issuing (remote stores hide latency)

    def scan_options(self) -> dict[str, str] | None:
        """What a Parquet scanner (polars) needs to read this store's URIs itself; None: the
        URIs are local paths."""
        return None

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
    def folders(self) -> list[str]:
        """Names of the folders directly under the root (the sweeps, and anything else)."""

    def list_tree(self, rel_dir: str, suffix: str = "") -> list[str]:
        """Paths of every file under `rel_dir`, in subfolders too, ending in suffix."""
        return sorted(self.list_versions(rel_dir, suffix))

    @abstractmethod
    def list_versions(self, rel_dir: str, suffix: str = "") -> dict[str, str]:
        """Every file under `rel_dir` (subfolders too) ending in suffix, with a version that
        changes whenever the file is written (size and modification time; S3: size and ETag)."""

    def has_files(self, rel_dir: str, suffix: str = "") -> bool:
        """Whether any file under `rel_dir` ends in suffix (stops at the first)."""
        return bool(self.list_versions(rel_dir, suffix))

    @abstractmethod
    def delete(self, rel: str) -> None: ...

    @abstractmethod
    def create(self, rel: str, data: bytes) -> bool:
        """Write `data` only where nothing is yet (atomically); False when something is."""

    @abstractmethod
    def read_versioned(self, rel: str) -> tuple[bytes, str]:
        """(bytes, version token); FileNotFoundError when there is none."""

    @abstractmethod
    def replace_if(self, rel: str, data: bytes, version: str) -> bool:
        """Write `data` only if the object is still at `version`; False when it is not."""

    def check(self, writing: bool = True) -> None:
        """Raise StoreError, in one line, when the store cannot be used at all (or, `writing`,
        cannot be written: a read-only folder is still fine to read)."""

    def write_table(self, rel: str, table: pa.Table, compression: str = "zstd") -> None:
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression=compression)
        self.write_bytes(rel, buffer.getvalue())

    def read_table(self, rel: str) -> pa.Table:
        # A zero-copy buffer and no per-file thread pool: for the small files a sweep is made
        # of this halves decode time (parallelism comes from the collector's processes).
        return pq.ParquetFile(pa.BufferReader(self.read_bytes(rel))).read(use_threads=False)
