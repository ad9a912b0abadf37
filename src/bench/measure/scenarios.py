"""The load scenarios a cell can run (conf/scenario/NAME.yaml), on an engine already loaded.

- latency: the closed loop of `threads` clients (loadgen.run_closed_loop).
- open_loop: Poisson arrivals at rate_per_s, or at load_fraction x the requests/s a short
  closed loop at `threads` concurrency reaches first (that capacity is in the row).
- ramp: one closed-loop stage per concurrency, each warmed up, failures counted rather than
  fatal. The row names the highest concurrency whose stage met the SLA (P99 <= sla_p99_ms, no
  failed request), the first concurrency with a failed request, and the stage with the most
  throughput; its headline figures are those of the SLA stage (the first stage when none met
  it). The ramp stops after the first stage with a failure: later stages only fail more.
- capacity: copies of the model are loaded one at a time, each given memory of its own and
  sent one request, until one more copy would take memory in use past memory_threshold x the
  budget; then the closed loop sends every request to a random copy.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.config.schema import CellConfig, ScenarioConfig
from bench.config.tasks import task_of
from bench.engines.base import Engine
from bench.measure.admission import Admission, limits_set
from bench.measure.device_memory import host_available_mb, memory_of
from bench.measure.loadgen import LoadResult, Request, run_closed_loop, run_open_loop
from bench.measure.metrics import nearest_rank_ms


@dataclass
class Measured:
    headline: LoadResult  # the records the row's latency and throughput columns describe
    stages: list[LoadResult] = field(default_factory=list)  # every stage, for the samples
    columns: dict[str, Any] = field(default_factory=dict)  # scenario-specific row columns


def request_for(engine: Engine, cell: CellConfig) -> Request:
    """One request against `engine`: a forward pass, or a generation that stamps its tokens."""
    batch = engine.make_batch()
    if task_of(cell.model).generates:
        new_tokens = cell.model.new_tokens

        def request() -> Any:
            return engine.generate_timed(batch, new_tokens)
    else:

        def request() -> Any:
            engine.infer(batch)

    if limits_set(cell.scenario) and not engine.remote:  # a server's gate, in-process
        return Admission.of(cell.scenario).wrap(request, engine.synchronize)
    return request


def _fixed_length(scenario: ScenarioConfig, seconds: float) -> ScenarioConfig:
    """A closed loop that runs exactly `seconds` (a ramp stage, a capacity calibration)."""
    return dataclasses.replace(
        scenario, min_requests=1, min_duration_s=seconds, max_duration_s=seconds, ci_target=0.0
    )


def run_open_loop_scenario(cell: CellConfig, engine: Engine, request: Request) -> Measured:
    scenario, columns = cell.scenario, {}
    rate = scenario.rate_per_s
    if not rate:
        probe = run_closed_loop(
            request, engine.synchronize, cell.threads, _fixed_length(scenario, scenario.calibrate_s)
        )
        capacity = probe.n / probe.window_s
        columns["capacity_rps"] = capacity
        rate = capacity * scenario.load_fraction
    seed = cell.seed * 1000 + cell.repeat
    result = run_open_loop(request, engine.synchronize, cell.threads, rate, scenario, seed=seed)
    return Measured(result, [result], columns)


def _stage_summary(concurrency: int, result: LoadResult, sla_ms: float | None) -> dict[str, Any]:
    latency = result.latency_ns
    p99 = nearest_rank_ms(latency, 99) if latency.size else None
    return {
        "concurrency": concurrency,
        "n": result.n,
        "errors": result.errors,
        "p50_ms": nearest_rank_ms(latency, 50) if latency.size else None,
        "p99_ms": p99,
        "requests_per_s": result.n / result.window_s if result.window_s > 0 else 0.0,
        "meets_sla": bool(
            result.errors == 0 and p99 is not None and (sla_ms is None or p99 <= sla_ms)
        ),
    }


def run_ramp(cell: CellConfig, engine: Engine, request: Request) -> Measured:
    scenario = cell.scenario
    stage_config = _fixed_length(scenario, scenario.stage_duration_s)
    results: list[LoadResult] = []
    summaries: list[dict[str, Any]] = []
    for concurrency in scenario.stages:
        result = run_closed_loop(
            request,
            engine.synchronize,
            concurrency,
            stage_config,
            warmup_s=scenario.stage_warmup_s,
            tolerate_errors=True,
        )
        results.append(result)
        summaries.append(_stage_summary(concurrency, result, scenario.sla_p99_ms))
        if result.errors:
            break
    meeting = [i for i, s in enumerate(summaries) if s["meets_sla"]]
    failing = [s["concurrency"] for s in summaries if s["errors"]]
    peak = max(range(len(summaries)), key=lambda i: summaries[i]["requests_per_s"])
    chosen = meeting[-1] if meeting else 0
    headline = results[chosen]
    headline.stop_reason = "first_failure" if failing else "stages_done"
    return Measured(
        headline,
        results,
        {
            "threads": summaries[chosen]["concurrency"],  # the clients behind the headline
            "sla_p99_ms": scenario.sla_p99_ms,
            "sla_concurrency": summaries[meeting[-1]]["concurrency"] if meeting else None,
            "first_failure_concurrency": failing[0] if failing else None,
            "peak_concurrency": summaries[peak]["concurrency"],
            "stages_json": json.dumps(summaries),
        },
    )


def run_capacity(
    cell: CellConfig,
    engine: Engine,
    base_mb: float,
    load_copy: Callable[[], Engine],
    copies: list[Engine],
) -> Measured:
    """Fill memory with copies (appended to `copies` so the caller closes them), then
    serve requests across them all. `engine` is the copy already loaded; `base_mb` was in use
    before it."""
    scenario = cell.scenario
    memory = memory_of(getattr(engine, "device", "cpu"))
    budget = scenario.memory_budget_mb or memory.total_mb
    limit = scenario.memory_threshold * budget
    host_floor = (1 - scenario.memory_threshold) * memory_of("cpu").total_mb

    def settle(copy: Engine) -> float:
        copy.own_memory()
        request_for(copy, cell)()  # the first request allocates what serving needs
        copy.synchronize()
        return memory.used_mb()

    trace = [{"copy": 1, "used_mb": settle(engine)}]
    used, reason = trace[0]["used_mb"], ""
    if used > limit:
        reason = f"one copy already uses {used:.0f} MiB, past {limit:.0f} MiB"
    while not reason:
        step = _copy_size(trace, base_mb, largest=True)
        if len(copies) + 1 >= scenario.max_copies:
            reason = f"max_copies={scenario.max_copies} reached"
        elif used + step > limit:
            reason = (
                f"one more copy (~{step:.0f} MiB) would take {used:.0f} MiB past "
                f"{scenario.memory_threshold:.0%} of {budget:.0f} MiB"
            )
        elif memory.kind == "cpu" and host_available_mb() - step < host_floor:
            reason = "the host's available memory would fall below the threshold's margin"
        else:
            copies.append(load_copy())
            used = settle(copies[-1])
            trace.append({"copy": len(trace) + 1, "used_mb": used})
    fit = [engine, *copies]
    requests = [request_for(copy, cell) for copy in fit]
    chooser = random.Random(cell.seed)

    def any_copy() -> Any:
        return chooser.choice(requests)()  # each request goes to a random copy

    result = run_closed_loop(any_copy, engine.synchronize, cell.threads, scenario)
    return Measured(
        result,
        [result],
        {
            "copies_fit": len(fit) if trace[0]["used_mb"] <= limit else 0,
            "memory_per_copy_mb": _copy_size(trace, base_mb, largest=False),
            "memory_base_mb": base_mb,
            "memory_used_mb": used,
            "memory_budget_mb": budget,
            "memory_threshold": scenario.memory_threshold,
            "capacity_reason": reason,
            "stages_json": json.dumps(trace),
        },
    )


def _copy_size(trace: list[dict[str, Any]], base_mb: float, largest: bool) -> float:
    """What one copy takes, from the growth after each load. The first copy's growth also
    carries one-off costs (the CUDA context, lazily imported modules), so it stands in only
    until a second copy is loaded. `largest` (the stopping rule) takes the biggest later
    growth, as the allocator may have reused freed memory for one of them."""
    deltas = [t["used_mb"] - before for t, before in _steps(trace, base_mb)]
    later = deltas[1:] or deltas
    return float(max(later) if largest else np.median(later))


def _steps(trace: list[dict[str, Any]], base_mb: float) -> list[tuple[dict[str, Any], float]]:
    """Each trace entry with the memory in use before it."""
    before = [base_mb, *(t["used_mb"] for t in trace[:-1])]
    return list(zip(trace, before, strict=True))


def run_scenario(cell: CellConfig, engine: Engine, request: Request) -> Measured:
    """latency, open_loop and ramp (capacity needs the runner's loader: run_capacity)."""
    name = cell.scenario.name
    if name == "open_loop":
        return run_open_loop_scenario(cell, engine, request)
    if name == "ramp":
        return run_ramp(cell, engine, request)
    result = run_closed_loop(
        request,
        engine.synchronize,
        cell.threads,
        cell.scenario,
        # a refused or late request is a result
        tolerate_errors=limits_set(cell.scenario) or engine.remote,
    )
    return Measured(result, [result])
