"""Calibration engines: they load no model, so what they measure is the load generator itself.

`null` returns at once: its latency is the harness's own cost per timed request.
`sleep` takes a service time per request drawn from a known distribution (fixed: the measured
latency and throughput must come out at service_ms and threads x batch_size / service_ms),
optionally behind a concurrency limit, a bounded waiting line and an injected slowdown.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from bench.config.checks import ConfigError
from bench.config.schema import CellConfig
from bench.engines.base import ALL_TASKS, ANY_PRECISION, BOTH_DEVICES, Capability, Engine, LoadInfo


class NullEngine(Engine):
    name = "null"
    # inputs cost it nothing: any workload runs, and the measurement is the harness's own
    capability = Capability(ANY_PRECISION, BOTH_DEVICES, tasks=ALL_TASKS, varied_inputs=True)

    def load(self) -> LoadInfo:
        return LoadInfo(device="cpu")

    def make_batch(self) -> Any:
        return None

    def infer(self, batch: Any) -> Any:
        return batch

    def generate(self, batch: Any, new_tokens: int) -> Any:
        return batch

    def outputs(self, batch: Any, new_tokens: int) -> dict[str, Any]:
        raise NotImplementedError(f"engine {self.name} runs no model: no outputs to compare")


DISTRIBUTIONS = ("fixed", "lognormal", "exponential")


class Overloaded(RuntimeError):
    """The sleep engine refused a request: its waiting line was full (a server's 503)."""


@dataclass(frozen=True)
class SleepOptions:
    service_ms: float = 5.0  # fixed: each request's time; lognormal: the median; exponential: mean
    distribution: str = "fixed"  # fixed | lognormal | exponential
    sigma: float = 0.5  # lognormal shape (the log's standard deviation)
    max_concurrency: int = 0  # requests served at once; more wait for a slot (0 = no limit)
    max_waiting: int = -1  # a request finding this many waiting is refused (-1 = no limit)
    slowdown_after: int = 0  # after this many requests (warmup included) ... (0 = never)
    slowdown_factor: float = 1.0  # ... every service time is multiplied by this
    mpi_ranks: int = 1  # > 1: the cell runs as this many ranks under mpirun, in lockstep (each
    # follower sleeps too); calibrates the launch and the per-request cost of the group


class SleepEngine(Engine):
    """A server with a known service-time distribution and, optionally, a known concurrency
    limit and an injected slowdown: the ground truth the measurement tests check against."""

    name = "sleep"
    Options = SleepOptions
    capability = NullEngine.capability

    @classmethod
    def validate(cls, options: SleepOptions) -> None:
        def check(key: str, ok: bool, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"engine.{key}", getattr(options, key), allowed)

        positive = "must be a finite number > 0"
        check("service_ms", math.isfinite(options.service_ms) and options.service_ms > 0, positive)
        check(
            "distribution",
            options.distribution in DISTRIBUTIONS,
            "allowed: " + ", ".join(DISTRIBUTIONS),
        )
        check("sigma", math.isfinite(options.sigma) and options.sigma > 0, positive)
        check("max_concurrency", options.max_concurrency >= 0, "must be >= 0 (0: no limit)")
        check("max_waiting", options.max_waiting >= -1, "must be >= -1 (-1: no limit)")
        check(
            "max_waiting",
            options.max_waiting == -1 or options.max_concurrency > 0,
            "a waiting line needs engine.max_concurrency > 0",
        )
        check("slowdown_after", options.slowdown_after >= 0, "must be >= 0 (0: never)")
        check("mpi_ranks", 1 <= options.mpi_ranks <= 64, "must be from 1 to 64")
        ok = math.isfinite(options.slowdown_factor) and options.slowdown_factor > 0
        check("slowdown_factor", ok, positive)

    @classmethod
    def mpi_ranks(cls, cell: CellConfig) -> int:
        return cls.options_of(cell.engine.options).mpi_ranks

    @classmethod
    def host_reason(cls, cell: CellConfig) -> str | None:
        from bench.engines.mpi import mpirun_reason

        return mpirun_reason(cls.mpi_ranks(cell))

    @staticmethod
    def true_quantile_ms(options: SleepOptions, q: float) -> float:
        """The q-quantile of the service time the engine draws (0 < q < 1)."""
        if options.distribution == "lognormal":
            return options.service_ms * math.exp(options.sigma * NormalDist().inv_cdf(q))
        if options.distribution == "exponential":
            return -options.service_ms * math.log1p(-q)
        return options.service_ms

    def load(self) -> LoadInfo:
        self._rng = np.random.default_rng(self.cell.seed + self.cell.repeat)
        self._lock = threading.Lock()
        self._served = 0
        self._in_service = 0
        self._line: deque[threading.Event] = deque()  # waiting requests, first come first served
        return LoadInfo(device="cpu")

    def make_batch(self) -> Any:
        return None

    def _service_s(self) -> float:
        o = self.options
        with self._lock:  # numpy generators are not thread-safe
            self._served += 1
            if o.distribution == "lognormal":
                ms = o.service_ms * math.exp(o.sigma * self._rng.standard_normal())
            elif o.distribution == "exponential":
                ms = self._rng.exponential(o.service_ms)
            else:
                ms = o.service_ms
            slow = o.slowdown_after and self._served > o.slowdown_after
        return ms * (o.slowdown_factor if slow else 1.0) / 1000.0

    def _enter(self) -> None:
        """Take a service slot, waiting in line (FIFO) when all are busy, or be refused."""
        with self._lock:
            if self._in_service < self.options.max_concurrency and not self._line:
                self._in_service += 1
                return
            if 0 <= self.options.max_waiting <= len(self._line):
                raise Overloaded(f"{len(self._line)} requests already waiting")
            turn = threading.Event()
            self._line.append(turn)
        turn.wait()  # the leaving request hands its slot straight to the head of the line

    def _leave(self) -> None:
        with self._lock:
            if self._line:
                self._line.popleft().set()
            else:
                self._in_service -= 1

    def outputs(self, batch: Any, new_tokens: int) -> dict[str, Any]:
        raise NotImplementedError(f"engine {self.name} runs no model: no outputs to compare")

    def infer(self, batch: Any) -> Any:
        seconds = self._service_s()
        if not self.options.max_concurrency:
            time.sleep(seconds)  # releases the GIL: concurrent requests overlap
            return batch
        self._enter()
        try:
            time.sleep(seconds)
        finally:
            self._leave()
        return batch

    def generate(self, batch: Any, new_tokens: int) -> Any:
        return self.infer(batch)
