"""Closed-loop load generator: warmup, then `threads` clients each with one request in flight.

Timing: each request is bracketed by `time.perf_counter_ns()` taken immediately before the
call and immediately after the device synchronise, so a latency is send -> complete result on
the host. Nothing else (bookkeeping, the stop check) is inside that bracket. Client threads
block in the engine (or in a device synchronise); the coordinating thread blocks in `join`:
nothing spins a core while a cell measures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.config import ScenarioConfig


@dataclass
class LoadResult:
    """Per-request timings of the measured window (warmup excluded)."""

    thread: np.ndarray  # int16: which client thread sent the request
    sent_ns: np.ndarray  # int64: send time, ns after the window opened
    latency_ns: np.ndarray  # int64: send -> complete
    window_s: float  # window open (all clients released) -> last completion
    warmup_n: int  # warmup requests issued in total
    stop_reason: str  # targets_met | max_duration

    @property
    def n(self) -> int:
        return int(self.latency_ns.size)


class _Shared:
    """State the client threads share; the counter is touched outside the timed bracket."""

    def __init__(self, scenario: ScenarioConfig) -> None:
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.count = 0
        self.start_ns = 0
        self.stop_reason = "targets_met"
        self.errors: list[BaseException] = []
        self.min_requests = scenario.min_requests
        self.min_ns = int(scenario.min_duration_s * 1e9)
        self.max_ns = int(scenario.max_duration_s * 1e9)

    def open_window(self) -> None:
        self.start_ns = time.perf_counter_ns()

    def record_and_check(self, now_ns: int) -> None:
        with self.lock:
            self.count += 1
            count = self.count
        elapsed = now_ns - self.start_ns
        if elapsed >= self.max_ns:
            self.stop_reason = "max_duration"
            self.stop.set()
        elif count >= self.min_requests and elapsed >= self.min_ns:
            self.stop.set()


def _client(
    tid: int,
    request: Callable[[], object],
    sync: Callable[[], None],
    warmup: int,
    barrier: threading.Barrier,
    shared: _Shared,
    out: list[tuple[int, list[int], list[int]]],
) -> None:
    sent: list[int] = []
    done: list[int] = []
    try:
        for _ in range(warmup):
            request()
            sync()
        barrier.wait()
        clock = time.perf_counter_ns
        while not shared.stop.is_set():
            t0 = clock()
            request()
            sync()
            t1 = clock()
            sent.append(t0)
            done.append(t1)
            shared.record_and_check(t1)
    except threading.BrokenBarrierError:
        return  # another client failed during warmup; its error is reported
    except BaseException as exc:  # surfaced to the caller after join
        shared.errors.append(exc)
        shared.stop.set()
        barrier.abort()
        return
    out.append((tid, sent, done))


def run_closed_loop(
    request: Callable[[], object],
    sync: Callable[[], None],
    threads: int,
    scenario: ScenarioConfig,
) -> LoadResult:
    """Warm up, then measure `threads` closed-loop clients until the stopping rule holds.

    Stops when at least `min_requests` requests have completed and `min_duration_s` has passed,
    or when `max_duration_s` has passed; requests in flight then complete and count.
    """
    shared = _Shared(scenario)
    barrier = threading.Barrier(threads, action=shared.open_window)
    out: list[tuple[int, list[int], list[int]]] = []
    workers = [
        threading.Thread(
            target=_client,
            args=(tid, request, sync, scenario.warmup_requests, barrier, shared, out),
            name=f"bench-client-{tid}",
            daemon=True,
        )
        for tid in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if shared.errors:
        raise shared.errors[0]
    thread = np.concatenate([np.full(len(s), tid, dtype=np.int16) for tid, s, _ in out])
    sent = np.concatenate([np.asarray(s, dtype=np.int64) for _, s, _ in out])
    done = np.concatenate([np.asarray(d, dtype=np.int64) for _, _, d in out])
    order = np.argsort(sent, kind="stable")
    end_ns = int(done.max()) if done.size else shared.start_ns
    return LoadResult(
        thread=thread[order],
        sent_ns=sent[order] - shared.start_ns,
        latency_ns=(done - sent)[order],
        window_s=(end_ns - shared.start_ns) / 1e9,
        warmup_n=scenario.warmup_requests * threads,
        stop_reason=shared.stop_reason,
    )
