"""One owner per cell at a time: a lease in the store, `<sweep_id>/leases/<cell_id>.json`.

The process that measures a cell (`bench cell`, under any executor) takes the cell's lease
before it loads anything and gives it back after its row is written. Two sweeps of the same
grid, a re-run beside an orphaned child, or a Batch child beside a local run therefore never
measure one cell at the same time: the second finds the lease held and stands down, writing
nothing.

Taking is an exclusive create (a local hard link; an S3 PUT with `If-None-Match: *`). A lease
whose holder is gone can be taken over: one past its expiry (taken_at + the executor's
per-attempt limit, after which the scheduler has killed the holder anyway), or one whose
process no longer exists on this host. Taking over is a compare and swap on the version read
(S3 `If-Match` on the ETag), so of two processes that find the same stale lease one wins.

Giving a lease back is best effort: a store that does not answer (an S3 outage past the retry
budget, a disk gone read-only) leaves it in place, said in one line, and it goes stale on its
own (it expires, and on this host its process is gone), so a resume takes it over. The
caller's own outcome (a row written, the store's error) stands.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass

from bench.store import Store, StoreError, SweepPaths

# A lease lasts the executor's attempt limit (Executor.attempt_limit_s) plus a margin, since
# the scheduler has killed the holder by then; an executor without a limit gets the default.
DEFAULT_LIMIT_S = 3600.0
MARGIN_S = 120.0
TAKE_TRIES = 3  # create, or take over a stale lease: retried when another taker raced us


@dataclass(frozen=True)
class Lease:
    attempt: str
    host: str
    pid: int
    taken_at: float  # seconds since the epoch
    expires_at: float

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Lease | None:
        """The lease in `data`; None when it is not one (a torn or foreign file)."""
        try:
            fields = json.loads(data)
            return cls(
                attempt=str(fields["attempt"]),
                host=str(fields["host"]),
                pid=int(fields["pid"]),
                taken_at=float(fields["taken_at"]),
                expires_at=float(fields["expires_at"]),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def stale_reason(self, now: float) -> str | None:
        """Why this lease no longer protects anything, or None while its holder may run."""
        if now >= self.expires_at:
            return "it expired"
        if self.host == socket.gethostname() and not _process_exists(self.pid):
            return f"process {self.pid} on {self.host} is gone"
        return None

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.taken_at))
        return f"attempt {self.attempt} (pid {self.pid} on {self.host}, since {started})"


class CellBusy(RuntimeError):
    """Another attempt holds the cell's lease."""

    def __init__(self, cell_id: str, holder: Lease | None) -> None:
        self.holder = holder
        who = holder.describe() if holder else "another attempt"
        super().__init__(f"cell {cell_id} is being measured by {who}; not measured again")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def lease_seconds(attempt_limit_s: float | None) -> float:
    """How long a lease lasts: the executor's per-attempt limit (None: the default) plus a
    margin."""
    return (DEFAULT_LIMIT_S if attempt_limit_s is None else attempt_limit_s) + MARGIN_S


def acquire(store: Store, sweep_id: str, cell_id: str, attempt: str, duration_s: float) -> Lease:
    """Take the cell's lease for `attempt`; CellBusy when a live holder has it."""
    rel = SweepPaths(sweep_id).lease(cell_id)
    holder = None
    for _ in range(TAKE_TRIES):
        now = time.time()
        mine = Lease(attempt, socket.gethostname(), os.getpid(), now, now + duration_s)
        if store.create(rel, mine.to_bytes()):
            return mine
        try:
            data, version = store.read_versioned(rel)
        except FileNotFoundError:  # released between our create and our read: try again
            continue
        holder = Lease.from_bytes(data)
        if holder is not None and holder.attempt == attempt:
            return holder  # ours already (a retried call)
        if holder is not None and holder.stale_reason(now) is None:
            raise CellBusy(cell_id, holder)
        if store.replace_if(rel, mine.to_bytes(), version):
            return mine
    raise CellBusy(cell_id, holder)


def release(store: Store, sweep_id: str, cell_id: str, attempt: str) -> None:
    """Give the lease back if `attempt` still holds it (never another attempt's); when the
    store cannot do it, leave the lease to expire and say so in one line (stderr). Called
    from `finally` blocks: raising here would hide why the caller was leaving."""
    rel = SweepPaths(sweep_id).lease(cell_id)
    try:
        _give_back(store, rel, attempt)
    except (StoreError, OSError) as exc:
        print(
            f"lease of cell {cell_id} not given back ({exc}); it expires on its own, and a "
            "resume takes it over once its holder is gone",
            file=sys.stderr,
            flush=True,
        )


def _give_back(store: Store, rel: str, attempt: str) -> None:
    try:
        data = store.read_bytes(rel)
    except FileNotFoundError:
        return
    holder = Lease.from_bytes(data)
    if holder is not None and holder.attempt == attempt:
        store.delete(rel)


def holder_of(store: Store, sweep_id: str, cell_id: str) -> Lease | None:
    """The live holder of a cell's lease, if any (for `bench status`)."""
    try:
        holder = Lease.from_bytes(store.read_bytes(SweepPaths(sweep_id).lease(cell_id)))
    except FileNotFoundError:
        return None
    if holder is None or holder.stale_reason(time.time()) is not None:
        return None
    return holder


def holders(store: Store, sweep_id: str) -> list[tuple[str, Lease]]:
    """(cell_id, holder) of every live lease of the sweep: the cells being measured now."""
    found = []
    for rel in store.list(SweepPaths(sweep_id).leases_dir, ".json"):
        cell_id = rel.rsplit("/", 1)[1].removesuffix(".json")
        if (holder := holder_of(store, sweep_id, cell_id)) is not None:
            found.append((cell_id, holder))
    return found
