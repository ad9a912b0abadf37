"""Where a local cell's output goes while it runs, and how it reaches `logs/`.

A cell's output is written, from its first line, to a spool file `<spool>/<cell_id>/<attempt>.log`:
inside a local store's sweep folder (`<sweep_id>/logs/.running/`, hidden from listings), or,
for a remote store, in this user's cache folder (never the system's temp folder, which
nobody reads back). When the cell's process ends, whichever way, the executor moves the file
to `<sweep_id>/logs/<cell_id>/<attempt>.log` (on S3 one PUT). A sweep killed outright leaves
its cell running on as an orphan (its lease keeps others off the cell) and the log in the
spool; the next run of the sweep moves every spooled log that no process holds any more
(`adopt_orphans`: collect may call it too).

Who holds a spooled log: every process writing it keeps a shared flock on it: the executor
from the moment it creates the file, the cell through the executor's descriptor (a fresh
process) or its own (a forked one), and a server the cell started through the stderr it
inherited. An exclusive lock taken without waiting therefore means nobody writes it any more.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path

from bench.config import secrets
from bench.store import LocalStore, Store, SweepPaths
from bench.store.local import file_mode

SPOOL_NAME = ".running"
# A spooled log created this recently and still empty may be one whose executor has not yet
# locked it (create, then lock): left for a later run.
JUST_CREATED_S = 10.0


def spool_folder(store: Store, sweep_id: str) -> Path:
    """Where this sweep's cells write their output while they run."""
    if isinstance(store, LocalStore):
        return store.root / sweep_id / "logs" / SPOOL_NAME
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(store.root_uri.encode()).hexdigest()[:16]
    return cache / "bench" / "cell-logs" / digest / sweep_id


def spool(store: Store, sweep_id: str, cell_id: str, attempt: str) -> tuple[Path, int]:
    """Create a cell's spool file and lock it shared: (its path, our descriptor, which a fresh
    cell process writes through; close it once the log is kept)."""
    path = spool_folder(store, sweep_id) / cell_id / f"{attempt}.log"
    try:
        fd = _create(path)
    except FileNotFoundError:  # its folder pruned, empty, by another run meanwhile: again
        fd = _create(path)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return path, fd


def _create(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file_mode())


def lock_shared(fd: int) -> None:
    """A writer's hold on a spooled log it opened itself (a forked cell)."""
    fcntl.flock(fd, fcntl.LOCK_SH)


def keep(store: Store, sweep_id: str, path: Path) -> bytes:
    """Move a spooled log to `logs/<cell_id>/<attempt>.log`, secrets masked (a server or a
    library may print what the cell's own redacting streams never saw); its bytes."""
    data = secrets.redact(path.read_bytes().decode(errors="replace")).encode()
    attempt = path.name.removesuffix(".log")
    store.write_bytes(SweepPaths(sweep_id).log(path.parent.name, attempt), data)
    path.unlink(missing_ok=True)
    _prune(path.parent, spool_folder(store, sweep_id), isinstance(store, LocalStore))
    return data


def _prune(cell_folder: Path, spool: Path, local: bool) -> None:
    """Remove the spool's folders once empty (a remote store's spool also its store's folder
    in the cache), so that nothing is left where nothing runs."""
    folders = [cell_folder, spool] if local else [cell_folder, spool, spool.parent]
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty: other cells or attempts still spool there
            return


def _in_use(path: Path) -> bool:
    """Whether some process may still write this spooled log."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # kept by another run meanwhile
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        info = os.fstat(fd)
        return info.st_size == 0 and time.time() - info.st_mtime < JUST_CREATED_S
    finally:
        os.close(fd)  # and with it our lock


def adopt_orphans(store: Store, sweep_id: str) -> list[Path]:
    """Move to `logs/` every spooled log of the sweep that no process writes any more (its
    cell was orphaned by a killed sweep, and has ended since); the files it moved."""
    folder = spool_folder(store, sweep_id)
    adopted = []
    for path in sorted(folder.glob("*/*.log")):
        if not _in_use(path):
            keep(store, sweep_id, path)
            adopted.append(path)
    return adopted
