"""The noise guard of `bench compare`: were both sides measured on alike hosts, alike loaded?

A change between BASE and NEW is the software's only when the rest held still. Two things the
intervals cannot see are checked from the host facts every row carries:
- **mismatched host**: the sides ran on different hardware or settings (CPU model, logical
  CPUs, the CPUs the process could use, GPU model and count, GPU maximum clock and power
  limit). Any verdict then mixes the change with the machine.
- **noisy host**: the sides ran under different load: other processes' mean CPU use
  (`host_other_cpus_mean`; `cpus_busy_at_start` where a row has no telemetry) differs
  between the sides' means by `LOAD_GAP_CPUS` or more, the hypervisor's steal share by
  `STEAL_GAP` or more, or the GPU's mean SM clock in the window by `CLOCK_GAP` (relative).
  The CPU and steal gaps are telemetry's own thresholds for a busy host
  (bench.measure.telemetry); the clock's is this module's.

Either makes the comparison exit 3 ("re-run"), never 1: a regression verdict there could be
the host's. A host busy alike on both sides is not flagged: that adds spread, which intervals
over runs (`repeats=K`) absorb, and interleaving the sides (`order=interleaved`) makes drift
fall on both alike. Hostnames are not compared: two CI runners of one type are one host here.
Known limit: `host_other_cpus_mean` cannot exceed the CPUs there are, so two sides whose
neighbours wanted 2 and 5 CPUs of a 2-CPU host both read ~2; a CPU pressure (PSI) column
would tell them apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.measure.telemetry import BUSY_OTHER_CPUS, BUSY_STEAL_SHARE

# hardware and settings: any difference between the sides is a mismatch
HARDWARE = (
    "cpu_name",
    "cpu_count",
    "cpu_affinity",
    "gpu_name",
    "gpu_count",
    "gpu_max_sm_clock_mhz",
    "gpu_power_limit_w",
)
LOAD_GAP_CPUS = BUSY_OTHER_CPUS  # other processes' CPUs: a gap this large is a different host
STEAL_GAP = BUSY_STEAL_SHARE
CLOCK_GAP = 0.10  # the GPU's mean SM clock in the window, relative


@dataclass
class HostCheck:
    """What the guard found; `rerun` when the verdicts cannot be told from the host's change."""

    mismatched: list[str] = field(default_factory=list)
    noisy: list[str] = field(default_factory=list)
    summary: str = ""  # the sides' hosts and loads, for the output either way

    @property
    def rerun(self) -> bool:
        return bool(self.mismatched or self.noisy)

    def line(self) -> str:
        """One line: the hosts and their loads, or why to re-run."""
        if not self.rerun:
            return f"host: alike on both sides ({self.summary})"
        reasons = [f"mismatched host: {m}" for m in self.mismatched]
        reasons += [f"noisy host: {n}" for n in self.noisy]
        return (
            "host: re-run (exit 3): " + "; ".join(reasons) + " (the verdicts may be the host's, "
            "not the change's; interleave the sides in one sweep: order=interleaved)"
        )


def _present(values: pd.Series) -> list[Any]:
    return sorted(
        {v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))},
        key=str,
    )


def _shown(values: list[Any]) -> str:
    return "/".join(str(v) for v in values)


def _mean(rows: pd.DataFrame, column: str) -> float | None:
    if column not in rows:
        return None
    values = pd.to_numeric(rows[column], errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def _load(rows: pd.DataFrame) -> float | None:
    """Other processes' CPUs, mean over the rows: the window's telemetry, else the count just
    before loading (a row without telemetry)."""
    if "host_other_cpus_mean" not in rows:
        return _mean(rows, "cpus_busy_at_start")
    column = pd.to_numeric(rows["host_other_cpus_mean"], errors="coerce")
    if "cpus_busy_at_start" in rows:
        column = column.fillna(pd.to_numeric(rows["cpus_busy_at_start"], errors="coerce"))
    column = column.dropna()
    return float(column.mean()) if len(column) else None


def check_host(base: pd.DataFrame, new: pd.DataFrame) -> HostCheck:
    """Compare the host facts of the rows each side's verdicts rest on (the matched ok rows)."""
    check = HostCheck()
    for column in HARDWARE:
        if column not in base or column not in new:
            continue
        was, now = _present(base[column]), _present(new[column])
        if was and now and was != now:
            check.mismatched.append(f"{column} {_shown(was)} (BASE) vs {_shown(now)} (NEW)")
    load = (_load(base), _load(new))
    if None not in load and abs(load[1] - load[0]) >= LOAD_GAP_CPUS:  # type: ignore[operator]
        check.noisy.append(
            f"other processes used {load[0]:.2f} CPUs (BASE) vs {load[1]:.2f} (NEW), a gap of "
            f">= {LOAD_GAP_CPUS}"
        )
    steal = (_mean(base, "host_steal_share"), _mean(new, "host_steal_share"))
    if None not in steal and abs(steal[1] - steal[0]) >= STEAL_GAP:  # type: ignore[operator]
        check.noisy.append(
            f"the hypervisor stole {steal[0]:.1%} (BASE) vs {steal[1]:.1%} (NEW) of the CPU time"
        )
    clock = (_mean(base, "gpu_sm_clock_mhz_mean"), _mean(new, "gpu_sm_clock_mhz_mean"))
    if None not in clock and clock[0] and abs(clock[1] / clock[0] - 1) >= CLOCK_GAP:  # type: ignore[operator]
        check.noisy.append(
            f"the GPU's SM clock averaged {clock[0]:.0f} MHz (BASE) vs {clock[1]:.0f} (NEW)"
        )
    check.summary = _summary(base, load, steal)
    return check


def _summary(
    base: pd.DataFrame, load: tuple[float | None, float | None], steal: tuple[float | None, ...]
) -> str:
    parts = []
    if "cpu_name" in base and (names := _present(base["cpu_name"])):
        cpus = _present(base["cpu_count"]) if "cpu_count" in base else []
        parts.append(_shown(names) + (f", {_shown(cpus)} CPUs" if cpus else ""))
    if None not in load:
        parts.append(f"other processes {load[0]:.2f} vs {load[1]:.2f} CPUs")
    if None not in steal:
        parts.append(f"steal {steal[0]:.1%} vs {steal[1]:.1%}")
    return "; ".join(parts) or "no host facts in the rows"
