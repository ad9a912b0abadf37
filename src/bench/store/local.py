"""The results store: a root URI, paths relative to it, atomic writes.

Layout under the root (docs/executors.md, "Store layout"):
    <sweep_id>/manifest.json
    <sweep_id>/cells/<cell_id>/<attempt>.<status>.parquet   one row per attempt (any status)
    <sweep_id>/samples/<cell_id>/<attempt>.parquet          its raw per-request latencies
    <sweep_id>/telemetry/<cell_id>/<attempt>.parquet        host and GPU samples of its window
    <sweep_id>/logs/<cell_id>/<attempt>.log                 its process's output
    <sweep_id>/leases/<cell_id>.json                        who measures the cell right now
    <sweep_id>/aggregated.parquet                           collector output
Stores written before attempts had files of their own hold `cells/<cell_id>.parquet`; they
still collect and resume.

A reader never sees a half-written file: local writes go to a file with no name until it is
complete (Linux O_TMPFILE, so a writer killed midway leaves nothing behind), else to a temp
file in the same folder, and are linked or renamed into place (a temp file left by a killed
writer is removed by the sweep's next run: LocalStore.remove_stale_temp); S3 writes are one
PUT each (bench.store.s3). No attempt's file is ever
written over: an attempt writes its own names, and a lease is only created where there is
none or replaced where it is still the one its taker read (compare and swap).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.store.base import Store, StoreError

SWAP_STALE_S = 30.0  # a compare-and-swap marker older than this was left by a killed taker

TEMP_SUFFIX = ".tmp"  # a write's temp file: `.NAME.XXXX.tmp` beside NAME
# What says this system or filesystem cannot write a file unnamed (O_TMPFILE) or name one
# through /proc: the write falls back to a named temp file.
_NO_UNNAMED_FILES = frozenset(
    {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT, errno.EXDEV, errno.ENOSYS}
)

_UMASK: list[int] = []
_UMASK_LOCK = threading.Lock()


def file_mode() -> int:
    """The mode a plain `open()` would give a new file (0644 under umask 022): temp files
    start at 0600, which would keep a team's shared results folder from its readers."""
    with _UMASK_LOCK:
        if not _UMASK:
            mask = os.umask(0o022)  # the only portable way to read it is to set it
            os.umask(mask)
            _UMASK.append(mask)
    return 0o666 & ~_UMASK[0]


class LocalStore(Store):
    """A store rooted at a local folder."""

    def __init__(self, root: str) -> None:
        self.root = Path(root.removeprefix("file://")).expanduser().absolute()
        self.root_uri = str(self.root)

    def uri(self, rel: str) -> str:
        # a string join, not pathlib: the collector asks for 10,000 of these
        return f"{self.root_uri}/{rel}" if rel else self.root_uri

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def _staged(self, path: Path, data: bytes) -> str:
        """A complete temp file beside `path` holding `data`, with the user's file mode."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), file_mode())
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return tmp

    def _write_unnamed(self, path: Path, data: bytes, replace: bool) -> bool | None:
        """Write through a file that has no name until it is complete (Linux O_TMPFILE), so a
        process killed while the bytes land leaves nothing behind. It is named `path` where
        nothing is (True); where something is: False when not `replace`, else it is named
        beside `path` and renamed over it (that name lives for two system calls; a kill
        between them leaves a temp file that the sweep's next run removes). None: this
        system or filesystem has no such files, and nothing was written."""
        flag = getattr(os, "O_TMPFILE", 0)
        if not flag:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                fd = os.open(".", flag | os.O_WRONLY, file_mode(), dir_fd=folder)
            except OSError as exc:
                if exc.errno in _NO_UNNAMED_FILES:
                    return None
                raise
            try:
                with os.fdopen(fd, "wb", closefd=False) as handle:
                    handle.write(data)
                os.fsync(fd)
                return _name_unnamed(fd, folder, path, replace)
            finally:
                os.close(fd)
        finally:
            os.close(folder)

    def _unwritable(self, rel: str, exc: OSError) -> StoreError:
        """A full disk, a read-only folder ...: one line naming the file and the reason."""
        return StoreError(f"cannot write {self.root / rel}: {exc.strerror or exc}")

    def write_bytes(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        try:
            if self._write_unnamed(path, data, replace=True) is not None:
                return
            tmp = self._staged(path, data)
            try:
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise self._unwritable(rel, exc) from exc

    def create(self, rel: str, data: bytes) -> bool:
        path = self.root / rel
        try:
            if (made := self._write_unnamed(path, data, replace=False)) is not None:
                return made
            tmp = self._staged(path, data)
        except OSError as exc:
            raise self._unwritable(rel, exc) from exc
        try:
            os.link(tmp, path)  # atomic, and fails where a file is: the exclusive create
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise self._unwritable(rel, exc) from exc
        finally:
            Path(tmp).unlink(missing_ok=True)

    def remove_stale_temp(self, rel_dir: str, older_than_s: float) -> list[str]:
        """Remove the temp files (`.NAME.XXXX.tmp`) under `rel_dir` older than `older_than_s`
        (a write takes well under a second): left by writers killed before they renamed them
        into place. The paths removed, relative to the root."""
        cutoff = time.time() - older_than_s
        removed = []
        for folder, _, names in os.walk(self.root / rel_dir):
            for name in names:
                if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
                    continue
                path = os.path.join(folder, name)
                with contextlib.suppress(FileNotFoundError):  # its writer finished meanwhile
                    if os.stat(path).st_mtime < cutoff:
                        os.unlink(path)
                        removed.append(os.path.relpath(path, self.root))
        return removed

    def read_versioned(self, rel: str) -> tuple[bytes, str]:
        data = self.read_bytes(rel)
        return data, hashlib.sha256(data).hexdigest()

    def replace_if(self, rel: str, data: bytes, version: str) -> bool:
        # Takers of the same version serialise on an exclusive marker named by it; the one
        # that gets it re-reads before replacing, so a taker that comes later sees the new
        # content and backs off. (A lease's content names its taker, so versions differ.)
        marker = f"{rel}.{version[:16]}.swap"
        if not self.create(marker, b"") and not (
            self._stale_marker(marker) and self.create(marker, b"")
        ):
            return False
        try:
            try:
                _, current = self.read_versioned(rel)
            except FileNotFoundError:
                return False
            if current != version:
                return False
            self.write_bytes(rel, data)
            return True
        finally:
            self.delete(marker)

    def _stale_marker(self, marker: str) -> bool:
        """Remove a swap marker older than SWAP_STALE_S: its taker was killed between taking
        and deleting it (a swap takes milliseconds), and would block that version forever."""
        try:
            age = time.time() - (self.root / marker).stat().st_mtime
        except FileNotFoundError:
            return True  # gone meanwhile: try again
        if age < SWAP_STALE_S:
            return False
        self.delete(marker)
        return True

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

    def folders(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(e.name for e in os.scandir(self.root) if e.is_dir() and e.name[0] != ".")

    def _files(self, rel_dir: str, suffix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(relative path, entry) of every file under rel_dir ending in suffix, hidden names
        skipped. Plain strings and scandir, not pathlib: 10,000 cell folders list in a
        fraction of the time."""
        pending = [(str(self.root / rel_dir), rel_dir.rstrip("/"))]
        while pending:
            folder, rel_folder = pending.pop()
            try:
                entries = list(os.scandir(folder))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                rel = f"{rel_folder}/{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, rel))
                elif entry.name.endswith(suffix) and entry.is_file():
                    yield rel, entry

    def list_versions(self, rel_dir: str, suffix: str = "") -> dict[str, str]:
        found = {}
        for rel, entry in self._files(rel_dir, suffix):
            try:
                info = entry.stat()
            except FileNotFoundError:  # deleted since the folder was listed
                continue
            found[rel] = f"{info.st_size}:{info.st_mtime_ns}"
        return found

    def has_files(self, rel_dir: str, suffix: str = "") -> bool:
        return next(self._files(rel_dir, suffix), None) is not None

    def delete(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    def check(self, writing: bool = True) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"store.root={str(self.root)!r} exists and is not a folder")
        if not writing:
            return
        nearest = next(p for p in (self.root, *self.root.parents) if p.exists())
        if not os.access(nearest, os.W_OK | os.X_OK):
            raise StoreError(f"store.root={str(self.root)!r}: {nearest} is not writable")


def _name_unnamed(fd: int, folder: int, path: Path, replace: bool) -> bool | None:
    """Name the unnamed file `fd` as `path`, whose folder is open as `folder` (see
    LocalStore._write_unnamed)."""
    source = f"/proc/self/fd/{fd}"  # linked with AT_SYMLINK_FOLLOW: the file itself
    try:
        os.link(source, path.name, dst_dir_fd=folder)
        return True
    except FileExistsError:
        if not replace:
            return False
    except OSError as exc:
        if exc.errno in _NO_UNNAMED_FILES:
            return None
        raise
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    os.link(source, tmp.name, dst_dir_fd=folder)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True
