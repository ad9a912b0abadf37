"""The store a root URI names: a local folder (plain path or file://) or s3://bucket/prefix."""

from __future__ import annotations

from bench.config.checks import ConfigError
from bench.store.base import Store
from bench.store.local import LocalStore


def open_store(root: str) -> Store:
    """The store for a root URI: a local folder (plain path or file://) or s3://bucket/prefix."""
    if not str(root).strip() or str(root).strip() in ("file://", "s3://"):
        # an empty root would be the current folder: results scattered where the command ran
        raise ConfigError(
            "store.root", root, "give a folder, file://PATH or s3://BUCKET/prefix (not empty)"
        )
    scheme = root.split("://", 1)[0] if "://" in root else "file"
    if scheme == "file":
        return LocalStore(root)
    if scheme == "s3":
        from bench.store.s3 import S3Store

        return S3Store(root)
    raise ConfigError(
        "store.root", root, "allowed: a local folder, file://PATH or s3://BUCKET/prefix"
    )
