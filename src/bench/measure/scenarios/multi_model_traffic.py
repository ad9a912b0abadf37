"""multi_model's requests: which model each one goes to (uniform or Zipf over the model names,
from a seeded generator), and the call that routes it there through the pool of loaded models
(bench.measure.scenarios.multi_model_pool), behind the serving process's one gate."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.engines.base import Engine
from bench.measure.admission import Admission
from bench.measure.loadgen import Settled
from bench.measure.scenarios.base import Traffic
from bench.measure.scenarios.multi_model_pool import ModelPool

DISTRIBUTIONS = ("uniform", "zipf")
DRAW_CHUNK = 4096  # draws made at once: a numpy call per request would cost more than a copy


def model_shares(models: int, distribution: str, zipf_s: float) -> np.ndarray:
    """The share of requests each model name gets: equal (the seed's random.randint over its
    model count), or Zipf's law over ranks 1..models (share of rank k ~ k^-s), model 0 the
    most popular."""
    if distribution == "uniform":
        return np.full(models, 1.0 / models)
    weights = np.arange(1, models + 1, dtype=np.float64) ** -zipf_s
    return weights / weights.sum()


class ModelChooser:
    """The model each request goes to. The draws come from one seeded generator in order, so
    the k-th request drawn goes to the same model in every run, whichever client drew it."""

    def __init__(self, shares: np.ndarray, seed: tuple[int, ...]) -> None:
        self.shares = shares
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()
        self.ready: list[int] = []

    def __call__(self) -> int:
        with self.lock:  # numpy generators are not thread-safe
            if not self.ready:
                drawn = self.rng.choice(self.shares.size, size=DRAW_CHUNK, p=self.shares)
                self.ready = drawn.tolist()[::-1]  # popped from the end, in drawn order
            return self.ready.pop()


@dataclass
class Routed:
    """One request: its model, the workload's draw, and whether it met its model loaded."""

    model: int
    drawn: Any  # what the cell's Traffic drew (inputs, batch)
    cold: int = -1  # 1: loaded its model or waited for that load; 0: found it loaded;
    # -1: never reached the pool (refused or timed out at the gate)


def call_model(engine: Engine, traffic: Traffic, drawn: Any) -> Any:
    """Traffic's call, on `engine` (one of the pool's models) rather than the cell's own."""
    inputs, batch = drawn
    if traffic.generates:  # an in-process batch generates its longest asked length
        return engine.generate_timed(batch, max(inputs.output_lens))
    engine.infer(batch)
    return None


class ToModels:
    """loadgen's Request, sent to a random model: the workload's inputs and the model are
    drawn outside the timed bracket; the call waits for a worker (one gate for the whole
    serving process: every model shares its workers and line), takes its model from the pool
    (loading it, and evicting the least recently used, when it is not loaded), runs and
    synchronises it."""

    def __init__(
        self, traffic: Traffic, pool: ModelPool, chooser: ModelChooser, gate: Admission | None
    ) -> None:
        self.traffic, self.pool, self.chooser, self.gate = traffic, pool, chooser, gate

    def draw(self, client: int, arrival: int) -> Routed:
        return Routed(self.chooser(), self.traffic.draw(client, arrival))

    def serve(self, routed: Routed) -> Any:
        engine, cold = self.pool.acquire(routed.model)
        routed.cold = int(cold)
        try:
            raw = call_model(engine, self.traffic, routed.drawn)
            engine.synchronize()  # before release: an evicted model's work must be done
        finally:
            self.pool.release(routed.model)
        return raw

    def __call__(self, routed: Routed) -> Any:
        if self.gate is not None:  # serve() has synchronised: nothing left for the gate's
            return self.gate.run(lambda: self.serve(routed), _nothing)
        return self.serve(routed)

    def settle(self, client: int, routed: Routed, raw: Any) -> Settled:
        return self.traffic.settle(client, routed.drawn, raw)

    def failed(self, client: int, routed: Routed) -> None:
        self.traffic.failed(client, routed.drawn)


def _nothing() -> None:
    pass
