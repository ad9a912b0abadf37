"""Timing claims the unit tests no longer make, measured on this host against their bounds.

The claims are about elapsed time, rates and latencies: how close the harness comes to its
targets here. A unit test checks what a rule decides (which request ended a window, that a
sleep never returns early); whether the host then let it happen within a bound is a
measurement of the host, and a busy one (the 2-core development machine running the suite
beside other jobs) misses such bounds without anything being wrong. The claims live here
instead, each with the test it came from:

- sleep_calibration (tests/unit/cell/test_runner.py): the sleep engine's P50 within 10 % of
  its service time and its inferences/s within 10 % of threads x batch / service time, at 1,
  2 and 4 client threads and batch 1 and 4;
- null_overhead (tests/unit/cell/test_runner.py): the null engine's P50 under 1 ms;
- duration_stop (tests/unit/measure/test_loadgen.py): a window whose targets are met by its
  duration ends within 0.1 s of that duration;
- max_duration_stop (tests/unit/measure/test_loadgen.py): a window capped by max_duration_s
  ends within 0.1 s of it, the call returning within 2 s;
- user_schedule (tests/unit/measure/scenarios/test_multi_model.py): each multi_model user starts or
  stops within 1 s of its scheduled time;
- sampler_interval (tests/unit/measure/test_telemetry.py): the telemetry sampler, at 10 ms,
  takes at least 3 samples in 0.1 s.

    python benchmarks/timing_claims.py [--only NAME ...]

Each claim prints its measured figure beside its bound; the exit status is 1 when any claim
fails. About 20 s on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.cell.runner import run_cell
from bench.config.schema import ScenarioConfig
from bench.measure.loadgen import Plain, run_closed_loop
from bench.measure.scenarios.multi_model_ramp import Stage, run_users, user_changes
from bench.measure.telemetry import Sampler
from bench.plan.grid import plan_from_overrides

SERVICE_MS = 5.0
RELATIVE = 0.10  # the calibration's tolerance: 10 %
STOP_SLACK_S = 0.1  # how far past its target a window may end


@dataclass(frozen=True)
class Outcome:
    claim: str  # the bound, in words
    measured: str  # what this host gave
    holds: bool


def _row(overrides: list[str]) -> dict:
    row = run_cell(plan_from_overrides(overrides).cells[0]).row
    if row["status"] != "ok":
        raise RuntimeError(f"{row.get('error_class')}: {row.get('error')}")
    return row


def sleep_calibration() -> list[Outcome]:
    outcomes = []
    for threads in (1, 2, 4):
        for batch in (1, 4):
            row = _row(
                [
                    "engine=sleep",
                    f"engine.service_ms={SERVICE_MS}",
                    f"threads={threads}",
                    f"batch_size={batch}",
                    "scenario.warmup_requests=2",
                    "scenario.warmup_s=0",
                    "scenario.min_requests=50",
                    "scenario.min_duration_s=0.8",
                    "scenario.max_duration_s=5.0",
                    "scenario.ci_target=0",
                ]
            )
            where = f"t{threads} b{batch}"
            p50 = row["latency_ms_p50"]
            outcomes.append(
                Outcome(
                    f"{where}: P50 within {RELATIVE:.0%} of {SERVICE_MS:g} ms",
                    f"{p50:.3f} ms ({p50 / SERVICE_MS - 1:+.1%})",
                    abs(p50 / SERVICE_MS - 1) <= RELATIVE,
                )
            )
            expected = threads * batch / (SERVICE_MS / 1000.0)
            rate = row["inferences_per_s"]
            outcomes.append(
                Outcome(
                    f"{where}: inferences/s within {RELATIVE:.0%} of {expected:g}",
                    f"{rate:.1f} ({rate / expected - 1:+.1%})",
                    abs(rate / expected - 1) <= RELATIVE,
                )
            )
    return outcomes


def null_overhead() -> list[Outcome]:
    row = _row(
        [
            "engine=null",
            "scenario.min_requests=100",
            "scenario.min_duration_s=0.05",
            "scenario.ci_target=0",
        ]
    )
    p50 = row["latency_ms_p50"]
    return [Outcome("null engine: P50 under 1 ms", f"{p50 * 1e3:.2f} us", p50 < 1.0)]


def _scenario(min_requests: int, min_s: float, max_s: float) -> ScenarioConfig:
    return ScenarioConfig(
        name="latency",
        warmup_requests=0,
        warmup_s=0.0,
        min_requests=min_requests,
        min_duration_s=min_s,
        max_duration_s=max_s,
    )


def _sleeper(seconds: float) -> Callable[[], None]:
    def request() -> None:
        time.sleep(seconds)

    return request


def duration_stop() -> list[Outcome]:
    target = 0.3
    result = run_closed_loop(_sleeper(0.005), lambda: None, 1, _scenario(5, target, 5.0))
    bound = target + STOP_SLACK_S
    return [
        Outcome(
            f"targets met by duration {target:g} s: window under {bound:g} s",
            f"{result.window_s:.3f} s ({result.stop_reason})",
            result.window_s < bound,
        )
    ]


def max_duration_stop() -> list[Outcome]:
    cap = 0.4
    started = time.perf_counter()
    result = run_closed_loop(_sleeper(0.005), lambda: None, 2, _scenario(10**9, 0.1, cap))
    took = time.perf_counter() - started
    bound = cap + STOP_SLACK_S
    return [
        Outcome(
            f"max_duration_s {cap:g}: window under {bound:g} s",
            f"{result.window_s:.3f} s ({result.stop_reason})",
            result.window_s < bound,
        ),
        Outcome("max_duration_s 0.4: the call returns within 2 s", f"{took:.3f} s", took < 2.0),
    ]


def user_schedule() -> list[Outcome]:
    stages = (Stage(3, 4.0, 1.2), Stage(8, 5.0, 1.5), Stage(2, 6.0, 1.3))
    ramp = run_users(Plain(lambda: time.sleep(0.002)), lambda: None, stages, warmup_s=0.3)
    changes = user_changes(stages)
    late = [t - at for (t, _), (at, _) in zip(ramp.trace[1:], changes, strict=True)]
    return [
        Outcome(
            f"multi_model: each of {len(changes)} user changes within 1 s of its time",
            f"latest {max(late):.3f} s late",
            min(late) >= 0 and max(late) < 1.0,
        )
    ]


def sampler_interval() -> list[Outcome]:
    sampler = Sampler([], interval_s=0.01).start()
    time.sleep(0.1)
    samples = sampler.stop()
    return [
        Outcome(
            "telemetry at 10 ms: at least 3 samples in 0.1 s", f"{len(samples)}", len(samples) >= 3
        )
    ]


CLAIMS: dict[str, Callable[[], list[Outcome]]] = {
    "sleep_calibration": sleep_calibration,
    "null_overhead": null_overhead,
    "duration_stop": duration_stop,
    "max_duration_stop": max_duration_stop,
    "user_schedule": user_schedule,
    "sampler_interval": sampler_interval,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", nargs="+", choices=sorted(CLAIMS), help="check these claims alone"
    )
    args = parser.parse_args()
    failed = 0
    for name in args.only or CLAIMS:
        print(f"{name}:")
        for outcome in CLAIMS[name]():
            failed += not outcome.holds
            mark = "ok  " if outcome.holds else "FAIL"
            print(f"  {mark} {outcome.claim}: {outcome.measured}", flush=True)
    print(f"{failed} claim(s) failed" if failed else "every claim holds")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
