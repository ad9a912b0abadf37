"""The Python heap while a cell measures: every garbage collection inside the window counted.

Why count: CPython's full (generation 2) collection walks every tracked object. After torch,
transformers and a model are loaded that is ~400,000 objects, and on a 2-core VM each full
collection paused the process for 30-146 ms (6 of them over one bert_tiny cell, loading
included). A pause stalls every request in flight and, in an open loop, queues every arrival
behind it, so the row says how many collections began inside the measured window and how long
they paused it (`gc_collections`, `gc_full_collections`, `gc_pause_ms_total`,
`gc_pause_ms_max`): a P99 that caught one is seen, not hidden.

Why not freeze the heap after loading (`gc.freeze()`, as vLLM's engine core does): it was
measured and rejected. No full collection fell inside the windows of bert_tiny open loops
either way (P99 unchanged over 3 pairs), and `benchmarks/compare_aa.py` with the freeze called
4 of 72 A/A verdicts a change (5.6 %, twice), against 1 of 72 without it (1.4 %).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

from bench.measure.telemetry import inside


@dataclass
class Collection:
    started_ns: int  # perf_counter_ns, the clock the measured windows are opened on
    pause_ns: int
    generation: int


@dataclass
class CollectionLog:
    """Every collection between start() and stop(), from gc.callbacks."""

    collections: list[Collection] = field(default_factory=list)
    _started_ns: int | None = None

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter_ns()
        if phase == "start":
            self._started_ns = now
        elif self._started_ns is not None:
            self.collections.append(
                Collection(self._started_ns, now - self._started_ns, info["generation"])
            )
            self._started_ns = None

    def start(self) -> CollectionLog:
        gc.callbacks.append(self._callback)
        return self

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def summary(self, windows: list[tuple[int, int]]) -> dict[str, Any]:
        """The row's columns: the collections that began inside a measured window."""
        counted = [c for c in self.collections if inside(c.started_ns, windows)]
        pauses_ms = [c.pause_ns / 1e6 for c in counted]
        return {
            "gc_collections": len(counted),
            "gc_full_collections": sum(c.generation == 2 for c in counted),
            "gc_pause_ms_total": sum(pauses_ms),
            "gc_pause_ms_max": max(pauses_ms, default=0.0),
        }
