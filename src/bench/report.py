"""aggregated.parquet -> plots, a recommendation under a latency SLA, HTML and Markdown.

Plots (PNG, matplotlib, one set per model):
- throughput vs P99 latency, one line per instance x precision (points: batch sizes);
- throughput and $ per million inferences vs batch size (best client-thread count per point);
- load time per engine (load_s with init_s stacked on it);
- ramp rows: P50/P99 (with the SLA) and throughput vs concurrency, first failure marked.
Recommendation: per model, the cheapest ok configuration (by $/M inferences) whose P99 meets
the SLA on the upper end of its 95% interval and whose verdict is `stable`; only where no row
is that sure, the cheapest row meeting it on its estimate alone (an interval the sample count
leaves open, or a drifting or insufficient verdict), marked provisional with why; where no
row meets the SLA, the nearest miss per model and by how much. Then the Pareto
front of P99 latency vs $/M (no other configuration is both faster and cheaper). The HTML page
embeds the PNGs, so it is one self-contained file.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

CONFIG_COLUMNS = ["model", "engine", "instance", "precision", "batch_size", "threads", "tp_degree"]
FIGURES_COLUMNS = [
    "latency_ms_p50",
    "latency_ms_p99",
    "latency_ms_p99_hi",
    "verdict",
    "n",
    "inferences_per_s",
    "usd_per_million_inferences",
]


@dataclass
class Report:
    markdown: str
    html: str
    images: dict[str, bytes]  # file name -> PNG
    recommendations: pd.DataFrame
    pareto: pd.DataFrame


def _with_figures(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows from before intervals and verdicts existed get those columns empty."""
    missing = [c for c in [*FIGURES_COLUMNS, "latency_ms_p99_lo"] if c not in frame.columns]
    return frame.assign(**dict.fromkeys(missing)) if missing else frame


def _p99_upper(frame: pd.DataFrame) -> pd.Series:
    """The upper end of each row's P99 interval, or its estimate where the interval is open."""
    return frame["latency_ms_p99_hi"].astype(float).fillna(frame["latency_ms_p99"].astype(float))


def meets_sla(frame: pd.DataFrame, p99_ms: float) -> pd.Series:
    """A row meets the SLA when the upper end of its P99 interval does: with 95% confidence,
    not by luck of the sample. A row too small to bound its P99 is judged on the estimate,
    and can only ever be a provisional recommendation (see `standing`)."""
    return _p99_upper(frame) <= p99_ms


def standing(frame: pd.DataFrame, p99_ms: float | None) -> pd.Series:
    """'recommended' for a row sure enough to act on (P99 bounded under the SLA, verdict
    stable), else 'provisional: ...' naming what is missing."""
    reasons = pd.Series("", index=frame.index)
    if p99_ms is not None:
        open_interval = frame["latency_ms_p99_hi"].isna()
        reasons = reasons.where(~open_interval, "P99 interval open (too few requests)")
    unstable = frame["verdict"].fillna("no verdict") != "stable"
    verdicts = "verdict " + frame["verdict"].fillna("none").astype(str)
    joined = reasons.where(~unstable, reasons.str.cat(verdicts, sep="; ").str.strip("; "))
    return joined.map(lambda why: f"provisional: {why}" if why else "recommended")


def recommend(frame: pd.DataFrame, p99_ms: float | None) -> pd.DataFrame:
    """Per model, the cheapest ok row meeting the SLA (all ok rows when there is none) that
    is sure enough to act on; only where no row is, the cheapest provisional one. Its
    `standing` column says which."""
    frame = _with_figures(frame)
    ok = frame[frame["status"] == "ok"].dropna(subset=["usd_per_million_inferences"])
    if p99_ms is not None:
        ok = ok[meets_sla(ok, p99_ms)]
    columns = CONFIG_COLUMNS + FIGURES_COLUMNS + ["standing"]
    if ok.empty:
        return ok.assign(standing=pd.Series(dtype=str))[columns]
    ok = ok.assign(standing=standing(ok, p99_ms))
    firm_first = ok.assign(_provisional=ok["standing"] != "recommended").sort_values(
        ["model", "_provisional", "usd_per_million_inferences"], kind="stable"
    )
    best = firm_first.groupby("model", sort=True).head(1)
    return best[columns].reset_index(drop=True)


def nearest_misses(frame: pd.DataFrame, p99_ms: float) -> pd.DataFrame:
    """Per model with no row meeting the SLA: its row closest to it (lowest P99, upper end
    where bounded), and by how much it misses."""
    frame = _with_figures(frame)
    ok = frame[frame["status"] == "ok"].dropna(subset=["latency_ms_p99"])
    met = set(ok[meets_sla(ok, p99_ms)]["model"])
    rest = ok[~ok["model"].isin(met)]
    if rest.empty:
        return rest[CONFIG_COLUMNS + FIGURES_COLUMNS].assign(misses_by_ms=pd.Series(dtype=float))
    rest = rest.assign(_upper=_p99_upper(rest))
    closest = rest.loc[rest.groupby("model")["_upper"].idxmin()]
    over = closest["_upper"] - p99_ms
    closest = closest.assign(
        misses_by_ms=over.round(3), misses_by=(over / p99_ms).map(lambda share: f"+{share:.0%}")
    )
    return closest[[*CONFIG_COLUMNS, *FIGURES_COLUMNS, "misses_by_ms", "misses_by"]].reset_index(
        drop=True
    )


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
    front = ok.loc[keep, CONFIG_COLUMNS + FIGURES_COLUMNS]
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


def _best_per_batch(ok: pd.DataFrame) -> pd.DataFrame:
    """Per instance x precision x batch size, the row with the most throughput (over the
    client-thread counts tried)."""
    return (
        ok.sort_values("inferences_per_s")
        .groupby(["instance", "precision", "batch_size"], as_index=False)
        .last()
    )


def plot_throughput_vs_p99(ok: pd.DataFrame, model: str) -> bytes:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    best = _best_per_batch(ok)
    for (instance, precision), group in best.groupby(["instance", "precision"]):
        group = group.sort_values("batch_size")
        p99 = group["latency_ms_p99"].astype(float)
        # horizontal bars: the P99's 95% interval (an open end, too few samples, is left off)
        low = (p99 - group["latency_ms_p99_lo"].astype(float)).fillna(0).clip(lower=0)
        high = (group["latency_ms_p99_hi"].astype(float) - p99).fillna(0).clip(lower=0)
        axes.errorbar(
            p99,
            group["inferences_per_s"],
            xerr=[low, high],
            marker="o",
            capsize=2,
            label=_series_label(instance, precision),
        )
        for _, row in group.iterrows():
            axes.annotate(
                f"b{row['batch_size']}",
                (row["latency_ms_p99"], row["inferences_per_s"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
            )
    axes.set_xlabel("P99 latency per request (ms)")
    axes.set_ylabel("throughput (inferences/s)")
    axes.set_title(f"{model}: throughput vs P99 latency, 95% interval (labels: batch size)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure_png(figure)


def _finish_pair(figure: Any, pair: tuple[Any, Any], xlabel: str, titles: tuple[str, str]) -> bytes:
    """Side-by-side plots over a doubling x axis (batch size, concurrency): label, grid, legend,
    title each, then the PNG."""

    for axes, title in zip(pair, titles, strict=True):
        axes.set_xlabel(xlabel)
        axes.set_xscale("log", base=2)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        axes.set_title(title)
    return figure_png(figure)


def plot_vs_batch(ok: pd.DataFrame, model: str) -> bytes:
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    best = _best_per_batch(ok)
    for (instance, precision), group in best.groupby(["instance", "precision"]):
        group = group.sort_values("batch_size")
        label = _series_label(instance, precision)
        left.plot(group["batch_size"], group["inferences_per_s"], marker="o", label=label)
        right.plot(
            group["batch_size"], group["usd_per_million_inferences"], marker="o", label=label
        )
    left.set_ylabel("throughput (inferences/s)")
    right.set_ylabel("$ per million inferences (on-demand)")
    sizes = sorted(best["batch_size"].unique())
    for axes in (left, right):
        axes.set_xticks(sizes, [str(s) for s in sizes])
    titles = (f"{model}: throughput vs batch size", f"{model}: cost vs batch size")
    return _finish_pair(figure, (left, right), "batch size", titles)


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


def markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(none)"
    shown = frame.copy()
    for column in shown.select_dtypes("float").columns:
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    shown = shown.astype(object).where(shown.notna(), "")  # an absent figure is blank
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def build_report(
    frame: pd.DataFrame, sweep_id: str, p99_ms: float | None, decisions: Sequence[Any] = ()
) -> Report:
    """The report of one sweep; `decisions`: report_decisions Sections (a comparison with a
    base sweep, a fleet for a target load) placed before the plots."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    frame = _with_figures(frame)
    ok = frame[frame["status"] == "ok"]
    images: dict[str, bytes] = {}
    for model, group in ok.groupby("model"):
        images[f"{model}-throughput-vs-p99.png"] = plot_throughput_vs_p99(group, str(model))
        images[f"{model}-vs-batch-size.png"] = plot_vs_batch(group, str(model))
    if "stages_json" in ok.columns:
        ramps = ok[(ok["scenario"] == "ramp") & ok["stages_json"].notna()]
        for model, group in ramps.groupby("model"):
            images[f"{model}-ramp.png"] = plot_ramp(group, str(model))
    if not ok.empty:
        images["load-time-per-engine.png"] = plot_load_time(ok)
    recommendations = recommend(frame, p99_ms)
    pareto = pareto_front(frame)
    sla = f"P99 <= {p99_ms:g} ms" if p99_ms is not None else "no latency target (sla.p99_ms unset)"
    counts = ", ".join(f"{k} {v}" for k, v in frame["status"].value_counts().items())
    sections = [
        f"# bench report: {sweep_id}",
        f"{len(frame)} cells: {counts}. Costs are on-demand $ per million inferences "
        "(price_per_hour / 3600 / inferences_per_s x 1e6); percentiles are nearest-rank with n.",
        f"## Recommendation ({sla})",
        "The cheapest configuration per model that meets the target on the upper end of its "
        "P99 interval with a stable verdict (`recommended`); a model with no such row gets its "
        "cheapest row that meets it on the estimate alone, marked `provisional` with why:",
        markdown_table(recommendations),
        "## Pareto front: P99 latency vs cost",
        "No other configuration is both faster (P99) and cheaper ($/M):",
        markdown_table(pareto),
    ]
    if p99_ms is not None and not (misses := nearest_misses(frame, p99_ms)).empty:
        sections += [
            "Models with no configuration meeting the target, and their nearest miss (lowest "
            "P99, upper end where bounded):",
            markdown_table(misses),
        ]
    spread = repeat_spread(frame)
    if not spread.empty:
        sections += [
            "## Repeats",
            "Configurations run more than once, each repeat in a fresh process: the spread is "
            "(max - min) / median over the ok repeats.",
            markdown_table(spread.drop(columns=["config_id"])),
        ]
    for decision in decisions:
        sections += decision.markdown
    plots = [f"![{name}]({name})" for name in images]
    for decision in decisions:
        images.update(decision.images)
    sections += ["## Plots", *plots]
    markdown = "\n\n".join(sections) + "\n"
    return Report(markdown, _html(markdown, images), images, recommendations, pareto)


def _html(markdown: str, images: dict[str, bytes]) -> str:
    """The Markdown's content as one HTML page with the PNGs inlined."""
    import html

    body = []
    for block in (b.strip() for b in markdown.split("\n\n")):
        if not block:
            continue
        if block.startswith("# "):
            body.append(f"<h1>{html.escape(block[2:])}</h1>")
        elif block.startswith("## "):
            body.append(f"<h2>{html.escape(block[3:])}</h2>")
        elif block.startswith("| "):
            lines = [line for line in block.splitlines() if not line.startswith("|---")]
            cells = [[html.escape(c.strip()) for c in line.strip("|").split("|")] for line in lines]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            rows = "".join(
                "<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:]
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif block.startswith("!["):
            name = block[block.index("(") + 1 : -1]
            data = base64.b64encode(images[name]).decode()
            body.append(
                f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(name)}</figcaption></figure>"
            )
        else:
            body.append(f"<p>{html.escape(block)}</p>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>bench report</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )
