"""bench.executors.cell_logs: a cell's output spooled from its first line (inside a local
store's sweep folder, else in this user's cache), moved to `logs/` with secrets masked when the
cell ends, and a spooled log nobody writes any more adopted by the next run; one a process
still holds, or one just created, is left alone."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.config.secrets import MASK
from bench.executors import cell_logs
from bench.store import LocalStore, SweepPaths
from bench.store.s3 import S3Store

SWEEP = "logs-sweep"


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(str(tmp_path / "root"))


def test_a_local_store_spools_in_its_sweeps_hidden_folder(store):
    folder = cell_logs.spool_folder(store, SWEEP)
    assert folder == store.root / SWEEP / "logs" / cell_logs.SPOOL_NAME
    assert store.list(f"{SWEEP}/logs") == []  # hidden from listings


def test_a_remote_store_spools_in_the_users_cache_apart_per_store(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    client = object()  # never used: nothing is sent to spool a log
    one = cell_logs.spool_folder(S3Store("s3://bucket-one/p", client=client), SWEEP)
    two = cell_logs.spool_folder(S3Store("s3://bucket-two/p", client=client), SWEEP)
    assert one.parent.parent == tmp_path / "cache" / "bench" / "cell-logs"
    assert one.name == SWEEP and one.parent != two.parent


def test_a_cells_log_is_kept_under_logs_with_secrets_masked(store):
    path, fd = cell_logs.spool(store, SWEEP, "cell-1", "att-1")
    os.write(fd, b"loading\nerror: 401 Authorization: Bearer sk-live-0123456789\n")
    assert cell_logs._in_use(path)  # our shared lock: a writer holds it
    os.close(fd)
    data = cell_logs.keep(store, SWEEP, path)
    assert b"sk-live-0123456789" not in data and f"Bearer {MASK}".encode() in data
    assert store.read_bytes(SweepPaths(SWEEP).log("cell-1", "att-1")) == data
    assert not path.exists()
    assert not cell_logs.spool_folder(store, SWEEP).exists()  # emptied folders pruned


def test_pruning_stops_at_a_folder_other_cells_still_spool_in(store):
    first, fd1 = cell_logs.spool(store, SWEEP, "cell-1", "a")
    second, fd2 = cell_logs.spool(store, SWEEP, "cell-2", "b")
    for fd in (fd1, fd2):
        os.close(fd)
    cell_logs.keep(store, SWEEP, first)
    assert not first.parent.exists() and second.exists()
    assert cell_logs.spool_folder(store, SWEEP).is_dir()


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_orphans_are_adopted_unless_held_or_just_created(store):
    ended, fd = cell_logs.spool(store, SWEEP, "ended", "a1")
    assert ended.name == "a1.log"
    os.write(fd, b"the last line\n")
    os.close(fd)  # its process is gone
    held, held_fd = cell_logs.spool(store, SWEEP, "running", "a2")  # still written
    fresh, fresh_fd = cell_logs.spool(store, SWEEP, "fresh", "a3")
    os.close(fresh_fd)  # empty and new: its executor may not have locked it yet
    stale_empty, stale_fd = cell_logs.spool(store, SWEEP, "quiet", "a4")
    os.close(stale_fd)
    _age(stale_empty, cell_logs.JUST_CREATED_S + 60)
    try:
        adopted = cell_logs.adopt_orphans(store, SWEEP)
    finally:
        os.close(held_fd)
    assert sorted(p.name for p in adopted) == ["a1.log", "a4.log"]
    assert store.read_bytes(SweepPaths(SWEEP).log("ended", "a1")) == b"the last line\n"
    assert store.read_bytes(SweepPaths(SWEEP).log("quiet", "a4")) == b""
    assert held.exists() and fresh.exists()
    assert cell_logs.adopt_orphans(LocalStore(str(store.root / "elsewhere")), SWEEP) == []


def test_a_log_kept_by_another_run_meanwhile_counts_as_in_use(tmp_path):
    assert cell_logs._in_use(tmp_path / "gone.log")
