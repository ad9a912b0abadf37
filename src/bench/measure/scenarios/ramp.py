"""ramp: one closed-loop stage per concurrency, each warmed up, failures counted rather than
fatal. The row names the highest concurrency whose stage met the SLA (P99 <= sla_p99_ms, no
failed request), the first concurrency with a failed request, and the stage with the most
throughput; its headline figures are those of the SLA stage (the first stage when none met
it), at headline_concurrency clients. The ramp stops after the first stage with a failure:
later stages only fail more."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from bench.config.checks import non_negative, positive, require
from bench.config.schema import ScenarioConfig
from bench.engines.base import Engine
from bench.measure.loadgen import LoadResult, Request, run_closed_loop
from bench.measure.metrics import nearest_rank_ms
from bench.measure.scenarios.base import Measured, Scenario, fixed_length


@dataclass(frozen=True)
class RampOptions:
    stages: tuple[int, ...] = (1, 2, 4, 8, 16, 32)  # the concurrencies, rising
    stage_duration_s: float = 10.0  # measured seconds per stage
    stage_warmup_s: float = 2.0  # seconds at the stage's concurrency before it is measured
    sla_p99_ms: float | None = None  # the latency a stage must meet (default: sla.p99_ms)


class Ramp(Scenario):
    name = "ramp"
    Options = RampOptions
    columns = (
        ("sla_p99_ms", pa.float64(), "ramp: the P99 latency a stage had to meet"),
        ("sla_concurrency", pa.int32(), "ramp: highest concurrency whose stage met the SLA"),
        ("first_failure_concurrency", pa.int32(), "ramp: first concurrency with a failed request"),
        ("peak_concurrency", pa.int32(), "ramp: the stage with the highest throughput"),
        (
            "headline_concurrency",
            pa.int32(),
            "ramp: the clients behind the row's figures (the SLA stage's, else the first's)",
        ),
        (
            "stages_json",
            pa.string(),
            "JSON: ramp, per stage (concurrency, n, errors, P50, P99, rps, meets_sla)",
        ),
    )
    options: RampOptions

    @classmethod
    def validate(cls, options: RampOptions) -> None:
        values = options.stages
        ok = bool(values) and all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        ok = ok and all(v >= 1 for v in values) and list(values) == sorted(set(values))
        require(ok, "scenario.stages", values, "must be a rising list of concurrencies >= 1")
        positive("scenario.stage_duration_s", options.stage_duration_s)
        non_negative("scenario.stage_warmup_s", options.stage_warmup_s)
        if options.sla_p99_ms is not None:
            positive("scenario.sla_p99_ms", options.sla_p99_ms)

    @classmethod
    def seconds(cls, config: ScenarioConfig) -> tuple[float, float]:
        options = cls.options_of(config.options)
        fixed = len(options.stages) * (options.stage_duration_s + options.stage_warmup_s)
        return fixed, fixed

    def run(self, engine: Engine, request: Request, load_copy: Callable[[], Engine]) -> Measured:
        options = self.options
        stage_config = fixed_length(self.config, options.stage_duration_s)
        results: list[LoadResult] = []
        summaries: list[dict[str, Any]] = []
        for concurrency in options.stages:
            result = run_closed_loop(
                request,
                engine.synchronize,
                concurrency,
                stage_config,
                warmup_s=options.stage_warmup_s,
                tolerate_errors=True,
            )
            results.append(result)
            summaries.append(_stage_summary(concurrency, result, options.sla_p99_ms))
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
                "headline_concurrency": summaries[chosen]["concurrency"],
                "sla_p99_ms": options.sla_p99_ms,
                "sla_concurrency": summaries[meeting[-1]]["concurrency"] if meeting else None,
                "first_failure_concurrency": failing[0] if failing else None,
                "peak_concurrency": summaries[peak]["concurrency"],
                "stages_json": json.dumps(summaries),
            },
        )


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
