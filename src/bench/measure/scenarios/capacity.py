"""capacity: copies of the model are loaded one at a time, each given memory of its own and
sent one request, until one more copy would take memory in use past memory_threshold x the
budget; then the closed loop sends every request to a random copy."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from bench.config.checks import int_at_least, non_negative, share
from bench.config.schema import CellConfig
from bench.engines.base import Engine
from bench.engines.device_memory import host_available_mb, memory_of
from bench.measure.loadgen import Request, Settled, run_closed_loop
from bench.measure.scenarios.base import Measured, Scenario, Traffic, request_for


@dataclass(frozen=True)
class CapacityOptions:
    memory_threshold: float = 0.9  # share of the budget copies may fill
    memory_budget_mb: float = 0.0  # 0 = the device's memory (RAM for CPU cells)
    max_copies: int = 64


class Capacity(Scenario):
    name = "capacity"
    Options = CapacityOptions
    columns = (
        ("copies_fit", pa.int32(), "capacity: model copies loaded within the memory threshold"),
        ("memory_per_copy_mb", pa.float64(), "capacity: median memory one more copy took, MiB"),
        ("memory_base_mb", pa.float64(), "capacity: memory in use before the first copy, MiB"),
        ("memory_used_mb", pa.float64(), "capacity: memory in use with copies_fit copies, MiB"),
        ("memory_budget_mb", pa.float64(), "capacity: the device memory the threshold applies to"),
        ("memory_threshold", pa.float64(), "capacity: share of the budget copies may fill"),
        ("capacity_reason", pa.string(), "capacity: why no further copy was loaded"),
        ("memory_trace_json", pa.string(), "JSON: capacity, memory in use after each copy"),
    )
    options: CapacityOptions

    @classmethod
    def validate(cls, options: CapacityOptions) -> None:
        share("scenario.memory_threshold", options.memory_threshold)
        non_negative("scenario.memory_budget_mb", options.memory_budget_mb)
        int_at_least("scenario.max_copies", options.max_copies, 1)

    @classmethod
    def unsupported_reason(cls, cell: CellConfig) -> str | None:
        if cell.tp_degree > 1:
            return "the capacity scenario loads whole copies on one device; set tp_degree=1"
        return None

    def before_load(self, engine: Engine) -> None:
        # engines resolve their device when they import: the base is what is in use before
        # the weights
        self.base_mb = memory_of(getattr(engine, "device", "cpu")).used_mb()

    def run(self, engine: Engine, request: Request, load_copy: Callable[[], Engine]) -> Measured:
        """Fill memory with copies, then serve requests across them all."""
        cell, options, base_mb = self.cell, self.options, self.base_mb
        memory = memory_of(getattr(engine, "device", "cpu"))
        budget = options.memory_budget_mb or memory.total_mb
        limit = options.memory_threshold * budget
        host_floor = (1 - options.memory_threshold) * memory_of("cpu").total_mb

        def settle(copy: Engine, send: Request) -> float:
            copy.own_memory()
            send(send.draw(0, -1))  # the first request allocates what serving needs
            copy.synchronize()
            return memory.used_mb()

        # the runner's request serves the first copy: one batch per copy, none made twice
        copies, requests = [engine], [request]
        trace = [{"copy": 1, "used_mb": settle(engine, request)}]
        used, reason = trace[0]["used_mb"], ""
        if used > limit:
            reason = f"one copy already uses {used:.0f} MiB, past {limit:.0f} MiB"
        while not reason:
            step = _copy_size(trace, base_mb, largest=True)
            if len(copies) >= options.max_copies:
                reason = f"max_copies={options.max_copies} reached"
            elif used + step > limit:
                reason = (
                    f"one more copy (~{step:.0f} MiB) would take {used:.0f} MiB past "
                    f"{options.memory_threshold:.0%} of {budget:.0f} MiB"
                )
            elif memory.kind == "cpu" and host_available_mb() - step < host_floor:
                reason = "the host's available memory would fall below the threshold's margin"
            else:
                copies.append(load_copy())
                like = request if isinstance(request, Traffic) else None
                requests.append(request_for(copies[-1], cell, like=like))
                used = settle(copies[-1], requests[-1])
                trace.append({"copy": len(trace) + 1, "used_mb": used})
        any_copy = AnyCopy(requests, random.Random(cell.seed))
        result = run_closed_loop(any_copy, engine.synchronize, cell.threads, self.config)
        return Measured(
            result,
            [result],
            {
                "copies_fit": len(copies) if trace[0]["used_mb"] <= limit else 0,
                "memory_per_copy_mb": _copy_size(trace, base_mb, largest=False),
                "memory_base_mb": base_mb,
                "memory_used_mb": used,
                "memory_budget_mb": budget,
                "memory_threshold": options.memory_threshold,
                "capacity_reason": reason,
                "memory_trace_json": json.dumps(trace),
            },
        )


class AnyCopy:
    """Requests that each go to a random copy (chosen with the inputs, outside the timed
    bracket)."""

    def __init__(self, requests: list[Request], chooser: random.Random) -> None:
        self.requests, self.chooser = requests, chooser

    def draw(self, client: int, arrival: int) -> tuple[Request, Any]:
        request = self.chooser.choice(self.requests)
        return request, request.draw(client, arrival)

    def __call__(self, drawn: tuple[Request, Any]) -> Any:
        return drawn[0](drawn[1])

    def settle(self, client: int, drawn: tuple[Request, Any], raw: Any) -> Settled:
        return drawn[0].settle(client, drawn[1], raw)

    def failed(self, client: int, drawn: tuple[Request, Any]) -> None:
        drawn[0].failed(client, drawn[1])


def _copy_size(trace: list[dict[str, Any]], base_mb: float, largest: bool) -> float:
    """What one copy takes, from the growth after each load. The first copy's growth also
    carries one-off costs (the CUDA context, lazily imported modules), so it stands in only
    until a second copy is loaded. `largest` (the stopping rule) takes the biggest later
    growth, as the allocator may have reused freed memory for one of them."""
    before = [base_mb, *(t["used_mb"] for t in trace[:-1])]
    deltas = [t["used_mb"] - b for t, b in zip(trace, before, strict=True)]
    later = deltas[1:] or deltas
    return float(max(later) if largest else np.median(later))
