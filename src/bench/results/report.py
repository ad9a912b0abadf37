"""aggregated.parquet -> plots, a recommendation under a latency SLA, HTML and Markdown.

Plots (PNG, matplotlib, one set per model; throughput in the model's own unit: sentences/s
for an encoder, images/s for an image model, from the rows' `task`):
- throughput vs P99 latency, one line per instance x precision (points: batch sizes);
- throughput vs P95 latency, one panel per instance x precision on shared axes, one curve per
  batch size, its points the client-thread counts (seed 004's throughput-vs-latency curves);
- throughput and P95 latency vs batch size, and $ per million inferences vs batch size (each
  point the batch size's most-throughput client-thread count);
- load time per engine (load_s with init_s stacked on it);
- ramp rows: P50/P99 (with the SLA) and throughput vs concurrency, first failure marked.
Recommendation: per model, the cheapest ok configuration (by $/M inferences) whose P99 meets
the SLA on the upper end of its 95% interval and whose stability is `stable` (generation rows
also meet `sla.ttft_ms` and `sla.tpot_ms` on their P99 TTFT and TPOT); only where no row
is that sure, the cheapest row meeting it on its estimate alone (an interval the sample count
leaves open, or a drifting or insufficient stability), marked provisional with why; where no
row meets the SLA, the nearest miss per model and by how much. Then the Pareto
front of P99 latency vs $/M (no other configuration is both faster and cheaper). The HTML page
embeds the PNGs, so it is one self-contained file.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.results.document import Block, Figure, Heading, Table, Text, to_html, to_markdown

CONFIG_COLUMNS = ["model", "engine", "instance", "precision", "batch_size", "threads", "tp_degree"]
FIGURES_COLUMNS = [
    "latency_ms_p50",
    "latency_ms_p99",
    "latency_ms_p99_hi",
    "stability",
    "n",
    "inferences_per_s",
    "usd_per_million_inferences",
]
# shown beside them when the sweep has generation rows
GENERATION_COLUMNS = ["ttft_ms_p99", "tpot_ms_p99", "usd_per_million_output_tokens"]


SLA_KEYS = ("p99_ms", "ttft_ms", "tpot_ms", "max_failed_share")  # the root config's sla.* keys
MAX_FAILED_SHARE = 0.001  # conf/config.yaml's sla.max_failed_share


@dataclass(frozen=True)
class Sla:
    """The targets a recommendation meets (None: no target). P99 request latency is judged on
    the upper end of its interval; TTFT and TPOT (generation rows only: an encoder has none)
    on their P99 estimates, which carry no interval. A row whose failed requests are over
    `max_failed_share` meets none: its percentiles rank only the requests that succeeded."""

    p99_ms: float | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    max_failed_share: float | None = MAX_FAILED_SHARE

    def __str__(self) -> str:
        parts = [
            f"{name} <= {value:g} ms"
            for name, value in (
                ("P99", self.p99_ms), ("P99 TTFT", self.ttft_ms), ("P99 TPOT", self.tpot_ms)
            )
            if value is not None
        ]  # fmt: skip
        return ", ".join(parts) or "no latency target (sla.p99_ms unset)"

    def is_set(self) -> bool:
        return any(v is not None for v in (self.p99_ms, self.ttft_ms, self.tpot_ms))


def as_sla(target: Sla | float | None) -> Sla:
    """A bare number is a P99 target."""
    return target if isinstance(target, Sla) else Sla(p99_ms=target)


def failed_over(frame: pd.DataFrame, sla: Sla) -> pd.Series:
    """Rows whose share of failed requests is over the SLA's (rows from before the column: 0)."""
    if sla.max_failed_share is None or "failed_share" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["failed_share"].astype(float).fillna(0.0) > sla.max_failed_share


def shown_columns(frame: pd.DataFrame) -> list[str]:
    """The figures a table shows: generation's too when any row generated tokens."""
    generates = "ttft_ms_p99" in frame.columns and frame["ttft_ms_p99"].notna().any()
    return FIGURES_COLUMNS + (GENERATION_COLUMNS if generates else [])


@dataclass
class Report:
    markdown: str
    html: str
    images: dict[str, bytes]  # file name -> PNG
    recommendations: pd.DataFrame
    pareto: pd.DataFrame


def _with_figures(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows from before intervals and stability existed get those columns empty."""
    wanted = [*FIGURES_COLUMNS, *GENERATION_COLUMNS, "latency_ms_p99_lo", "latency_ms_p95", "task"]
    missing = [c for c in wanted if c not in frame.columns]
    return frame.assign(**dict.fromkeys(missing)) if missing else frame


def _p99_upper(frame: pd.DataFrame) -> pd.Series:
    """The upper end of each row's P99 interval, or its estimate where the interval is open."""
    return frame["latency_ms_p99_hi"].astype(float).fillna(frame["latency_ms_p99"].astype(float))


def meets_sla(frame: pd.DataFrame, target: Sla | float) -> pd.Series:
    """A row meets the SLA when the upper end of its P99 interval does: with 95% confidence,
    not by luck of the sample. A row too small to bound its P99 is judged on the estimate,
    and can only ever be a provisional recommendation (see `standing`). A TTFT or TPOT target
    holds a generation row to its P99 TTFT / TPOT; rows without tokens are not held to it."""
    sla = as_sla(target)
    met = ~failed_over(frame, sla)
    if sla.p99_ms is not None:
        met &= _p99_upper(frame) <= sla.p99_ms
    for column, limit in (("ttft_ms_p99", sla.ttft_ms), ("tpot_ms_p99", sla.tpot_ms)):
        if limit is not None:
            values = frame[column].astype(float)
            met &= values.isna() | (values <= limit)
    return met


def standing(frame: pd.DataFrame, p99_ms: float | None) -> pd.Series:
    """'recommended' for a row sure enough to act on (P99 bounded under the SLA, stability
    stable), else 'provisional: ...' naming what is missing."""
    reasons = pd.Series("", index=frame.index)
    if p99_ms is not None:
        open_interval = frame["latency_ms_p99_hi"].isna()
        reasons = reasons.where(~open_interval, "P99 interval open (too few requests)")
    unstable = frame["stability"].fillna("not judged") != "stable"
    said = "stability " + frame["stability"].fillna("none").astype(str)
    joined = reasons.where(~unstable, reasons.str.cat(said, sep="; ").str.strip("; "))
    return joined.map(lambda why: f"provisional: {why}" if why else "recommended")


def recommend(frame: pd.DataFrame, p99_ms: Sla | float | None) -> pd.DataFrame:
    """Per model, the cheapest ok row meeting the SLA (all ok rows when there is none) that
    is sure enough to act on; only where no row is, the cheapest provisional one. Its
    `standing` column says which. A row whose outputs differ from eager fp32's (quality
    `differs`) is never recommended."""
    sla = as_sla(p99_ms)
    frame = _with_figures(frame)
    ok = frame[frame["status"] == "ok"].dropna(subset=["usd_per_million_inferences"])
    ok = ok[meets_sla(ok, sla)]  # without a latency target: the failed-request share alone
    if "quality" in ok.columns:  # outputs unlike eager fp32's answer another question
        ok = ok[ok["quality"].fillna("") != "differs"]
    columns = CONFIG_COLUMNS + shown_columns(frame) + ["standing"]
    if ok.empty:
        return ok.assign(standing=pd.Series(dtype=str))[columns]
    ok = ok.assign(standing=standing(ok, sla.p99_ms))
    firm_first = ok.assign(_provisional=ok["standing"] != "recommended").sort_values(
        ["model", "_provisional", "usd_per_million_inferences"], kind="stable"
    )
    best = firm_first.groupby("model", sort=True).head(1)
    return best[columns].reset_index(drop=True)


def nearest_misses(frame: pd.DataFrame, p99_ms: Sla | float) -> pd.DataFrame:
    """Per model with no row meeting the SLA: its row closest to the P99 target (lowest P99,
    upper end where bounded), and by how much it misses that target."""
    sla = as_sla(p99_ms)
    frame = _with_figures(frame)
    ok = frame[frame["status"] == "ok"].dropna(subset=["latency_ms_p99"])
    met = set(ok[meets_sla(ok, sla)]["model"])
    rest = ok[~ok["model"].isin(met)]
    if rest.empty:
        return rest[CONFIG_COLUMNS + FIGURES_COLUMNS].assign(misses_by_ms=pd.Series(dtype=float))
    rest = rest.assign(_upper=_p99_upper(rest))
    closest = rest.loc[rest.groupby("model")["_upper"].idxmin()]
    target = sla.p99_ms
    over = closest["_upper"] - target if target is not None else closest["_upper"] * float("nan")
    failing = failed_over(closest, sla)
    closest = closest.assign(
        misses_by_ms=over.round(3),
        misses_by=(over / (target or 1)).map(
            lambda share: "" if pd.isna(share) else f"+{share:.0%}" if share > 0 else "TTFT/TPOT"
        ),
    )
    if failing.any():  # its latency may be fine: the requests that failed are not in it
        shares = closest.loc[failing, "failed_share"].astype(float)
        closest.loc[failing, "misses_by"] = shares.map(lambda s: f"failed {s:.1%}")
    columns = [*CONFIG_COLUMNS, *shown_columns(frame), "misses_by_ms", "misses_by"]
    return closest[columns].reset_index(drop=True)


def pareto_front(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows no other row beats on both P99 latency and $/M (per model), sorted by latency."""
    frame = _with_figures(frame)
    ok = frame[frame["status"] == "ok"].dropna(subset=["usd_per_million_inferences"])
    keep = []
    for _, group in ok.groupby("model"):
        best_cost = float("inf")
        for index, row in group.sort_values(
            ["latency_ms_p99", "usd_per_million_inferences"]
        ).iterrows():
            if row["usd_per_million_inferences"] < best_cost:
                keep.append(index)
                best_cost = row["usd_per_million_inferences"]
    front = ok.loc[keep, CONFIG_COLUMNS + shown_columns(frame)]
    return front.sort_values(["model", "latency_ms_p99"]).reset_index(drop=True)


def repeat_spread(frame: pd.DataFrame) -> pd.DataFrame:
    """Per configuration run more than once (repeats=N): how far its ok repeats disagree,
    as (max - min) / median of P50 latency and of throughput. Drift between processes shows
    here, where one cell's own windows cannot see it."""
    if "config_id" not in frame.columns:
        return pd.DataFrame()
    ok = frame[(frame["status"] == "ok") & frame["config_id"].notna()]
    groups = ok.groupby("config_id").filter(lambda g: len(g) > 1).groupby("config_id")
    rows = []
    for config_id, group in groups:
        p50, rate = group["latency_ms_p50"], group["inferences_per_s"]
        rows.append(
            {
                **{c: group.iloc[0][c] for c in CONFIG_COLUMNS},
                "config_id": config_id,
                "repeats": len(group),
                "latency_ms_p50_median": float(p50.median()),
                "p50_spread": float((p50.max() - p50.min()) / p50.median()),
                "inferences_per_s_median": float(rate.median()),
                "throughput_spread": float((rate.max() - rate.min()) / rate.median()),
            }
        )
    return pd.DataFrame(rows)


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
    point), the P99's 95% interval as a bar (an open upper end: a dotted arrow), the SLA as a
    vertical line and the recommended configuration as a star, wherever it lies."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.8))
    best = _best_per_batch(_with_figures(ok))
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
                f"b{row['batch_size']}",
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
    axes.set_title(f"{model}: throughput vs P99 latency (labels: batch size)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best", framealpha=0.8)
    return figure_png(figure)


def _finish_pair(figure: Any, pair: tuple[Any, ...], xlabel: str, titles: tuple[str, ...]) -> bytes:
    """Side-by-side plots (one or more) over a doubling x axis (batch size, concurrency):
    label, grid, legend, title each, then the PNG. Ticks are the values plotted, written as
    plain numbers (a log axis would otherwise label them 2^0, 2^2)."""
    from matplotlib.ticker import NullFormatter

    for axes, title in zip(pair, titles, strict=True):
        values = sorted({float(x) for line in axes.get_lines() for x in line.get_xdata()})
        axes.set_xlabel(xlabel)
        axes.set_xscale("log", base=2)
        if values:
            axes.set_xticks(values, [f"{v:g}" for v in values])
            axes.xaxis.set_minor_formatter(NullFormatter())
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

    ok = _with_figures(ok).dropna(subset=["latency_ms_p95", "inferences_per_s"])
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


def plot_vs_batch(ok: pd.DataFrame, model: str) -> bytes:
    """Throughput and P95 latency against batch size, one line per instance x precision."""
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    best = _best_per_batch(_with_figures(ok))
    for (instance, precision), group in best.groupby(["instance", "precision"]):
        group = group.sort_values("batch_size")
        label = _series_label(instance, precision)
        left.plot(group["batch_size"], group["inferences_per_s"], marker="o", label=label)
        right.plot(group["batch_size"], group["latency_ms_p95"], marker="o", label=label)
    left.set_ylabel(f"throughput ({throughput_unit(ok)})")
    right.set_ylabel("P95 latency per request (ms)")
    titles = (f"{model}: throughput vs batch size", f"{model}: P95 latency vs batch size")
    return _finish_pair(figure, (left, right), "batch size", titles)


def plot_cost_vs_batch(ok: pd.DataFrame, model: str) -> bytes:
    """$ per million inferences against batch size, one line per instance x precision."""
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
    axes.set_ylabel("$ per million inferences (on-demand)")
    title = f"{model}: cost vs batch size"
    return _finish_pair(figure, (axes,), "batch size", (title,))


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
    axes.set_title("load time per engine")
    axes.legend(fontsize=8)
    axes.tick_params(axis="x", labelsize=8)
    return figure_png(figure)


# What to look at in each kind of plot, by the end of its file name (the HTML's caption)
CAPTIONS = {
    "-throughput-vs-p99.png": "Up and to the left is better. The dashed line is the SLA, the "
    "star the recommended configuration (hollow: provisional); a dotted arrow marks a P99 "
    "whose interval is open above (too few requests to bound it).",
    "-throughput-vs-p95.png": "Each curve is one batch size, its points more client threads "
    "(t1, t2, ...): up and to the left is better; where a curve turns flat and runs right, "
    "more clients add only latency. Panels share their axes: compare instances across a row.",
    "-cost-vs-batch-size.png": "$ per million inferences at the on-demand price (each point "
    "the batch size's most-throughput client-thread count): the lowest line at a batch size "
    "is the instance and precision that serve it for least.",
    "-vs-batch-size.png": "Where throughput stops rising with the batch size (the knee), a "
    "larger batch adds only latency: a latency-bound service picks its batch from the P95 "
    "side, a throughput-bound one the knee. Each point is the batch size's most-throughput "
    "client-thread count, the same row on both sides.",
    "-ramp.png": "Latency against concurrent clients: where P99 leaves the SLA, or the first "
    "failed request (x), is the most this configuration takes.",
    "load-time-per-engine.png": "Time from a local checkpoint to a ready model, and the "
    "engine's own preparation (init) stacked on it.",
}


def plot_caption(name: str) -> str:
    """The caption of a report plot: what to look at, then its file name."""
    what = next((text for end, text in CAPTIONS.items() if name.endswith(end)), "")
    return f"{what} ({name})" if what else name


def build_report(
    frame: pd.DataFrame,
    sweep_id: str,
    p99_ms: Sla | float | None,
    decisions: Sequence[Any] = (),
) -> Report:
    """The report of one sweep under an SLA (a bare number: a P99 target); `decisions`:
    report_decisions Sections (a comparison with a base sweep, a fleet for a target load)
    placed before the plots."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    target = as_sla(p99_ms)
    frame = _with_figures(frame)
    ok = frame[frame["status"] == "ok"]
    recommendations = recommend(frame, target)
    images: dict[str, bytes] = {}
    for model, group in ok.groupby("model"):
        chosen = recommendations[recommendations["model"] == model]
        images[f"{model}-throughput-vs-p99.png"] = plot_throughput_vs_p99(
            group, str(model), target.p99_ms, chosen
        )
        if group["latency_ms_p95"].notna().any():
            images[f"{model}-throughput-vs-p95.png"] = plot_throughput_vs_p95(group, str(model))
        images[f"{model}-vs-batch-size.png"] = plot_vs_batch(group, str(model))
        images[f"{model}-cost-vs-batch-size.png"] = plot_cost_vs_batch(group, str(model))
    if "stages_json" in ok.columns:
        ramps = ok[ok["stages_json"].notna()]
        for model, group in ramps.groupby("model"):
            images[f"{model}-ramp.png"] = plot_ramp(group, str(model))
    if not ok.empty:
        images["load-time-per-engine.png"] = plot_load_time(ok)
    pareto = pareto_front(frame)
    sla = str(target)
    counts = ", ".join(f"{k} {v}" for k, v in frame["status"].value_counts().items())
    sections: list[Block] = [
        Heading(f"bench report: {sweep_id}", level=1),
        Text(
            f"{len(frame)} cells: {counts}. Costs are on-demand $ per million inferences "
            "(price_per_hour / 3600 / inferences_per_s x 1e6); percentiles are nearest-rank "
            "with n."
        ),
        Heading(f"Recommendation ({sla})"),
        Text(
            "The cheapest configuration per model that meets the target on the upper end of its "
            "P99 interval and stability `stable` (`recommended`); a model with no such row gets "
            "its cheapest row that meets it on the estimate alone, marked `provisional` with why. "
            "TTFT and TPOT targets hold generation rows to their P99 estimates (no interval); "
            f"a row whose failed requests are over {target.max_failed_share or 0:.2%} of those "
            "sent (sla.max_failed_share), or whose outputs differ from eager fp32's (quality), "
            "is never chosen; the star on each throughput plot is this row:"
        ),
        Table(recommendations),
        Heading("Pareto front: P99 latency vs cost"),
        Text("No other configuration is both faster (P99) and cheaper ($/M):"),
        Table(pareto),
    ]
    if target.is_set() and not (misses := nearest_misses(frame, target)).empty:
        sections += [
            Text(
                "Models with no configuration meeting the target, and their nearest miss "
                "(lowest P99, upper end where bounded):"
            ),
            Table(misses),
        ]
    spread = repeat_spread(frame)
    if not spread.empty:
        sections += [
            Heading("Repeats"),
            Text(
                "Configurations run more than once, each repeat in a fresh process: the "
                "spread is (max - min) / median over the ok repeats."
            ),
            Table(spread.drop(columns=["config_id"])),
        ]
    for decision in decisions:
        sections += decision.blocks
    plots = [Figure(name, plot_caption(name)) for name in images]
    for decision in decisions:
        images.update(decision.images)
    sections += [Heading("Plots"), *plots]
    markdown = to_markdown(sections)
    return Report(markdown, to_html(sections, images), images, recommendations, pareto)
