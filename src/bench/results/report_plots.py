"""The report's plots (PNG, matplotlib, one set per model; throughput in the model's own
unit: sentences/s for an encoder, images/s for an image model, from the rows' `task`):

- throughput vs P99 latency, one line per instance x precision (points: batch sizes);
- throughput vs P95 latency, one panel per instance x precision on shared axes, one curve per
  batch size, its points the client-thread counts (seed 004's throughput-vs-latency curves);
- throughput and P95 latency vs batch size, and $ per million inferences vs batch size;
- load time per engine (load_s with init_s stacked on it);
- ramp rows: P50/P99 (with the SLA) and throughput vs concurrency, first failure marked.

Where a plot has one point per batch size, that point is the batch size's most-throughput
client-thread count, and its label says which (t<threads>). An axis that measures a rate, a
latency or a cost starts at zero, so a line's height reads as a quantity, not a difference
from wherever the data began.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd

# The figures the plots read; rows from before a column existed get it empty
PLOTTED_COLUMNS = [
    "latency_ms_p95",
    "latency_ms_p99",
    "latency_ms_p99_lo",
    "latency_ms_p99_hi",
    "inferences_per_s",
    "usd_per_million_inferences",
    "task",
]


def _with_plotted(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in PLOTTED_COLUMNS if c not in frame.columns]
    return frame.assign(**dict.fromkeys(missing)) if missing else frame


def from_zero(axes: Any, x: bool = False, y: bool = False) -> None:
    """Start the x and/or y axis at zero (after everything is drawn: the upper limit stays
    the one autoscaling chose)."""
    if x:
        axes.set_xlim(left=0)
    if y:
        axes.set_ylim(bottom=0)


def figure_png(figure: Any) -> bytes:
    """The figure as PNG bytes; the figure is closed (pyplot keeps every open one)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _series_label(instance: str, precision: str) -> str:
    return f"{instance} {precision}"


# What one inference of a task is, in the seeds' words (the row's inferences_per_s counts them)
THROUGHPUT_UNITS = {
    "encode": "sentences/s",
    "classify_image": "images/s",
    "generate": "sequences/s",
    "seq2seq": "sequences/s",
}


def instances_by_price(rows: pd.DataFrame) -> list[str]:
    """The rows' instance types, dearest per hour first (equal prices, and rows without
    one, in name order)."""
    price = rows["price_per_hour"] if "price_per_hour" in rows.columns else None
    price = pd.Series(price, index=rows.index, dtype=float)
    per_hour = price.groupby(rows["instance"]).median().fillna(float("-inf"))
    return sorted(per_hour.index, key=lambda name: (-per_hour[name], name))


def throughput_unit(rows: pd.DataFrame) -> str:
    """What the rows' inferences_per_s counts, by their `task`: sentences/s for an encoder,
    images/s for an image model; inferences/s where the rows name no single task."""
    tasks = set(rows["task"].dropna()) if "task" in rows.columns else set()
    return THROUGHPUT_UNITS.get(tasks.pop(), "inferences/s") if len(tasks) == 1 else "inferences/s"


# The x label of a plot with one point per batch size: which thread count each point is
BEST_THREADS_AXIS = "batch size (each at its most-throughput client-thread count, t)"


def _best_per_batch(ok: pd.DataFrame) -> pd.DataFrame:
    """Per instance x precision x batch size, the row with the most throughput (over the
    client-thread counts tried)."""
    return (
        ok.sort_values("inferences_per_s")
        .groupby(["instance", "precision", "batch_size"], as_index=False)
        .last()
    )


def plot_throughput_vs_p99(
    ok: pd.DataFrame,
    model: str,
    p99_ms: float | None = None,
    recommended: pd.DataFrame | None = None,
) -> bytes:
    """One line per instance x precision over batch sizes (the best client-thread count per
    point, labelled b<batch> t<threads>), the P99's 95% interval as a bar (an open upper end:
    a dotted arrow), the SLA as a vertical line and the recommended configuration as a star,
    wherever it lies. Both axes from zero."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.8))
    best = _best_per_batch(_with_plotted(ok))
    for (instance, precision), group in best.groupby(["instance", "precision"]):
        group = group.sort_values("batch_size")
        p99 = group["latency_ms_p99"].astype(float)
        low = (p99 - group["latency_ms_p99_lo"].astype(float)).fillna(0).clip(lower=0)
        high = (group["latency_ms_p99_hi"].astype(float) - p99).fillna(0).clip(lower=0)
        line = axes.errorbar(
            p99,
            group["inferences_per_s"],
            xerr=[low, high],
            marker="o",
            capsize=2,
            label=_series_label(instance, precision),
        )
        colour = line.lines[0].get_color()
        span = max(float(p99.max()), 1e-9) * 0.12
        for _, row in group[group["latency_ms_p99_hi"].isna()].iterrows():
            axes.annotate(  # an open upper end: the true P99 may lie anywhere to the right
                "",
                xy=(row["latency_ms_p99"] + span, row["inferences_per_s"]),
                xytext=(row["latency_ms_p99"], row["inferences_per_s"]),
                arrowprops={"arrowstyle": "->", "linestyle": ":", "color": colour},
            )
        for _, row in group.iterrows():
            axes.annotate(
                f"b{row['batch_size']} t{row['threads']}",
                (row["latency_ms_p99"], row["inferences_per_s"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
            )
    if p99_ms is not None:
        axes.axvline(p99_ms, color="grey", linestyle="--", label=f"SLA: P99 {p99_ms:g} ms")
    for _, row in (recommended if recommended is not None else pd.DataFrame()).iterrows():
        sure = row["standing"] == "recommended"
        axes.scatter(
            [row["latency_ms_p99"]],
            [row["inferences_per_s"]],
            marker="*",
            s=260,
            facecolor="gold" if sure else "none",
            edgecolor="black",
            zorder=5,
            label=(
                f"{'recommended' if sure else 'provisional'}: {row['precision']} "
                f"b{row['batch_size']} t{row['threads']} {row['instance']}"
            ),
        )
    axes.set_xlabel("P99 latency per request (ms); bar: 95% interval, dotted arrow: open above")
    axes.set_ylabel(f"throughput ({throughput_unit(ok)})")
    axes.set_title(
        f"{model}: throughput vs P99 latency\n"
        "labels: batch size b, client threads t (each batch at its most-throughput t)",
        fontsize=10,
    )
    from_zero(axes, x=True, y=True)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best", framealpha=0.8)
    return figure_png(figure)


def _finish_pair(figure: Any, pair: tuple[Any, ...], xlabel: str, titles: tuple[str, ...]) -> bytes:
    """Side-by-side plots (one or more) over a doubling x axis (batch size, concurrency):
    label, grid, legend, title each, then the PNG. Ticks are the values plotted, written as
    plain numbers (a log axis would otherwise label them 2^0, 2^2). Every y axis here is a
    rate, a latency or a cost: it starts at zero (set after the x scale: a panel with no
    finite point would otherwise fix linear x limits of 0 to 1 that a log scale refuses)."""
    from matplotlib.ticker import NullFormatter

    for axes, title in zip(pair, titles, strict=True):
        values = sorted({float(x) for line in axes.get_lines() for x in line.get_xdata()})
        axes.set_xlabel(xlabel)
        axes.set_xscale("log", base=2)
        if values:
            axes.set_xticks(values, [f"{v:g}" for v in values])
            axes.xaxis.set_minor_formatter(NullFormatter())
        from_zero(axes, y=True)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        axes.set_title(title)
    return figure_png(figure)


def _p95_panel(axes: Any, rows: pd.DataFrame, colours: dict[Any, Any]) -> None:
    """One instance x precision: a curve per batch size through its client-thread counts."""
    for batch, curve in rows.groupby("batch_size"):
        curve = curve.sort_values("threads")
        x, y = curve["latency_ms_p95"].astype(float), curve["inferences_per_s"].astype(float)
        axes.plot(x, y, marker="o", color=colours[batch], label=f"b{batch}")
        for threads, px, py in zip(curve["threads"], x, y, strict=True):
            axes.annotate(
                f"t{threads}", (px, py), textcoords="offset points", xytext=(3, 3), fontsize=6
            )
    if rows.empty:
        axes.text(0.5, 0.5, "no ok rows", ha="center", transform=axes.transAxes)
    axes.grid(alpha=0.3)


def plot_throughput_vs_p95(ok: pd.DataFrame, model: str) -> bytes:
    """Seed 004's throughput-vs-latency curves: one panel per instance x precision (shared
    axes, so panels compare at a glance; the dearer instance on the left, as in "G5 over
    G4dn"), one curve per batch size (the same colour in every panel), its points the
    client-thread counts in order, each labelled t<threads>."""
    import matplotlib.pyplot as plt

    ok = _with_plotted(ok).dropna(subset=["latency_ms_p95", "inferences_per_s"])
    instances = instances_by_price(ok)
    precisions = sorted(ok["precision"].unique(), key=lambda p: (p != "fp32", p))
    panels = [(p, i) for p in precisions for i in instances]
    columns = max(1, min(len(instances), 4))
    rows = max(1, -(-len(panels) // columns))
    figure, grid = plt.subplots(
        rows,
        columns,
        figsize=(4.1 * columns + 0.3, 3.3 * rows + 1.1),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    colours = dict(zip(sorted(ok["batch_size"].unique()), plt.cm.tab10.colors * 10, strict=False))
    for axes, (precision, instance) in zip(grid.flat, panels, strict=False):
        here = ok[(ok["instance"] == instance) & (ok["precision"] == precision)]
        _p95_panel(axes, here, colours)
        axes.set_title(f"{instance} {precision}", fontsize=9)
    from_zero(grid.flat[0], x=True, y=True)  # shared: every panel follows
    for axes in grid.flat[len(panels) :]:
        axes.set_visible(False)
    for axes in grid[-1]:
        axes.set_xlabel("P95 latency per request (ms)")
    for axes in grid[:, 0]:
        axes.set_ylabel(f"throughput ({throughput_unit(ok)})")
    lines = {line.get_label(): line for axes in grid.flat for line in axes.get_lines()}
    shown = [lines[f"b{batch}"] for batch in colours if f"b{batch}" in lines]
    labels = [line.get_label() for line in shown]
    figure.legend(
        shown,
        labels,
        loc="outside lower center",
        ncols=max(1, len(shown)),
        title="batch size",
        fontsize=8,
    )
    figure.suptitle(
        f"{model}: throughput vs P95 latency per instance and precision\n"
        "one curve per batch size; its points: client threads t1, t2, ...",
        fontsize=10,
    )
    return figure_png(figure)


def _thread_labels(axes: Any, group: pd.DataFrame, column: str) -> None:
    """Each point's client-thread count (t<threads>) beside it: which row the point is."""
    for batch, value, threads in zip(
        group["batch_size"], group[column].astype(float), group["threads"], strict=True
    ):
        if pd.notna(value):
            axes.annotate(
                f"t{threads}", (batch, value), textcoords="offset points", xytext=(3, 3), fontsize=6
            )


def plot_vs_batch(ok: pd.DataFrame, model: str) -> bytes:
    """Throughput and P95 latency against batch size, one line per instance x precision,
    each point the batch size's most-throughput client-thread count (labelled t<threads>)."""
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    best = _best_per_batch(_with_plotted(ok))
    for (instance, precision), group in best.groupby(["instance", "precision"]):
        group = group.sort_values("batch_size")
        label = _series_label(instance, precision)
        left.plot(group["batch_size"], group["inferences_per_s"], marker="o", label=label)
        right.plot(group["batch_size"], group["latency_ms_p95"], marker="o", label=label)
        _thread_labels(left, group, "inferences_per_s")
        _thread_labels(right, group, "latency_ms_p95")
    left.set_ylabel(f"throughput ({throughput_unit(ok)})")
    right.set_ylabel("P95 latency per request (ms)")
    titles = (f"{model}: throughput vs batch size", f"{model}: P95 latency vs batch size")
    return _finish_pair(figure, (left, right), BEST_THREADS_AXIS, titles)


def plot_cost_vs_batch(ok: pd.DataFrame, model: str) -> bytes:
    """$ per million inferences against batch size, one line per instance x precision, each
    point the batch size's most-throughput client-thread count (labelled t<threads>)."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    best = _best_per_batch(ok)
    for (instance, precision), group in best.groupby(["instance", "precision"]):
        group = group.sort_values("batch_size")
        axes.plot(
            group["batch_size"],
            group["usd_per_million_inferences"],
            marker="o",
            label=_series_label(instance, precision),
        )
        _thread_labels(axes, group, "usd_per_million_inferences")
    axes.set_ylabel("$ per million inferences (on-demand)")
    title = f"{model}: cost vs batch size"
    return _finish_pair(figure, (axes,), BEST_THREADS_AXIS, (title,))


def plot_ramp(ramps: pd.DataFrame, model: str) -> bytes:
    """Ramp rows: P50 and P99 latency (with the SLA) and throughput against concurrency; an
    x marks each ramp's first stage with a failed request."""
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for _, row in ramps.iterrows():
        stages = json.loads(row["stages_json"])
        label = f"{row['engine']} {row['instance']} {row['precision']} b{row['batch_size']}"
        concurrency = [s["concurrency"] for s in stages]
        line = left.plot(concurrency, [s["p99_ms"] for s in stages], marker="o", label=label)
        color = line[0].get_color()
        left.plot(concurrency, [s["p50_ms"] for s in stages], linestyle="--", color=color)
        right.plot(concurrency, [s["requests_per_s"] for s in stages], marker="o", label=label)
        for s in stages:
            if s["errors"]:
                left.plot(s["concurrency"], s["p99_ms"], marker="x", markersize=12, color=color)
                break
    slas = ramps["sla_p99_ms"].dropna().unique() if "sla_p99_ms" in ramps else []
    for sla in slas:
        left.axhline(sla, color="grey", linestyle=":", label=f"SLA P99 {sla:g} ms")
    left.set_ylabel("latency (ms): P99 solid, P50 dashed")
    right.set_ylabel("throughput (requests/s)")
    titles = (
        f"{model}: latency vs concurrency (x: first failure)",
        f"{model}: throughput vs concurrency",
    )
    return _finish_pair(figure, (left, right), "concurrent clients", titles)


def plot_load_time(ok: pd.DataFrame) -> bytes:
    """Mean load time per model x engine: load_s with init_s stacked on it."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    times = ok.groupby(["model", "engine"])[["load_s", "init_s"]].mean().fillna(0.0)
    labels = [f"{model}\n{engine}" for model, engine in times.index]
    axes.bar(labels, times["load_s"], label="load_s (checkpoint to device)")
    axes.bar(
        labels,
        times["init_s"],
        bottom=times["load_s"],
        label="init_s (compile / inject / quantise)",
    )
    axes.set_ylabel("seconds (mean over cells)")
    from_zero(axes, y=True)
    axes.set_title("load time per engine")
    axes.legend(fontsize=8)
    axes.tick_params(axis="x", labelsize=8)
    return figure_png(figure)
