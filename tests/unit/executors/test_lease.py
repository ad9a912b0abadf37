"""One owner per cell: taking, refusing, taking over a stale lease, releasing only one's own."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time

import pytest

from bench.executors import lease
from bench.executors.aws_batch import AwsBatchExecutor
from bench.executors.local import LocalExecutor
from bench.executors.slurm import SlurmExecutor
from bench.store import LocalStore, StoreError, SweepPaths


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(str(tmp_path))


def _write_lease(store: LocalStore, holder: lease.Lease) -> None:
    store.write_bytes(SweepPaths("s").lease("c"), holder.to_bytes())


def test_a_held_lease_refuses_a_second_attempt(store):
    first = lease.acquire(store, "s", "c", "a1", 60)
    assert first.attempt == "a1"
    with pytest.raises(lease.CellBusy, match="cell c is being measured by attempt a1"):
        lease.acquire(store, "s", "c", "a2", 60)


def test_release_gives_back_only_ones_own(store):
    lease.acquire(store, "s", "c", "a1", 60)
    lease.release(store, "s", "c", "a2")  # not a2's: stays
    assert lease.holder_of(store, "s", "c").attempt == "a1"
    lease.release(store, "s", "c", "a1")
    assert lease.holder_of(store, "s", "c") is None
    assert lease.acquire(store, "s", "c", "a2", 60).attempt == "a2"


def test_an_expired_lease_is_taken_over(store):
    now = time.time()
    _write_lease(store, lease.Lease("old", "elsewhere", 1, now - 100, now - 1))
    assert lease.acquire(store, "s", "c", "new", 60).attempt == "new"


def test_a_lease_whose_process_is_gone_is_taken_over(store):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    now = time.time()
    gone = lease.Lease("old", socket.gethostname(), int(dead.stdout), now, now + 3600)
    _write_lease(store, gone)
    assert gone.stale_reason(now) == f"process {gone.pid} on {gone.host} is gone"
    assert lease.acquire(store, "s", "c", "new", 60).attempt == "new"


def test_a_live_lease_on_another_host_is_respected_until_it_expires(store):
    now = time.time()
    _write_lease(store, lease.Lease("batch-7", "ip-10-0-0-1", 1, now, now + 3600))
    with pytest.raises(lease.CellBusy):
        lease.acquire(store, "s", "c", "new", 60)


def test_a_torn_lease_file_is_taken_over(store):
    store.write_bytes(SweepPaths("s").lease("c"), b"{not json")
    assert lease.acquire(store, "s", "c", "new", 60).attempt == "new"


def test_of_many_takers_of_one_stale_lease_exactly_one_wins(store):
    now = time.time()
    _write_lease(store, lease.Lease("old", "elsewhere", 1, now - 100, now - 1))
    winners, start = [], threading.Barrier(8)

    def take(name: str) -> None:
        start.wait()
        with contextlib.suppress(lease.CellBusy):
            winners.append(lease.acquire(store, "s", "c", name, 60).attempt)

    takers = [threading.Thread(target=take, args=(f"t{i}",)) for i in range(8)]
    for t in takers:
        t.start()
    for t in takers:
        t.join()
    assert len(winners) == 1
    assert lease.holder_of(store, "s", "c").attempt == winners[0]


def test_lease_lasts_the_executors_attempt_limit_plus_a_margin():
    # each executor names its own limit, from its typed options
    limits = {
        "local": LocalExecutor({"timeout_s": 30}),
        "aws_batch": AwsBatchExecutor({"attempt_duration_s": 3600}),
        "slurm": SlurmExecutor({"time_limit_s": 600}),
    }
    assert {name: e.attempt_limit_s for name, e in limits.items()} == {
        "local": 30.0,
        "aws_batch": 3600.0,
        "slurm": 600.0,
    }
    assert lease.lease_seconds(30.0) == 30 + lease.MARGIN_S
    assert lease.lease_seconds(None) == lease.DEFAULT_LIMIT_S + lease.MARGIN_S


def test_holders_lists_only_live_leases(store):
    lease.acquire(store, "s", "live", "a1", 60)
    now = time.time()
    expired = lease.Lease("old", "elsewhere", 1, now - 100, now - 1)
    store.write_bytes(SweepPaths("s").lease("gone"), expired.to_bytes())
    assert [(cell, h.attempt) for cell, h in lease.holders(store, "s")] == [("live", "a1")]


class StoreGone(LocalStore):
    """A store that stopped answering after the lease was taken: reads (or, with
    `deletes_only`, only deletes) fail as an S3 outage past the retry budget does."""

    deletes_only = False

    def read_bytes(self, rel: str) -> bytes:
        if self.deletes_only:
            return super().read_bytes(rel)
        raise StoreError(f"read {self.uri(rel)}: S3 endpoint unreachable (ConnectionClosedError)")

    def delete(self, rel: str) -> None:
        raise OSError(30, "Read-only file system")


@pytest.mark.parametrize("deletes_only", [False, True])
def test_release_with_the_store_gone_leaves_the_lease_to_expire_in_one_line(
    tmp_path, capsys, deletes_only
):
    """Issue 33 item 12: giving a lease back is best effort. A store that does not answer
    raised out of `release` (a traceback from every finally that gives a lease back); the
    lease expires on its own, so one line says so and the caller goes on."""
    lease.acquire(LocalStore(str(tmp_path)), "s", "c", "a1", 60)
    gone = StoreGone(str(tmp_path))
    gone.deletes_only = deletes_only
    lease.release(gone, "s", "c", "a1")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "lease of cell c not given back" in lines[0] and "expires on its own" in lines[0]
    assert ("unreachable" if not deletes_only else "Read-only file system") in lines[0]
    assert lease.holder_of(LocalStore(str(tmp_path)), "s", "c").attempt == "a1"  # still there
