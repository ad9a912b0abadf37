"""The store: a root URI (a local folder or s3://bucket/prefix), where each of a sweep's files
lives under it, and atomic writes that never overwrite an attempt's file. The bottom layer
above config: it knows files, not what a row means (bench.row)."""

from bench.store.base import Store, StoreError
from bench.store.local import LocalStore
from bench.store.paths import RowFile, SweepPaths, manifest_json, row_file
from bench.store.uri import open_store

__all__ = [
    "LocalStore",
    "RowFile",
    "Store",
    "StoreError",
    "SweepPaths",
    "manifest_json",
    "open_store",
    "row_file",
]
