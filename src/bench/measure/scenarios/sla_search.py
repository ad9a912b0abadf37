"""sla_search: the highest load at which the share of requests meeting the cell's SLOs
(slo.ttft_ms, slo.tpot_ms, slo.e2e_ms: bench.measure.goodput) stays at or above `target`.

`over: rate` searches the open loop's arrival rate (Poisson, at most `threads` in flight),
`over: concurrency` the closed loop's clients. Each try is a short window of `stage_s`
seconds (after `stage_warmup_s` at that load): the first load is a short closed loop's
capacity at `threads` clients (or `start`); it doubles while the tries meet the target and
halves while they miss, until one of each brackets the answer, then bisects until the bracket
is within `tolerance` of its low end (or `max_stages` tries). The answer, the bracket's low
end, is then measured once more over a full window (the scenario's min/max durations): the
row's figures are that window's, `slo_confirmed` says whether it met the target there too.
A failed or dropped request counts as missing the SLOs."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from bench.config.checks import ConfigError, choice, int_at_least, positive, require, share
from bench.config.schema import CellConfig, ScenarioConfig
from bench.engines.base import Engine
from bench.measure import goodput
from bench.measure.loadgen import LoadResult, Request, run_closed_loop, run_open_loop
from bench.measure.scenarios.base import Measured, Scenario, fixed_length

OVER = ("rate", "concurrency")


@dataclass(frozen=True)
class SlaSearchOptions:
    target: float = 0.99  # share of requests that must meet every SLO
    over: str = "rate"  # rate (open loop) | concurrency (closed loop)
    start: float = 0.0  # first load tried; 0: the capacity a closed loop at `threads` reaches
    calibrate_s: float = 2.0  # that closed loop's seconds
    stage_s: float = 4.0  # measured seconds per try
    stage_warmup_s: float = 0.5  # seconds at a try's load before it is measured
    tolerance: float = 0.05  # stop when (high - low) / low is within this
    max_stages: int = 14  # tries at most, bracketing and bisecting together
    confirm: bool = True  # measure the answer over a full window
    max_concurrency: int = 1024  # concurrency: the most clients tried


@dataclass
class Try:
    load: float
    n: int
    failed: int
    share: float
    meets: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "load": self.load,
            "n": self.n,
            "failed": self.failed,
            "met_share": self.share,
            "meets": self.meets,
        }


class SlaSearch(Scenario):
    name = "sla_search"
    Options = SlaSearchOptions
    columns = (
        (
            "slo_target_share",
            pa.float64(),
            "sla_search: share of requests that had to meet the SLOs",
        ),
        ("slo_max_rate_per_s", pa.float64(), "sla_search: highest arrival rate meeting the target"),
        ("slo_max_concurrency", pa.int32(), "sla_search: highest concurrency meeting the target"),
        ("slo_confirmed", pa.bool_(), "sla_search: the full window at the answer met it too"),
        ("slo_search_reason", pa.string(), "sla_search: how the search ended"),
        ("slo_search_json", pa.string(), "JSON: sla_search, every try (load, n, met_share, meets)"),
    )
    options: SlaSearchOptions

    @classmethod
    def validate(cls, options: SlaSearchOptions) -> None:
        share("scenario.target", options.target)
        choice("scenario.over", options.over, OVER)
        require(
            math.isfinite(options.start) and options.start >= 0,
            "scenario.start",
            options.start,
            "must be a number >= 0 (0: from a calibration)",
        )
        for key in ("calibrate_s", "stage_s", "tolerance"):
            positive(f"scenario.{key}", getattr(options, key))
        require(
            options.stage_warmup_s >= 0, "scenario.stage_warmup_s", options.stage_warmup_s, ">= 0"
        )
        int_at_least("scenario.max_stages", options.max_stages, 2)
        int_at_least("scenario.max_concurrency", options.max_concurrency, 1)

    @classmethod
    def check_cell(cls, cell: CellConfig) -> None:
        if not cell.slo.any():
            raise ConfigError(
                "slo",
                None,
                "scenario=sla_search needs an objective: set slo.ttft_ms, slo.tpot_ms or "
                "slo.e2e_ms",
            )

    @classmethod
    def seconds(cls, config: ScenarioConfig) -> tuple[float, float]:
        options = cls.options_of(config.options)
        calibration = 0.0 if options.start else config.warmup_s + options.calibrate_s
        tries = options.stage_s + options.stage_warmup_s
        least = calibration + 3 * tries
        most = calibration + options.max_stages * tries
        if options.confirm:
            least, most = least + config.min_duration_s, most + config.max_duration_s
        return least, most

    def run(self, engine: Engine, request: Request, load_copy: Callable[[], Engine]) -> Measured:
        options, cell = self.options, self.cell
        start = options.start or self._capacity(engine, request)
        if options.over == "concurrency":
            start = float(min(max(1, round(start)), options.max_concurrency))
        tries: list[Try] = []
        stages: list[LoadResult] = []

        def attempt(load: float, window: ScenarioConfig) -> Try:
            result = self._measure(engine, request, load, window, len(stages))
            stages.append(result)
            met, _ = goodput.slo_met(result, cell.slo, cell.model.new_tokens)
            sent = result.ok.size + result.dropped
            got = float(met.sum()) / sent if sent else 0.0
            tried = Try(load, result.n, result.errors + result.dropped, got, got >= options.target)
            tries.append(tried)
            return tried

        low, reason = self._search(start, attempt)
        columns: dict[str, Any] = {"slo_target_share": options.target}
        headline = None
        if low is not None:
            key = "slo_max_rate_per_s" if options.over == "rate" else "slo_max_concurrency"
            columns[key] = low if options.over == "rate" else int(low)
            if options.confirm:
                confirmed = attempt(low, self.config)
                columns["slo_confirmed"] = confirmed.meets
                headline = stages[-1]
            else:
                headline = next(s for s, t in zip(stages, tries, strict=True) if t.load == low)
        columns.update(
            slo_search_reason=reason,
            slo_search_json=json.dumps([t.to_dict() for t in tries]),
        )
        return Measured(headline or stages[0], stages, columns)

    def _capacity(self, engine: Engine, request: Request) -> float:
        """Requests/s (rate) or the clients (concurrency) a short closed loop at `threads`
        reaches: where the search starts."""
        if self.options.over == "concurrency":
            return float(self.cell.threads)
        probe = run_closed_loop(
            request,
            engine.synchronize,
            self.cell.threads,
            fixed_length(self.config, self.options.calibrate_s),
        )
        return max(probe.n / probe.window_s, 1e-3)

    def _measure(
        self, engine: Engine, request: Request, load: float, window: ScenarioConfig, index: int
    ) -> LoadResult:
        options, stage = self.options, window
        if options.over == "concurrency":
            return run_closed_loop(
                request,
                engine.synchronize,
                int(load),
                stage,
                warmup_s=options.stage_warmup_s,
                tolerate_errors=True,
            )
        stage = _with_warmup(stage, options.stage_warmup_s)
        seed = (self.cell.seed * 1000 + self.cell.repeat) * 100 + index
        return run_open_loop(request, engine.synchronize, self.cell.threads, load, stage, seed)

    def _search(
        self, start: float, attempt: Callable[[float, ScenarioConfig], Try]
    ) -> tuple[float | None, str]:
        """(the highest load that met the target, why the search stopped)."""
        options = self.options
        integral = options.over == "concurrency"
        low: float | None = None
        high: float | None = None
        load = start
        for _ in range(options.max_stages):
            tried = attempt(load, fixed_length(self.config, options.stage_s))
            if tried.meets:
                low = load if low is None else max(low, load)
            else:
                high = load if high is None else min(high, load)
            if low is not None and high is not None:
                if high - low <= options.tolerance * low or (integral and high - low <= 1):
                    return low, f"bracketed within {options.tolerance:.0%}"
                load = (low + high) / 2
                load = float(math.floor(load)) if integral else load
            elif low is None:  # every try missed: halve
                load = load / 2
                if integral and load < 1:
                    return None, "even one client missed the target"
                if not integral and load < start / 1024:
                    return None, f"missed the target down to {load:.3g} requests/s"
            else:  # every try met: double
                load = load * 2
                if integral and load > options.max_concurrency:
                    return low, f"met the target up to max_concurrency={options.max_concurrency}"
        return low, f"max_stages={options.max_stages} tries"


def _with_warmup(config: ScenarioConfig, seconds: float) -> ScenarioConfig:
    """A try's open loop: warmed up for `seconds` (at least one request per client)."""
    return dataclasses.replace(
        config, warmup_s=seconds, warmup_requests=min(config.warmup_requests, 1)
    )
