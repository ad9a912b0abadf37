"""The report's decision sections: a comparison with a base sweep (`report ... compare=BASE`),
a fleet sized for a target load (`report ... rate=R`), each a Markdown block with its plot,
and the ratio table of one instance type over another (`report ... ratio=A/B`, or by itself
when a sweep has two instance types: seed 004's "G5 over G4dn").

Comparison plot: per cell, the relative change of P50, P99 and throughput with its 95%
interval, coloured by verdict, with the regression threshold drawn. Fleet plot: the monthly
bill per configuration (on demand, Spot beside it where the catalog has Spot), cheapest on top
and marked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bench.results.capacity import ASSUMPTIONS
from bench.results.compare import Comparison
from bench.results.document import Block, Figure, Heading, Table, Text
from bench.results.report_captions import plot_alt, plot_caption
from bench.results.report_plots import THROUGHPUT_UNITS, figure_png, instances_by_price
from bench.row.status import Status

VERDICT_COLOURS = {"faster": "tab:green", "cheaper": "tab:green", "slower": "tab:red"}
VERDICT_COLOURS |= {"dearer": "tab:red"}  # everything else (no change, insufficient): grey
PLOTTED_METRICS = {
    "latency_ms_p50": "P50",
    "latency_ms_p99": "P99",
    "inferences_per_s": "throughput",
}
SHOWN_CELLS = 30  # more cells than this make a plot nobody reads: the table has them all


@dataclass
class Section:
    blocks: list[Block]
    images: dict[str, bytes] = field(default_factory=dict)


def _cell_label(row: pd.Series) -> str:
    return (
        f"{row.get('model')} {row.get('precision')} b{row.get('batch_size')} "
        f"t{row.get('threads')} {row.get('instance')}"
    )


def plot_comparison(table: pd.DataFrame, base_id: str, threshold: float) -> bytes:
    import matplotlib.pyplot as plt

    shown = table[table["metric"].isin(PLOTTED_METRICS) & table["change"].notna()].copy()
    shown["cell"] = shown.apply(_cell_label, axis=1)
    cells = list(dict.fromkeys(shown["cell"]))[:SHOWN_CELLS]
    figure, axes = plt.subplots(
        1,
        len(PLOTTED_METRICS),
        figsize=(11, 1.6 + 0.35 * len(cells)),
        sharey=True,
        layout="constrained",  # room for the figure's title above the panels' own
    )
    for ax, (metric, title) in zip(axes, PLOTTED_METRICS.items(), strict=True):
        rows = shown[(shown["metric"] == metric) & shown["cell"].isin(cells)]
        for _, row in rows.iterrows():
            y = cells.index(row["cell"])
            change = 100 * float(row["change"])
            error = [[change - 100 * row["change_lo"]], [100 * row["change_hi"] - change]]
            colour = VERDICT_COLOURS.get(str(row["verdict"]), "tab:gray")
            ax.errorbar(change, y, xerr=error, fmt="o", color=colour, capsize=3)
        ax.axvline(0, color="black", linewidth=0.8)
        for edge in (-100 * threshold, 100 * threshold):
            ax.axvline(edge, color="tab:red", linestyle=":", linewidth=0.8)
        ax.set_title(f"{title} change (%)")
        ax.grid(alpha=0.3, axis="x")
        ax.set_yticks(range(len(cells)), cells, fontsize=8)
    axes[0].invert_yaxis()  # the table's order, top down
    figure.suptitle(
        f"change against {base_id} with 95% intervals: red worse, green better, grey no "
        f"significant change\ndotted: the ±{threshold:.0%} regression threshold",
        fontsize=9,
    )
    return figure_png(figure)


def comparison_section(result: Comparison, base_id: str, threshold: float) -> Section:
    table = result.table
    heading = Heading(f"Compared with {base_id}")
    if table.empty:
        return Section([heading, Text("No cell of this sweep matches one of the base sweep.")])
    wide = table.assign(
        shown=[
            "" if pd.isna(c) else f"{c:+.1%} ({v})"
            for c, v in zip(table["change"], table["verdict"], strict=True)
        ]
    ).pivot_table(
        index=["model", "engine", "precision", "batch_size", "threads", "instance"],
        columns="metric",
        values="shown",
        aggfunc="first",
    )
    wide = wide[[c for c in table["metric"].drop_duplicates() if c in wide.columns]].reset_index()
    regressions = result.regressions
    verdict = (
        f"**{len(regressions)} regression(s)** beyond {threshold:.0%} with 95% confidence"
        if len(regressions)
        else f"No regression beyond {threshold:.0%} with 95% confidence."
    )
    blocks: list[Block] = [
        heading,
        Text(
            "Per matched configuration, NEW / BASE - 1 with its verdict (intervals over runs "
            "where each side ran repeats=K >= 2: Welch's t over per-run values; with one run "
            "a side, a block bootstrap of both cells' raw samples for latency and the "
            "throughput intervals for throughput and $/M, within one run only). " + verdict
        ),
        Table(wide),
    ]
    if differs := sorted(set(table["config_differs"]) - {""}):
        blocks.append(Text(f"Configs differ in: {', '.join(differs)}."))
    if unmatched := [*result.only_base, *result.only_new]:
        blocks.append(Text(f"{len(unmatched)} cell(s) without a match: {', '.join(unmatched)}."))
    name = f"compared-with-{base_id}.png"
    blocks.append(Figure(name, plot_caption(name), plot_alt(name)))
    return Section(blocks, {name: plot_comparison(table, base_id, threshold)})


def plot_fleet(table: pd.DataFrame, rate: float, p99_ms: float) -> bytes:
    import matplotlib.pyplot as plt

    sized = table[table["usd_per_month"].notna()].head(SHOWN_CELLS)
    labels = [_cell_label(row) + f" x{int(row['instances'])}" for _, row in sized.iterrows()]
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.35 * max(1, len(sized))))
    y = range(len(sized))
    axes.barh(y, sized["usd_per_month"], color="tab:blue", label="on demand")
    if sized["spot_usd_per_month"].notna().any():
        axes.barh(
            y, sized["spot_usd_per_month"].fillna(0), height=0.4, color="tab:orange", label="Spot"
        )
    if len(sized):  # the cheapest outlined, on top of its bar (unlabelled: not in the legend)
        axes.barh([0], sized["usd_per_month"].iloc[:1], fill=False, edgecolor="black", lw=2)
    axes.set_yticks(list(y), labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("$ per month (730 h)")
    axes.set_title(
        f"fleet for {rate:g} inferences/s with P99 <= {p99_ms:g} ms: cheapest on top "
        "(outlined); xN = instances",
        fontsize=9,
    )
    axes.grid(alpha=0.3, axis="x")
    axes.legend(fontsize=8, loc="lower right")
    return figure_png(figure)


def fleet_section(table: pd.DataFrame, rate: float, peak_to_mean: float, p99_ms: float) -> Section:
    sized = f"{rate:g} inferences/s" + (
        f" x peak_to_mean {peak_to_mean:g}" if peak_to_mean != 1 else ""
    )
    heading = Heading(f"Fleet for {sized} (P99 <= {p99_ms:g} ms)")
    if table.empty:
        return Section([heading, Text("No ok cell with at least 100 measured requests.")])
    columns = ["model", "engine", "precision", "batch_size", "threads", "instance"]
    columns += ["service_p99_ms", "replica_rate_per_s", "replicas", "instances"]
    columns += ["usd_per_month", "spot_usd_per_month", "note"]
    shown = table[[c for c in columns if c in table]]
    if shown["spot_usd_per_month"].isna().all():
        shown = shown.drop(columns=["spot_usd_per_month"])
    best = table.iloc[0]
    answer = (
        f"Cheapest: **{_cell_label(best)}**, {int(best['instances'])} instance(s), "
        f"${best['usd_per_month']:,.2f} per month on demand."
        if pd.notna(best["usd_per_month"])
        else "No configuration meets the SLA at any fleet size."
    )
    name = "fleet-cost.png"
    blocks: list[Block] = [
        heading,
        Text(f"Replicas and instances per configuration; {ASSUMPTIONS}. {answer}"),
        Table(shown),
    ]
    if table["usd_per_month"].notna().any():
        blocks.append(Figure(name, plot_caption(name), plot_alt(name)))
        return Section(blocks, {name: plot_fleet(table, rate, p99_ms)})
    return Section(blocks)


# A configuration is the same on both instance types when these are equal
RATIO_KEYS = ["model", "engine", "precision", "batch_size", "threads", "tp_degree"]
RATIO_FIGURES = {  # row column -> the table's name for it
    "inferences_per_s": "throughput",
    "latency_ms_p95": "p95_ms",
    "usd_per_million_inferences": "usd_per_million",
}


def instance_types(frame: pd.DataFrame) -> list[str]:
    """The instance types of a sweep's ok rows, dearest per hour first (equal prices, and
    rows without one, in name order)."""
    return instances_by_price(frame[frame["status"] == Status.OK])


def _side(ok: pd.DataFrame, instance: str) -> pd.DataFrame:
    """One instance type's ok rows, one per configuration (repeats: their median), with the
    task that names the throughput's unit."""
    rows = ok[ok["instance"] == instance]
    rows = rows.assign(**{c: rows.get(c) for c in [*RATIO_FIGURES, "task"] if c not in rows})
    grouped = rows.groupby(RATIO_KEYS, dropna=False)
    figures = grouped[list(RATIO_FIGURES)].median().rename(columns=RATIO_FIGURES)
    return figures.assign(task=grouped["task"].first()).reset_index()


def instance_ratios(
    frame: pd.DataFrame, a: str, b: str, threads: int | None = None
) -> pd.DataFrame:
    """Instance type A over B, per configuration both ran ok (RATIO_KEYS equal): each side's
    throughput, P95 latency and $ per million inferences (`_a`, `_b`), and three ratios, each
    above 1 where A is better: throughput_x = A / B, p95_x = B / A (A's P95 that many times
    lower), cost_benefit_x = B's $/M / A's (seed 004's "cost benefit, G5 over G4dn").

    At one client-thread count: `threads`, or the fewest both ran (the study's table was
    measured with one client; the throughput-vs-P95 curves carry the others)."""
    ok = frame[frame["status"] == Status.OK].dropna(subset=["inferences_per_s"])
    both = _side(ok, a).merge(_side(ok, b), on=RATIO_KEYS, suffixes=("_a", "_b"))
    if not both.empty:
        both = both[both["threads"] == (threads or both["threads"].min())]
    side = {
        f"{n}_{x}": both[f"{n}_{x}"].astype(float) for n in RATIO_FIGURES.values() for x in "ab"
    }
    table = both[RATIO_KEYS].assign(
        unit=both["task_a"].map(THROUGHPUT_UNITS).fillna("inferences/s"),
        throughput_a=side["throughput_a"],
        throughput_b=side["throughput_b"],
        throughput_x=side["throughput_a"] / side["throughput_b"],
        p95_ms_a=side["p95_ms_a"],
        p95_ms_b=side["p95_ms_b"],
        p95_x=side["p95_ms_b"] / side["p95_ms_a"],
        usd_per_million_a=side["usd_per_million_a"],
        usd_per_million_b=side["usd_per_million_b"],
        cost_benefit_x=side["usd_per_million_b"] / side["usd_per_million_a"],
    )
    return table.sort_values(RATIO_KEYS).reset_index(drop=True)


def _span(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "n/a"
    low, high = float(values.min()), float(values.max())
    return f"{low:.2f}x" if round(low, 2) == round(high, 2) else f"{low:.2f}x to {high:.2f}x"


def ratio_section(frame: pd.DataFrame, a: str, b: str) -> Section:
    """The table of A over B (instance_ratios), in the study's shape: per model, precision
    and batch size, both sides' throughput (in the model's unit), P95 and $/M, and the
    ratios, with their range across configurations in one sentence."""
    heading = Heading(f"{a} over {b}")
    table = instance_ratios(frame, a, b)
    if table.empty:
        return Section([heading, Text(f"No configuration ran ok on both {a} and {b}.")])
    threads = int(table["threads"].iloc[0])
    summary = (
        f"{a} over {b}, {len(table)} configuration(s) at {threads} client thread(s): "
        f"throughput {_span(table['throughput_x'])}, P95 {_span(table['p95_x'])}, cost "
        f"benefit {_span(table['cost_benefit_x'])} (above 1: {a} better)."
    )
    explained = (
        "Per configuration both ran (same model, engine, precision, batch size, client "
        "threads, TP degree), each side's throughput in the model's unit, P95 latency and $ "
        f"per million inferences (on-demand), and three ratios, each above 1 where {a} is "
        f"better: throughput {a} / {b}, P95 {b} / {a}, $/M {b} / {a} (the cost benefit). "
        f"At the fewest client threads both ran ({threads}), as the study's table; the "
        "throughput-vs-P95 curves show the rest."
    )
    shown = table.drop(columns=[c for c in ("engine", "tp_degree") if table[c].nunique() == 1])
    shown = shown.drop(columns=["threads"])
    for column in ("throughput_x", "p95_x", "cost_benefit_x"):
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.2f}x")
    names = {"throughput": "throughput", "p95_ms": "P95 ms", "usd_per_million": "$/M"}
    renamed = {f"{k}_a": f"{v} {a}" for k, v in names.items()}
    renamed |= {f"{k}_b": f"{v} {b}" for k, v in names.items()}
    renamed |= {
        "throughput_x": "throughput x",
        "p95_x": "P95 x",
        "cost_benefit_x": "cost benefit x",
    }
    return Section([heading, Text(explained), Text(summary), Table(shown.rename(columns=renamed))])
