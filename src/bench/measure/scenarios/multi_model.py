"""multi_model: a SageMaker multi-model endpoint (MME) in one serving process, measured as
seed 003 measured MMEs on GPU. Distinct models are loaded one at a time until one more would
take memory in use past memory_threshold x the device's memory (the seed's 90 %), each one's
own memory measured; then a load test in Locust's form (user stages, the seed's
locust_benchmark_sm.py shape) sends every request to a model drawn at random among `models`
names. A model not loaded is loaded on its request, evicting the least recently used one when
memory holds no more (as an MME does): the row gives those cold starts apart from the warm
requests, with the evictions and the warm hit rate.

Modules: multi_model_pool (the fill and the LRU pool), multi_model_traffic (which model a
request goes to, and the call), multi_model_ramp (the user stages)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from bench.config.checks import ConfigError, choice, int_at_least, non_negative, positive, share
from bench.config.schema import CellConfig, ScenarioConfig
from bench.engines.base import Engine, Unsupported
from bench.engines.device_memory import memory_of, process_anon_mb
from bench.measure.admission import Admission, limits_set
from bench.measure.loadgen import Request
from bench.measure.metrics import nearest_rank_ms
from bench.measure.scenarios.base import Measured, Scenario, Traffic
from bench.measure.scenarios.multi_model_pool import Fill, ModelPool, fill
from bench.measure.scenarios.multi_model_ramp import RampResult, Stage, run_users, stages_of
from bench.measure.scenarios.multi_model_traffic import (
    DISTRIBUTIONS,
    ModelChooser,
    ToModels,
    call_model,
    model_shares,
)

# Seed 003's Locust StagesShape as per-stage lengths (its `duration` is the running total:
# 30, 60, ..., 300, 340 s); conf/scenario/multi_model.yaml says the same
SEED_STAGES: tuple[dict[str, float], ...] = (
    {"users": 10, "spawn_rate": 5, "duration_s": 30},
    *({"users": users, "spawn_rate": 1 if users == 20 else 2, "duration_s": 30}
      for users in range(20, 200, 20)),
    {"users": 200, "spawn_rate": 2, "duration_s": 40},
)  # fmt: skip


@dataclass(frozen=True)
class MultiModelOptions:
    models: int = 0  # distinct model names requests go to; 0 = as many as memory holds
    distribution: str = "uniform"  # uniform | zipf: which model a request goes to
    zipf_s: float = 1.0  # zipf: rank k gets a share ~ k^-s
    memory_threshold: float = 0.9  # share of the device's memory models may fill
    memory_cap_mb: float = 0.0  # > 0: the models may take at most this many MiB together
    distinct_checkpoints: bool = False  # model k built from config with seed + k
    user_stages: tuple[Any, ...] = SEED_STAGES  # ({users, spawn_rate, duration_s}, ...)
    think_min_s: float = 0.05  # each user waits a time drawn uniformly from [min, max] ...
    think_max_s: float = 0.5  # ... after each request (Locust's wait_time = between)


class MultiModel(Scenario):
    name = "multi_model"
    Options = MultiModelOptions
    columns = (
        ("max_models_loaded", pa.int32(), "multi_model: distinct models loaded within memory"),
        ("model_names", pa.int32(), "multi_model: model names the requests went to"),
        ("fill_reason", pa.string(), "multi_model: why no further model was loaded"),
        ("models_memory_base_mb", pa.float64(), "multi_model: memory in use before any, MiB"),
        ("models_memory_used_mb", pa.float64(), "multi_model: memory in use once loaded, MiB"),
        ("models_memory_limit_mb", pa.float64(), "multi_model: memory in use models may reach"),
        ("memory_per_model_mb", pa.float64(), "multi_model: largest growth one model took, MiB"),
        ("models_json", pa.string(), "JSON: multi_model, per model loaded: memory, load_s"),
        ("warm_latency_ms_p50", pa.float64(), "multi_model: the headline stage's warm P50"),
        ("warm_latency_ms_p95", pa.float64(), "multi_model: the headline stage's warm P95"),
        ("warm_latency_ms_p99", pa.float64(), "multi_model: the headline stage's warm P99"),
        ("cold_starts", pa.int32(), "multi_model: measured requests that loaded their model"),
        ("cold_start_ms_p50", pa.float64(), "multi_model: P50 of those (load + inference)"),
        ("cold_start_ms_p99", pa.float64(), "multi_model: P99 of those (load + inference)"),
        ("evictions", pa.int32(), "multi_model: models unloaded to make room, measured parts"),
        ("warm_hit_rate", pa.float64(), "multi_model: share of requests finding their model"),
        ("headline_users", pa.int32(), "multi_model: users of the stage behind the headline"),
        ("first_failure_s", pa.float64(), "multi_model: when the first request failed, s"),
        ("first_failure_users", pa.int32(), "multi_model: users running at the first failure"),
        ("max_users_before_failure", pa.int32(), "multi_model: most users before it (or all)"),
        ("max_rps_without_failure", pa.float64(), "multi_model: best stage without failures"),
        ("user_stages_json", pa.string(), "JSON: multi_model, per user stage: n, P50/95/99 ..."),
        ("users_json", pa.string(), "JSON: multi_model, [seconds, users] at every change"),
        ("model_requests_json", pa.string(), "JSON: multi_model, measured requests per model"),
    )
    options: MultiModelOptions

    @classmethod
    def validate(cls, options: MultiModelOptions) -> None:
        int_at_least("scenario.models", options.models, 0)
        choice("scenario.distribution", options.distribution, DISTRIBUTIONS)
        positive("scenario.zipf_s", options.zipf_s)
        share("scenario.memory_threshold", options.memory_threshold)
        non_negative("scenario.memory_cap_mb", options.memory_cap_mb)
        stages_of("scenario.user_stages", list(options.user_stages))
        non_negative("scenario.think_min_s", options.think_min_s)
        if non_negative("scenario.think_max_s", options.think_max_s) < options.think_min_s:
            raise ConfigError(
                "scenario.think_max_s", options.think_max_s, "must be >= scenario.think_min_s"
            )

    @classmethod
    def check_cell(cls, cell: CellConfig) -> None:
        options = cls.options_of(cell.scenario.options)
        if options.distinct_checkpoints and cell.model.checkpoint:
            raise ConfigError(
                "scenario.distinct_checkpoints",
                True,
                f"model {cell.model.name} has its checkpoint ({cell.model.checkpoint}); "
                "distinct checkpoints are built from config, one seed per model",
            )

    @classmethod
    def seconds(cls, config: ScenarioConfig) -> tuple[float, float]:
        stages = stages_of("scenario.user_stages", list(cls.options_of(config.options).user_stages))
        total = sum(s.duration_s for s in stages)
        return total, total

    @classmethod
    def unsupported_reason(cls, cell: CellConfig) -> str | None:
        if cell.tp_degree > 1:
            return "the multi_model scenario loads whole models in one process; set tp_degree=1"
        return None

    def before_load(self, engine: Engine) -> None:
        # the engine's class says what the cell alone does not (the registry is not imported
        # here: engine modules reach the row schema, which imports the scenarios)
        if engine.remote:
            raise Unsupported(
                f"the multi_model scenario loads and evicts models in this process; engine "
                f"{engine.name} is an endpoint that manages its own"
            )
        if type(engine).mpi_ranks(self.cell) > 1:
            raise Unsupported("the multi_model scenario loads whole models in one process")
        # engines resolve their device when they import: the base is what is in use before
        # the first model's weights
        self.base_mb = memory_of(getattr(engine, "device", "cpu")).used_mb()
        self.base_rss_mb = process_anon_mb()

    def run(self, engine: Engine, request: Request, load_copy: Callable[[], Engine]) -> Measured:
        """Fill memory with distinct models, then run the user stages across them."""
        cell, options, config = self.cell, self.options, self.config
        if not isinstance(request, Traffic):
            raise TypeError("multi_model routes the cell's own requests (a Traffic)")
        traffic = request
        memory = memory_of(getattr(engine, "device", "cpu"))
        limit = options.memory_threshold * memory.total_mb
        if options.memory_cap_mb:
            limit = min(limit, self.base_mb + options.memory_cap_mb)
        host_floor = None
        if memory.kind == "cpu":  # RAM is shared with the host: keep the OOM killer away
            host_floor = (1 - options.memory_threshold) * memory_of("cpu").total_mb

        def make(model: int) -> Engine:
            """Model `model` prepared (its checkpoint on disk), not loaded: an artifact an
            MME has been given."""
            seed = cell.seed + model if options.distinct_checkpoints else cell.seed
            made = type(engine)(dataclasses.replace(cell, seed=seed))
            made.import_libraries()
            made.prepare()
            return made

        def warm(model: Engine) -> None:
            for _ in range(max(1, config.warmup_requests)):
                drawn = traffic.draw(0, -1)
                raw = call_model(model, traffic, drawn)
                model.synchronize()
                traffic.settle(0, drawn, raw)

        base = (self.base_mb, self.base_rss_mb)
        filled = fill(engine, base, memory, limit, options.models, make, warm, host_floor)
        names = options.models or len(filled.engines)
        pool = ModelPool(filled.engines, len(filled.engines), make)
        chooser = ModelChooser(
            model_shares(names, options.distribution, options.zipf_s), (cell.seed, cell.repeat)
        )
        gate = Admission.of(config) if limits_set(config) else None
        stages = stages_of("scenario.user_stages", list(options.user_stages))
        try:
            ramp = run_users(
                ToModels(traffic, pool, chooser, gate),
                lambda: None,  # each request synchronises its own model before releasing it
                stages,
                config.warmup_s,
                (options.think_min_s, options.think_max_s),
                seed=cell.seed + cell.repeat,
                tag=lambda routed: (routed.model, routed.cold),
            )
        finally:
            pool.close_all_but(0)  # the runner reads, then closes, the cell's own engine
        columns = {
            **_fill_columns(filled, self.base_mb, limit, names),
            **_traffic_columns(ramp, stages, pool, names),
        }
        headline = ramp.stages[columns.pop("headline_stage")].measured
        return Measured(headline, [s.measured for s in ramp.stages], columns)


def _fill_columns(filled: Fill, base_mb: float, limit: float, names: int) -> dict[str, Any]:
    return {
        "max_models_loaded": len(filled.engines) if filled.fits else 0,
        "model_names": names,
        "fill_reason": filled.reason,
        "models_memory_base_mb": base_mb,
        "models_memory_used_mb": filled.measured[-1].used_mb,
        "models_memory_limit_mb": limit,
        "memory_per_model_mb": filled.step_mb,
        "models_json": json.dumps(filled.records()),
    }


def _ms(latency_ns: np.ndarray, q: float) -> float | None:
    return nearest_rank_ms(latency_ns, q) if latency_ns.size else None


def _stage_summary(ramp: RampResult, index: int, stage: Stage, pool: ModelPool) -> dict[str, Any]:
    """A stage's figures: its measured part's requests (warm ones for the percentiles)."""
    result = ramp.stages[index]
    measured = result.measured
    latency = measured.done_ns - measured.scheduled_ns
    cold = result.tags[:, 1] == 1
    warm = measured.ok & ~cold
    opened = measured.opened_ns
    closed = opened + int(measured.window_s * 1e9)
    return {
        "users": stage.users,
        "spawn_rate": stage.spawn_rate,
        "duration_s": stage.duration_s,
        "measured_from_s": (opened - ramp.started_ns) / 1e9,
        "sent": result.sent,
        "failed": result.failed,
        "n": measured.n,
        "warm_n": int(warm.sum()),
        "cold_n": int((measured.ok & cold).sum()),
        "p50_ms": _ms(latency[warm], 50),
        "p95_ms": _ms(latency[warm], 95),
        "p99_ms": _ms(latency[warm], 99),
        "cold_p50_ms": _ms(latency[measured.ok & cold], 50),
        "requests_per_s": measured.n / measured.window_s if measured.window_s > 0 else 0.0,
        "evictions": sum(opened <= t < closed for t, _ in pool.evictions),
    }


def _traffic_columns(
    ramp: RampResult, stages: tuple[Stage, ...], pool: ModelPool, names: int
) -> dict[str, Any]:
    """The lifecycle figures over every stage's measured part, the first failure over the
    whole ramp (its warmup too: a failed request is one however early), and the headline."""
    summaries = [_stage_summary(ramp, i, s, pool) for i, s in enumerate(stages)]
    tags = np.concatenate([s.tags for s in ramp.stages])
    ok = np.concatenate([s.measured.ok for s in ramp.stages])
    latency = np.concatenate([s.measured.done_ns - s.measured.scheduled_ns for s in ramp.stages])
    cold, warm = tags[:, 1] == 1, tags[:, 1] == 0
    reached = int(cold.sum() + warm.sum())
    failures = [s.first_failure for s in ramp.stages if s.first_failure is not None]
    first = min(failures) if failures else None
    before = [u for t, u in ramp.trace if first is None or t <= first[0] / 1e9]
    clean = [i for i, s in enumerate(summaries) if not s["failed"] and s["n"]]
    best = max(clean, key=lambda i: summaries[i]["requests_per_s"]) if clean else None
    with_requests = [i for i, s in enumerate(summaries) if s["n"]]
    headline = best if best is not None else (with_requests or [0])[0]
    chosen = summaries[headline]
    return {
        "headline_stage": headline,  # popped by run: which stage the row's figures are
        "warm_latency_ms_p50": chosen["p50_ms"],
        "warm_latency_ms_p95": chosen["p95_ms"],
        "warm_latency_ms_p99": chosen["p99_ms"],
        "cold_starts": int((cold & ok).sum()),
        "cold_start_ms_p50": _ms(latency[cold & ok], 50),
        "cold_start_ms_p99": _ms(latency[cold & ok], 99),
        "evictions": sum(s["evictions"] for s in summaries),
        "warm_hit_rate": float(warm.sum()) / reached if reached else None,
        "headline_users": chosen["users"],
        "first_failure_s": first[0] / 1e9 if first else None,
        "first_failure_users": first[1] if first else None,
        "max_users_before_failure": max(before),
        "max_rps_without_failure": summaries[best]["requests_per_s"] if clean else None,
        "user_stages_json": json.dumps(summaries),
        "users_json": json.dumps([[round(t, 3), u] for t, u in ramp.trace]),
        "model_requests_json": json.dumps(np.bincount(tags[:, 0], minlength=names).tolist()),
    }
