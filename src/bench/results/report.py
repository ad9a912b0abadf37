"""aggregated.parquet -> plots, a recommendation under a latency SLA, HTML and Markdown.

Recommendation: per model, the cheapest ok configuration (by $/M inferences) whose P99 meets
the SLA on the upper end of its 95% interval and whose stability is `stable` (generation rows
also meet `sla.ttft_ms` and `sla.tpot_ms` on their P99 TTFT and TPOT); only where no row is
that sure, the cheapest row meeting it on its estimate alone (an interval the sample count
leaves open, or a drifting or insufficient stability), marked provisional with why; where no
row meets the SLA, the nearest miss per model and by how much. Then the Pareto front of P99
latency vs $/M (no other configuration is both faster and cheaper), and the plots
(report_plots, each with a caption in words: report_captions). The HTML page embeds the
PNGs, so it is one self-contained file; its text is the Markdown's, rendered (markup).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.results.document import Block, Figure, Heading, Table, Text, to_html, to_markdown
from bench.results.report_captions import plot_alt, plot_caption
from bench.results.report_mme import multi_model_section
from bench.results.report_plots import (
    plot_cost_vs_batch,
    plot_load_time,
    plot_ramp,
    plot_throughput_vs_p95,
    plot_throughput_vs_p99,
    plot_vs_batch,
)
from bench.row.status import Status
from bench.stats import min_samples_bounded

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
CI_LEVEL = 0.95  # the rows' ci_level, for rows from before the column
# The fewest independent requests that bound a P99 from above at CI_LEVEL (368): a row with
# fewer leaves its interval open, and a reader needs the number to know what to run longer
P99_BOUNDED_N = min_samples_bounded(0.99, CI_LEVEL)
OPEN_NOTE = (
    'A cell shown as "open" is an interval end the sample cannot give: too few requests to '
    f"bound the percentile with {CI_LEVEL:.0%} confidence (a P99 needs at least "
    f"{P99_BOUNDED_N} independent requests; neighbouring requests' correlation makes the "
    "count needed larger). A row with an open P99 is judged on its estimate alone and is at "
    "most `provisional`; measuring longer (`scenario.min_requests`) closes it."
)
# Said once above the plots (each plot's caption says it again where it applies)
THREADS_NOTE = (
    "Plots with one point per batch size (throughput vs P99, throughput and P95 against batch "
    "size, cost against batch size) draw each batch size at its best client-thread count: "
    "the one with the highest throughput, labelled t beside the point. The throughput-vs-P95 "
    "curves show every thread count. Axes of throughput, latency and cost start at zero."
)


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
        reasons = reasons.where(~open_interval, _open_reason(frame))
    unstable = frame["stability"].fillna("not judged") != "stable"
    said = "stability " + frame["stability"].fillna("none").astype(str)
    joined = reasons.where(~unstable, reasons.str.cat(said, sep="; ").str.strip("; "))
    return joined.map(lambda why: f"provisional: {why}" if why else "recommended")


def _open_reason(frame: pd.DataFrame) -> pd.Series:
    """Why a row's P99 interval is open, with its request count: its requests were worth
    fewer than the independent ones a bound needs (neighbours' correlation makes a large n
    worth less, so the count alone does not say it was enough)."""
    n = frame["n"] if "n" in frame.columns else pd.Series(float("nan"), index=frame.index)
    worth = f"worth fewer than the {P99_BOUNDED_N} independent ones a bound needs"
    return n.map(
        lambda count: (
            "P99 interval open (too few requests)"
            if pd.isna(count)
            else f"P99 interval open (n={int(count)} requests, {worth})"
        )
    )


def recommend(frame: pd.DataFrame, p99_ms: Sla | float | None) -> pd.DataFrame:
    """Per model, the cheapest ok row meeting the SLA (all ok rows when there is none) that
    is sure enough to act on; only where no row is, the cheapest provisional one. Its
    `standing` column says which. A row whose outputs differ from eager fp32's (quality
    `differs`) is never recommended."""
    sla = as_sla(p99_ms)
    frame = _with_figures(frame)
    ok = frame[frame["status"] == Status.OK].dropna(subset=["usd_per_million_inferences"])
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
    ok = frame[frame["status"] == Status.OK].dropna(subset=["latency_ms_p99"])
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
    ok = frame[frame["status"] == Status.OK].dropna(subset=["usd_per_million_inferences"])
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
    ok = frame[(frame["status"] == Status.OK) & frame["config_id"].notna()]
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


def report_plots(
    ok: pd.DataFrame, recommendations: pd.DataFrame, p99_ms: float | None
) -> dict[str, bytes]:
    """Every plot of the sweep's ok rows, by file name (the name says its kind: captions)."""
    images: dict[str, bytes] = {}
    for model, group in ok.groupby("model"):
        chosen = recommendations[recommendations["model"] == model]
        images[f"{model}-throughput-vs-p99.png"] = plot_throughput_vs_p99(
            group, str(model), p99_ms, chosen
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
    return images


def _tables(
    frame: pd.DataFrame, target: Sla, recommendations: pd.DataFrame, pareto: pd.DataFrame
) -> list[Block]:
    """The recommendation, the Pareto front, the nearest misses and the repeats' spread."""
    blocks: list[Block] = [
        Heading(f"Recommendation ({target})"),
        Text(
            "The cheapest configuration per model that meets the target on the upper end of its "
            "P99 interval and stability `stable` (`recommended`); a model with no such row gets "
            "its cheapest row that meets it on the estimate alone, marked `provisional` with why. "
            "TTFT and TPOT targets hold generation rows to their P99 estimates (no interval); "
            f"a row whose failed requests are over {target.max_failed_share or 0:.2%} of those "
            "sent (`sla.max_failed_share`), or whose outputs differ from eager fp32's "
            "(`quality`), is never chosen; the star on each throughput plot is this row:"
        ),
        Table(recommendations),
        Heading("Pareto front: P99 latency vs cost"),
        Text("No other configuration is both faster (P99) and cheaper ($/M):"),
        Table(pareto),
    ]
    if target.is_set() and not (misses := nearest_misses(frame, target)).empty:
        blocks += [
            Text(
                "Models with no configuration meeting the target, and their nearest miss "
                "(lowest P99, upper end where bounded):"
            ),
            Table(misses),
        ]
    spread = repeat_spread(frame)
    if not spread.empty:
        blocks += [
            Heading("Repeats"),
            Text(
                "Configurations run more than once, each repeat in a fresh process: the "
                "spread is (max - min) / median over the ok repeats."
            ),
            Table(spread.drop(columns=["config_id"])),
        ]
    return blocks


def with_open_note(blocks: list[Block]) -> list[Block]:
    """The blocks with OPEN_NOTE after the first table that shows an "open" cell (once: the
    reader meets the word there first)."""
    for index, block in enumerate(blocks):
        if isinstance(block, Table) and block.has_open():
            return [*blocks[: index + 1], Text(OPEN_NOTE), *blocks[index + 1 :]]
    return blocks


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
    ok = frame[frame["status"] == Status.OK]
    recommendations = recommend(frame, target)
    pareto = pareto_front(frame)
    images = report_plots(ok, recommendations, target.p99_ms)
    counts = ", ".join(f"{k} {v}" for k, v in frame["status"].value_counts().items())
    sections: list[Block] = [
        Heading(f"bench report: {sweep_id}", level=1),
        Text(
            f"{len(frame)} cells: {counts}. Costs are on-demand $ per million inferences "
            "(`price_per_hour / 3600 / inferences_per_s x 1e6`); percentiles are nearest-rank "
            "with n."
        ),
        *_tables(frame, target, recommendations, pareto),
    ]
    if (summary := multi_model_section(frame)) is not None:  # seed 003's four metrics
        sections += summary.blocks
    for decision in decisions:
        sections += decision.blocks
    plots = [Figure(name, plot_caption(name), plot_alt(name)) for name in images]
    for decision in decisions:
        images.update(decision.images)
    sections = with_open_note(sections)
    if plots:
        sections += [Heading("Plots"), Text(THREADS_NOTE), *plots]
    markdown = to_markdown(sections)
    return Report(markdown, to_html(sections, images), images, recommendations, pareto)
