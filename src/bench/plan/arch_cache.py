"""What planning reads of a model's architecture through transformers (its exact parameter
count, its layer shape), kept on disk between runs.

Counting builds the model on PyTorch's meta device, and reading a shape goes through
transformers' config: both import torch and transformers, 4 of the 4.5 s that
`plan +grid=bert_g5 executor=aws_batch` took on the 2-core development machine, for the same
few numbers every time. So each figure is worked out once per machine and transformers
release (a release may build a config differently) and read back from
`$XDG_CACHE_HOME/bench/architectures.json` (`~/.cache/bench/...`) after that. The file is a
cache only: unreadable, missing or read-only, the figure is worked out as before.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
CACHE_FILE = "architectures.json"
MAX_ENTRIES = 10_000  # a file that grew past this is started afresh


def cache_path() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "bench" / CACHE_FILE


@functools.cache
def _transformers_version() -> str:
    try:  # the installed distribution's metadata: no import of transformers itself
        return metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return "none"


def entry_key(kind: str, *parts: str) -> str:
    """The cache key of one figure: its kind, what it is read from, the transformers release."""
    text = json.dumps([kind, _transformers_version(), *parts])
    return f"{kind}:{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, entries: dict[str, Any]) -> None:
    """Replace the file at once (a reader never sees half of it); best effort."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".architectures-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(entries, out, sort_keys=True)
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)


def cached(key: str, make: Callable[[], T]) -> T:
    """The figure stored under `key`, else make() stored there (merged into what other
    processes wrote meanwhile)."""
    path = cache_path()
    found = _read(path)
    if key in found:
        return found[key]
    value = make()
    entries = _read(path)
    if len(entries) >= MAX_ENTRIES:
        entries = {}
    entries[key] = value
    _write(path, entries)
    return value
