"""`bench report` over a store: a sweep's rows, the decision sections asked for (a comparison
with a base sweep, a fleet sized for a rate, the table of one instance type over another),
the report built from them and written under the sweep's report folder."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.config.checks import ConfigError
from bench.results.collect import collect
from bench.results.compare import compare
from bench.results.fleet import sweep_fleet
from bench.results.report import SLA_KEYS, Report, Sla, build_report
from bench.results.report_decisions import (
    Section,
    comparison_section,
    fleet_section,
    instance_types,
    ratio_section,
)
from bench.results.sweep_rows import read_aggregate
from bench.store import Store, SweepPaths

RATIO_OFF = "off"


@dataclass(frozen=True)
class ReportAsks:
    """The decision sections a report adds to its own (each None: not asked)."""

    compare_to: str | None = None  # a base sweep's id or aggregate URI: the comparison
    threshold: float = 0.05  # the comparison's regression threshold (a share)
    noise: float = 0.01  # the comparison's noise floor (a share)
    rate: float | None = None  # inferences/s: the fleet sized to serve it under sla.p99_ms
    peak_to_mean: float = 1.0
    # (A, B): the table of instance type A over B; RATIO_OFF: none; None: automatic (a sweep
    # of exactly two instance types)
    ratio: tuple[str, str] | str | None = None


@dataclass(frozen=True)
class WrittenReport:
    report: Report
    uri: str  # the HTML page's (report.md and the PNGs beside it)


def ratio_pair(ratio: tuple[str, str] | str | None, frame: pd.DataFrame) -> tuple[str, str] | None:
    """The two instance types the ratio table compares: those given, both with ok rows in the
    sweep; without `ratio=`, a sweep's two (the dearer per hour over the cheaper), or none."""
    types = instance_types(frame)
    if ratio is None:
        return (types[0], types[1]) if len(types) == 2 else None
    if ratio == RATIO_OFF:
        return None
    if missing := [name for name in ratio if name not in types]:
        have = ", ".join(types) or "none"
        raise ConfigError(
            "ratio", "/".join(ratio), f"{missing[0]} has no ok rows here (has: {have})"
        )
    return ratio[0], ratio[1]


def decision_sections(
    store: Store,
    frame: pd.DataFrame,
    root: str,
    asks: ReportAsks,
    p99_ms: float | None = None,
    spot_per_hour: dict[str, float] | None = None,
) -> list[Section]:
    """The sections `asks` asks for, over a sweep's rows `frame` in `store` (`root`: where a
    base sweep named by id is; `p99_ms`: the fleet's target, needed with a rate)."""
    sections = []
    if asks.compare_to is not None:
        base_store, base_id, base = read_aggregate(asks.compare_to, root)
        result = compare(base_store, base, store, frame, asks.threshold, asks.noise)
        sections.append(comparison_section(result, base_id, asks.threshold))
    if asks.rate is not None:
        if p99_ms is None:
            raise ConfigError(
                "sla.p99_ms", None, "rate= sizes a fleet for a target: give sla.p99_ms=X"
            )
        table = sweep_fleet(store, frame, asks.rate, p99_ms, asks.peak_to_mean, spot_per_hour)
        sections.append(fleet_section(table, asks.rate, asks.peak_to_mean, p99_ms))
    if (pair := ratio_pair(asks.ratio, frame)) is not None:
        sections.append(ratio_section(frame, *pair))
    return sections


def sla_from(values: Mapping[str, Any]) -> Sla:
    """The targets of the config's sla section (a missing or null key: no target)."""
    return Sla(
        **{key: float(v) if (v := values.get(key)) is not None else None for key in SLA_KEYS}
    )


def report_sweep(
    store: Store,
    sweep_id: str,
    root: str,
    sla: Sla,
    asks: ReportAsks,
    spot_per_hour: dict[str, float] | None = None,
) -> WrittenReport:
    """Build the report of `sweep_id` (its rows collected now) and write it under the sweep's
    report folder: index.html, report.md and the plots."""
    frame = pd.DataFrame(collect(store, sweep_id).table.to_pandas())
    sections = decision_sections(store, frame, root, asks, sla.p99_ms, spot_per_hour)
    built = build_report(frame, sweep_id, sla, sections)
    folder = SweepPaths(sweep_id).report_dir
    for name, data in built.images.items():
        store.write_bytes(f"{folder}/{name}", data)
    store.write_bytes(f"{folder}/report.md", built.markdown.encode())
    store.write_bytes(f"{folder}/index.html", built.html.encode())
    return WrittenReport(built, store.uri(f"{folder}/index.html"))
