"""Check the measurement itself against known truth, and print the figures the README quotes.

1. Interval coverage: R runs of the sleep engine with lognormal service times (median 50 ms,
   sigma 0.5; 64 clients, 1000 requests each); the share of runs whose 95% interval (the
   row's method, valid under serial dependence) holds the distribution's true P50 / P90 /
   P99.
2. Open-loop queueing: one client in front of a fixed 2 ms server (an M/D/1 queue) at rising
   shares of its measured capacity; mean queueing delay against the M/D/1 formula
   Wq = rho x s / (2 (1 - rho)).
3. Ramp: 4 service slots of 20 ms with a waiting line of 6, stages 1..32, SLA P99 30 ms.

Usage: python benchmarks/measurement.py [--runs 100]
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from bench.cell.runner import run_cell
from bench.engines.calibration import SleepEngine
from bench.measure.loadgen import run_closed_loop
from bench.plan.grid import plan_from_overrides
from bench.stats import serial_quantile_interval


def coverage(runs: int) -> None:
    cell = plan_from_overrides(
        ["engine=sleep", "engine.distribution=lognormal", "engine.service_ms=50"]
    ).cells[0]
    options = SleepEngine.Options(**cell.engine.options)
    truth = {p: SleepEngine.true_quantile_ms(options, p / 100) for p in (50, 90, 99)}
    scenario = dataclasses.replace(
        cell.scenario, warmup_requests=1, min_requests=1000, min_duration_s=0.01, ci_target=0.0
    )
    hits = dict.fromkeys(truth, 0)
    for run in range(runs):
        engine = SleepEngine(dataclasses.replace(cell, seed=run))
        engine.load()
        result = run_closed_loop(lambda e=engine: e.infer(None), lambda: None, 64, scenario)
        in_order = result.latency_ns / 1e6  # as sent: the order the row's intervals see
        for p, true_ms in truth.items():
            low, high, _ = serial_quantile_interval(in_order, p / 100, 0.95, 20)
            hits[p] += (low is None or low <= true_ms) and (high is not None and true_ms <= high)
    print(f"coverage of 95% intervals over {runs} sleep-engine runs (n=1000 each):")
    for p, count in hits.items():
        print(f"  P{p}: true {truth[p]:.1f} ms, held in {count}/{runs} = {count / runs:.0%}")


def queueing() -> None:
    print("open loop, one client, fixed 2 ms service (M/D/1):")
    print("  load  target/s  achieved/s  queue mean ms  M/D/1 ms  queue P99 ms  dispatch P99 ms")
    for fraction in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95):
        row = run_cell(
            plan_from_overrides(
                [
                    "engine=sleep",
                    "engine.service_ms=2",
                    "scenario=open_loop",
                    f"scenario.load_fraction={fraction}",
                    "scenario.calibrate_s=1.0",
                    "scenario.min_requests=2000",
                    "scenario.min_duration_s=4.0",
                    "scenario.max_duration_s=30",
                    "threads=1",
                ]
            ).cells[0]
        ).row
        service = row["service_ms_p50"]
        theory = fraction * service / (2 * (1 - fraction))
        target, achieved = row["target_rate_per_s"], row["achieved_rate_per_s"]
        waited, waited_p99 = row["queue_delay_ms_mean"], row["queue_delay_ms_p99"]
        print(
            f"  {fraction:4.2f}  {target:8.1f}  {achieved:10.1f}  {waited:13.2f}  {theory:8.2f}"
            f"  {waited_p99:12.2f}  {row['dispatch_delay_ms_p99']:15.3f}"
        )


def ramp() -> None:
    row = run_cell(
        plan_from_overrides(
            [
                "engine=sleep",
                "engine.service_ms=20",
                "engine.max_concurrency=4",
                "engine.max_waiting=6",
                "scenario=ramp",
                "sla.p99_ms=30",
                "scenario.stages=[1,2,4,8,16,32]",
                "scenario.stage_duration_s=2",
                "scenario.stage_warmup_s=0.5",
            ]
        ).cells[0]
    ).row
    print("ramp, 4 slots of 20 ms, line of 6, SLA P99 30 ms:")
    for stage in json.loads(row["stages_json"]):
        print(
            f"  concurrency {stage['concurrency']:>2}: P50 {stage['p50_ms']:6.1f} ms, "
            f"P99 {stage['p99_ms']:6.1f} ms, {stage['requests_per_s']:6.1f} req/s, "
            f"{stage['errors']} refused, meets SLA: {stage['meets_sla']}"
        )
    print(
        f"  -> sla_concurrency {row['sla_concurrency']}, first_failure_concurrency "
        f"{row['first_failure_concurrency']}, peak_concurrency {row['peak_concurrency']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="coverage runs")
    args = parser.parse_args()
    coverage(args.runs)
    queueing()
    ramp()


if __name__ == "__main__":
    main()
