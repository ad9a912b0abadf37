"""multi_model's models in one serving process, as a SageMaker multi-model endpoint holds
them: `fill` loads distinct models one at a time, measuring the memory each takes, until one
more would pass the memory limit; `ModelPool` then serves them, loading a model on its first
request and evicting the least recently used one when no slot is free."""

from __future__ import annotations

import math
import mmap
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench.engines.base import Engine
from bench.engines.device_memory import MIB, DeviceMemory, host_available_mb, process_anon_mb

# The finest step a memory reading moves by (RssAnon counts pages): a model measured under it
# took no memory the readings can see.
PAGE_MB = mmap.PAGESIZE / MIB


def load_model(engine: Engine) -> float:
    """Load `engine`'s weights (prepared already) and make them its own; the seconds it took.
    What a multi-model endpoint does on a model's first request."""
    started = time.perf_counter()
    engine.load()
    engine.initialize()
    engine.own_memory()  # CPU: weights mapped from a file another model maps too are cloned
    return time.perf_counter() - started


@dataclass
class Measured:
    """What one model of the fill took."""

    model: int
    load_s: float | None  # None: the cell's own engine, loaded by the runner (the row's load_s)
    memory_mb: float  # device memory it took: in use after it (and its warmup) less before
    used_mb: float  # device memory in use after it
    rss_mb: float  # the process's anonymous memory it took (the device's own on CPU)
    gpu_mb: float | None  # on CUDA, = memory_mb; None on CPU


@dataclass
class Fill:
    engines: dict[int, Engine]  # the models loaded, in load order (least recently used first)
    measured: list[Measured]
    reason: str  # why no further model was loaded
    step_mb: float  # what the next model would take (the largest growth after the first)
    fits: bool  # False when even the first model passed the limit

    def records(self) -> list[dict[str, Any]]:
        return [asdict(m) for m in self.measured]


def _step_mb(measured: list[Measured]) -> float:
    """The next model's size: the largest growth after the first (the first also carries
    one-off costs: kernels' workspaces, lazily imported code), the first's alone."""
    later = [m.memory_mb for m in measured[1:]] or [measured[0].memory_mb]
    return max(later)


def fill(
    first: Engine,
    base: tuple[float, float],
    memory: DeviceMemory,
    limit_mb: float,
    names: int,
    make: Callable[[int], Engine],
    warm: Callable[[Engine], None],
    host_floor_mb: float | None,
) -> Fill:
    """Load models 0, 1, 2, ... (0: `first`, loaded by the runner) until one more, sized as
    the largest measured so far after the first, would take memory in use past `limit_mb`;
    or until every one of `names` model names is loaded (0: no such bound); or, on CPU, the
    host would keep less than `host_floor_mb` available. Each model is warmed (`warm`: its
    first requests allocate what serving needs) before memory is read. A bound from memory
    guards the loop: (limit - base) / the smallest model measured. `base`: the device memory
    and the process's anonymous memory in use before the first model's weights."""
    engines = {0: first}
    base_mb, base_rss_mb = base
    first.own_memory()
    warm(first)
    used = memory.used_mb()
    measured = [_measured(0, None, base_mb, used, memory, base_rss_mb)]
    fits = used <= limit_mb
    reason = "" if fits else f"one model already uses {used:.0f} MiB, past {limit_mb:.0f} MiB"
    try:
        while not reason:
            step = _step_mb(measured)
            smallest = min(m.memory_mb for m in measured)
            bound = math.floor((limit_mb - base_mb) / max(smallest, PAGE_MB))
            if names and len(engines) >= names:
                reason = f"all {names} model names loaded (memory would hold more)"
            elif used + step > limit_mb:
                reason = (
                    f"one more model (~{step:.0f} MiB) would take memory in use from "
                    f"{used:.0f} MiB past the {limit_mb:.0f} MiB limit"
                )
            elif len(engines) >= bound:
                reason = f"the memory bound: {bound} models of at least {smallest:.1f} MiB"
            elif host_floor_mb is not None and host_available_mb() - step < host_floor_mb:
                reason = "the host's available memory would fall below the threshold's margin"
            elif not names and smallest < PAGE_MB:
                raise RuntimeError(
                    f"scenario.models=0 loads models until memory is full, but model "
                    f"{measured[-1].model} took no memory the readings can see "
                    f"({smallest:.3f} MiB): set scenario.models to the model names to serve"
                )
            else:
                model, before, rss_before = len(engines), used, process_anon_mb()
                engines[model] = make(model)
                seconds = load_model(engines[model])
                warm(engines[model])
                used = memory.used_mb()
                measured.append(_measured(model, seconds, before, used, memory, rss_before))
    except BaseException:
        for model, loaded in engines.items():
            if model:  # the runner closes its own engine
                loaded.close()
        raise
    return Fill(engines, measured, reason, _step_mb(measured), fits)


def _measured(
    model: int,
    load_s: float | None,
    before: float,
    used: float,
    memory: DeviceMemory,
    rss_before: float,
) -> Measured:
    growth = used - before
    on_gpu = memory.kind != "cpu"
    rss = process_anon_mb() - rss_before if on_gpu else growth
    return Measured(model, load_s, growth, used, rss, growth if on_gpu else None)


class ModelPool:
    """At most `capacity` models loaded at once. A request takes its model (`acquire`),
    loading it when it is not loaded; a load that needs a slot first closes the least
    recently used model no request is using (waiting while every one is in use). A request
    for a model that another request is loading waits for that load: its latency carries it
    too, so it counts as cold. Loads and evictions are logged with their times."""

    def __init__(
        self,
        engines: dict[int, Engine],
        capacity: int,
        make: Callable[[int], Engine],
    ) -> None:
        self.engines = dict(engines)  # every model made so far, loaded or not
        self.resident: OrderedDict[int, None] = OrderedDict((m, None) for m in engines)
        self.capacity = max(capacity, len(engines), 1)
        self.make = make
        self.loading: set[int] = set()
        self.closing: set[int] = set()
        self.in_use: Counter[int] = Counter()
        self.cond = threading.Condition()
        self.loads: list[tuple[int, int, float]] = []  # (perf_counter_ns, model, load_s)
        self.evictions: list[tuple[int, int]] = []  # (perf_counter_ns, model)

    def acquire(self, model: int) -> tuple[Engine, bool]:
        """`model`'s engine, loaded, held until `release`; and whether the request had to
        load it or wait for its load (a cold start)."""
        waited = False
        with self.cond:
            while True:
                if model in self.resident and model not in self.loading:
                    self.resident.move_to_end(model)
                    self.in_use[model] += 1
                    return self.engines[model], waited
                if model not in self.loading and model not in self.closing:
                    victim = None if len(self.resident) < self.capacity else self._victim()
                    if len(self.resident) < self.capacity or victim is not None:
                        break
                waited = True  # its load (or eviction) is under way, or every model serves
                self.cond.wait()
            if victim is not None:
                del self.resident[victim]
                self.closing.add(victim)
            self.resident[model] = None
            self.loading.add(model)
            engine = self.engines.get(model)
        try:
            if victim is not None:
                self._evict(victim)
            if engine is None:
                engine = self.make(model)
            seconds = load_model(engine)
        except BaseException:
            with self.cond:
                self.resident.pop(model, None)
                self.loading.discard(model)
                self.cond.notify_all()
            raise
        with self.cond:
            self.engines[model] = engine
            self.loading.discard(model)
            self.in_use[model] += 1
            self.loads.append((time.perf_counter_ns(), model, seconds))
            self.cond.notify_all()
        return engine, True

    def _victim(self) -> int | None:
        """The least recently used loaded model no request holds."""
        return next(
            (m for m in self.resident if not self.in_use[m] and m not in self.loading), None
        )

    def _evict(self, victim: int) -> None:
        try:
            self.engines[victim].close()
        finally:
            with self.cond:
                self.closing.discard(victim)
                self.evictions.append((time.perf_counter_ns(), victim))
                self.cond.notify_all()

    def release(self, model: int) -> None:
        with self.cond:
            self.in_use[model] -= 1
            if not self.in_use[model]:  # a load may be waiting for a model to evict
                self.cond.notify_all()

    def loaded(self) -> list[int]:
        """The loaded models, least recently used first."""
        with self.cond:
            return [m for m in self.resident if m not in self.loading]

    def close_all_but(self, keep: int) -> None:
        """Close every model but `keep`, and make sure `keep` is loaded (the runner reads the
        cell's own engine after the scenario: its facts, the quality check)."""
        for model in self.loaded():
            if model != keep:
                self.engines[model].close()
        if keep not in self.resident:
            load_model(self.engines[keep])
        self.resident = OrderedDict({keep: None})
