"""An in-process engine as a server with limits: a per-request timeout and a bounded waiting
line, so a load test of a real model finds its first failed request the way seed 003's
endpoint tests do (requests that time out or are refused once the server is saturated).

- `server_workers` W: at most W requests run at once; the rest wait their turn.
- `max_waiting` Q: a request that finds W running and Q already waiting is refused at once
  (an HTTP server's 503); unset, the line is unbounded.
- `request_timeout_s` T: a request whose wait plus service passed T failed, as a client with
  that timeout would see it (the engine still finishes the call: an in-process model cannot
  be interrupted, so the client's clock is what fails, as when a client hangs up on a server
  that keeps working).

Failures raise, and the load generator records them as failed requests (loadgen's
`tolerate_errors`): they are counted per ramp stage and in the row's `errors`, and excluded
from latency percentiles.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeVar

from bench.config.schema import ScenarioConfig

Request = Callable[[], Sequence[int] | None]
T = TypeVar("T")


class RequestRefused(RuntimeError):
    """The waiting line was full."""


class RequestTimedOut(RuntimeError):
    """Wait plus service took longer than the request timeout."""


def limits_set(scenario: ScenarioConfig) -> bool:
    return any(
        value is not None
        for value in (scenario.request_timeout_s, scenario.server_workers, scenario.max_waiting)
    )


class Admission:
    """The server's gate: workers, the waiting line and the timeout of one cell's engine.

    The line is first come, first served, as a server's queue is: a finished request hands
    its worker to the longest-waiting one (a plain semaphore lets the thread that just
    released it take it again, starving the others past any timeout)."""

    def __init__(
        self, workers: int | None, max_waiting: int | None, timeout_s: float | None
    ) -> None:
        self.workers = workers
        self.max_waiting = max_waiting
        self.timeout_ns = int(timeout_s * 1e9) if timeout_s else None
        self.lock = threading.Lock()
        self.busy = 0
        self.line: deque[threading.Event] = deque()

    @classmethod
    def of(cls, scenario: ScenarioConfig) -> Admission:
        return cls(scenario.server_workers, scenario.max_waiting, scenario.request_timeout_s)

    def _enter(self, started_ns: int) -> None:
        """Take a worker, waiting in line if all are busy; raise when refused or timed out."""
        if self.workers is None:
            return
        with self.lock:
            if self.busy < self.workers and not self.line:
                self.busy += 1
                return
            if self.max_waiting is not None and len(self.line) >= self.max_waiting:
                raise RequestRefused(f"{len(self.line)} requests already waiting (max_waiting)")
            turn = threading.Event()
            self.line.append(turn)
        left_s = None
        if self.timeout_ns is not None:
            left_s = max(0.0, (self.timeout_ns - (time.perf_counter_ns() - started_ns)) / 1e9)
        if turn.wait(left_s):
            return
        with self.lock:
            if turn.is_set():  # handed a worker just as the wait ran out: take it
                return
            self.line.remove(turn)
        raise RequestTimedOut("request_timeout_s passed while waiting for a worker")

    def _leave(self) -> None:
        """Hand the worker to the first in line, or free it."""
        if self.workers is None:
            return
        with self.lock:
            if self.line:
                self.line.popleft().set()
            else:
                self.busy -= 1

    def run(self, call: Callable[[], T], sync: Callable[[], None]) -> T:
        """`call()` behind the gate. It synchronises the device itself, so that a worker is
        busy, and the timeout runs, until the result is complete."""
        started = time.perf_counter_ns()
        self._enter(started)
        try:
            result = call()
            sync()
        finally:
            self._leave()
        if self.timeout_ns is not None and time.perf_counter_ns() - started > self.timeout_ns:
            raise RequestTimedOut("wait + service took longer than request_timeout_s")
        return result

    def wrap(self, request: Request, sync: Callable[[], None]) -> Request:
        """`request` (a plain callable) behind the gate."""
        return lambda: self.run(request, sync)
