"""The Python heap while a cell measures: frozen after loading, its collections counted.

Why freeze: CPython's full (generation 2) collection walks every tracked object. After torch,
transformers and a model are loaded that is ~400,000 objects, and on a 2-core VM each full
collection paused the process for 30-146 ms (6 of them over one bert_tiny cell, loading
included). A
pause stalls every request in flight and, in an open loop, queues every arrival behind it:
a P99 then counts how many collections its window happened to catch, which is the harness's
heap, not the engine's serving. So after loading (and before warmup) the heap is collected
once and frozen (`gc.freeze()`: the objects that exist move to a permanent generation that
collections skip), as vLLM's engine core does after its own start-up. Garbage made while
serving is still collected, and every collection inside the measured window is counted in
the row (`gc_collections`, `gc_full_collections`, `gc_pause_ms_total`, `gc_pause_ms_max`), so
a pause that remains is seen, not hidden.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

from bench.measure.telemetry import inside


def freeze_loaded_heap() -> int:
    """Collect once, then move every object that survives to the permanent generation.
    Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def thaw() -> None:
    """Undo freeze_loaded_heap: the frozen objects become collectable again."""
    gc.unfreeze()


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
