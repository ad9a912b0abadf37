"""`bench compare BASE NEW`: did it get faster or slower, per configuration, beyond noise.

Cells of the two sweeps are matched on what a row says about its configuration (MATCH_KEYS:
model, engine, precision, batch, threads, TP degree, instance, scenario, task shape); where a
matched pair's resolved configs differ anywhere else (an engine option, a model key), the
keys that differ are listed beside it, so a comparison of two torch versions and one of two
engine settings read the same way.

Per pair and metric, the relative change NEW / BASE - 1 with a 95% interval:
- P50 / P90 / P99 latency: from both cells' raw samples (every measured request), by a
  moving-block bootstrap of each sample separately (blocks of ceil(n^(1/3)) consecutive
  requests keep the serial dependence a closed loop has; BOOTSTRAP resamples); the interval is
  the percentile interval of the resampled ratio of quantiles. A quantile needs
  min_samples_supported requests in both cells, else `insufficient data`.
- throughput and $/M inferences: from each row's throughput interval (batch means over time
  windows), combined on the log scale (independent sweeps: the variances add).
A verdict says `faster` / `slower` (latency, throughput) or `cheaper` / `dearer` ($/M) when
the interval excludes no change and the change is at least `noise` (1% by default), else `no
significant change`. The floor is there because an interval from within-run samples cannot
see what differs between two processes (clock, placement, a neighbour): two sweeps of the
same configuration on this machine differ by a few tenths of a percent that a sleep
engine's tight distribution makes "significant" (benchmarks' A/A check). A pair regresses when a
metric moved the wrong way significantly by more than `threshold` (relative); any regression
makes the command exit 1, so a CI job can gate on it.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bench.measure.stats import min_samples_supported
from bench.results.schema import AXIS_COLUMNS
from bench.results.store import Store, SweepPaths

MATCH_KEYS = (
    *AXIS_COLUMNS,
    "scenario",
    "task",
    "seq_len",
    "new_tokens",
    "image_size",
)
# resolved-config keys that never make two measurements different configurations
NOT_CONFIG = ("sweep_id", "cell_id", "index", "models_dir", "axes", "repeat", "price_source")
LATENCY = {"latency_ms_p50": 0.50, "latency_ms_p90": 0.90, "latency_ms_p99": 0.99}
Z95 = 1.959964
BOOTSTRAP = 1000
CONFIDENCE = 0.95


@dataclass
class Comparison:
    table: pd.DataFrame  # one row per matched pair and metric
    only_base: list[str] = field(default_factory=list)  # cell ids with no match in NEW
    only_new: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> pd.DataFrame:
        if self.table.empty:  # nothing matched: no column to read
            return self.table
        return self.table[self.table["regression"]]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def config_differences(base_json: str | None, new_json: str | None) -> list[str]:
    """The resolved-config keys (dotted) whose values differ between two cells."""
    base = _flatten(json.loads(base_json or "{}"))
    new = _flatten(json.loads(new_json or "{}"))
    keys = sorted(set(base) | set(new))
    return [
        k
        for k in keys
        if k.split(".")[0] not in NOT_CONFIG and k not in NOT_CONFIG and base.get(k) != new.get(k)
    ]


def _block_bootstrap_quantile(
    values: np.ndarray, q: float, rng: np.random.Generator, resamples: int
) -> np.ndarray:
    """`resamples` bootstrap replicates of the q-quantile of `values`, resampling blocks of
    consecutive values (moving-block bootstrap) so serial dependence is kept."""
    n = values.size
    block = max(1, math.ceil(n ** (1 / 3)))
    blocks = math.ceil(n / block)
    starts = rng.integers(0, n - block + 1, size=(resamples, blocks))
    index = (starts[:, :, None] + np.arange(block)).reshape(resamples, -1)[:, :n]
    return np.quantile(values[index], q, axis=1, method="inverted_cdf")


def latency_change(
    base_ns: np.ndarray, new_ns: np.ndarray, q: float, seed: int = 0, resamples: int = BOOTSTRAP
) -> tuple[float, float, float] | None:
    """(relative change, low, high) of the q-quantile from NEW vs BASE samples; None when
    either sample is too small to support the quantile."""
    need = min_samples_supported(q)
    if base_ns.size < need or new_ns.size < need:
        return None
    rng = np.random.default_rng(seed)
    point = np.quantile(new_ns, q, method="inverted_cdf") / np.quantile(
        base_ns, q, method="inverted_cdf"
    )
    ratios = _block_bootstrap_quantile(new_ns, q, rng, resamples) / _block_bootstrap_quantile(
        base_ns, q, rng, resamples
    )
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail])
    return float(point - 1), float(low - 1), float(high - 1)


def rate_change(base: pd.Series, new: pd.Series, column: str) -> tuple[float, float, float] | None:
    """(relative change, low, high) of a rate from each row's interval (log scale, the two
    variances added); None without intervals."""
    values = [base.get(column), new.get(column)]
    lows = [base.get(f"{column}_lo"), new.get(f"{column}_lo")]
    highs = [base.get(f"{column}_hi"), new.get(f"{column}_hi")]
    if any(v is None or pd.isna(v) or v <= 0 for v in [*values, *lows, *highs]):
        return None
    spread = sum(
        ((math.log(h) - math.log(lo)) / (2 * Z95)) ** 2 for lo, h in zip(lows, highs, strict=True)
    )
    log_ratio = math.log(values[1]) - math.log(values[0])
    half = Z95 * math.sqrt(spread)
    return (
        math.exp(log_ratio) - 1,
        math.exp(log_ratio - half) - 1,
        math.exp(log_ratio + half) - 1,
    )


def _verdict(
    change: tuple[float, float, float] | None, higher_is: tuple[str, str], noise: float
) -> str:
    """higher_is: the words for a significant rise and a significant fall."""
    if change is None:
        return "insufficient data"
    point, low, high = change
    if low > 0 and point >= noise:
        return higher_is[0]
    if high < 0 and point <= -noise:
        return higher_is[1]
    return "no significant change"


WORSE = {"slower", "dearer"}


def cell_samples(store: Store, row: pd.Series) -> Any:
    """A row's samples table (pyarrow); None when its samples file is gone."""
    import pyarrow.parquet as pq

    path = SweepPaths(str(row["sweep_id"])).samples(str(row["cell_id"]), str(row["attempt_id"]))
    try:
        return pq.read_table(io.BytesIO(store.read_bytes(path)))
    except FileNotFoundError:
        return None


def cell_latencies(store: Store, row: pd.Series) -> np.ndarray:
    """A row's measured request latencies (ns) in send order, ok requests of its first stage;
    empty when its samples file is gone."""
    table = cell_samples(store, row)
    return np.empty(0) if table is None else sample_latencies(table)


def ok_first_stage(table: Any) -> pd.DataFrame:
    """A cell's samples table (pyarrow) as a frame: its ok requests of its first stage (a
    ramp's first stage: comparable across sweeps of the same grid), in send order."""
    frame = table.to_pandas()
    if "ok" in frame:
        frame = frame[frame["ok"].fillna(True)]
    if "stage" in frame:
        frame = frame[frame["stage"] == frame["stage"].min()]
    return frame.sort_values("sent_ns")


def sample_latencies(table: Any, service: bool = False) -> np.ndarray:
    """The latencies (ns) of a cell's samples table (pyarrow), ok requests of its first stage,
    in send order; `service`: each less its wait from scheduled arrival to send (open loop;
    elsewhere the two are one time)."""
    frame = ok_first_stage(table)
    latency = frame["latency_ns"].to_numpy(dtype=float)
    if service and "scheduled_ns" in frame:
        waited = (frame["sent_ns"] - frame["scheduled_ns"].fillna(frame["sent_ns"])).to_numpy()
        latency = latency - waited.astype(float)
    return latency


def _pairs(base: pd.DataFrame, new: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    keys = [k for k in MATCH_KEYS if k in base.columns and k in new.columns]

    def key(frame: pd.DataFrame) -> pd.Series:
        values = frame[keys].astype(object)
        values = values.where(values.notna(), None)  # NaN never equals NaN: compare as None
        return values.apply(lambda row: repr(tuple(row)), axis=1)

    left, right = base.assign(_key=key(base)), new.assign(_key=key(new))
    pairs = left.merge(right, on="_key", suffixes=("_base", "_new"))
    only_base = sorted(left[~left["_key"].isin(right["_key"])]["cell_id"])
    only_new = sorted(right[~right["_key"].isin(left["_key"])]["cell_id"])
    return pairs, only_base, only_new


def compare(
    base_store: Store,
    base: pd.DataFrame,
    new_store: Store,
    new: pd.DataFrame,
    threshold: float = 0.05,
    noise: float = 0.01,
) -> Comparison:
    """Every matched pair of ok rows of BASE and NEW, metric by metric."""
    base = base[base["status"] == "ok"]
    new = new[new["status"] == "ok"]
    pairs, only_base, only_new = _pairs(base, new)
    records = []
    for _, pair in pairs.iterrows():
        b = pd.Series({k.removesuffix("_base"): v for k, v in pair.items() if k.endswith("_base")})
        n = pd.Series({k.removesuffix("_new"): v for k, v in pair.items() if k.endswith("_new")})
        differs = ", ".join(config_differences(b.get("config_json"), n.get("config_json")))
        base_ns, new_ns = cell_latencies(base_store, b), cell_latencies(new_store, n)
        label = {k: b[k] for k in MATCH_KEYS if k in b}
        changes: dict[str, tuple[tuple[float, float, float] | None, tuple[str, str], int]] = {}
        for column, q in LATENCY.items():
            changes[column] = (latency_change(base_ns, new_ns, q), ("slower", "faster"), 1)
        changes["inferences_per_s"] = (
            rate_change(b, n, "inferences_per_s"),
            ("faster", "slower"),
            -1,
        )
        through = changes["inferences_per_s"][0]
        cost = None
        if through is not None and b.get("price_per_hour") and n.get("price_per_hour"):
            price = float(n["price_per_hour"]) / float(b["price_per_hour"])
            cost = tuple(price / (1 + c) - 1 for c in (through[0], through[2], through[1]))
        changes["usd_per_million_inferences"] = (cost, ("dearer", "cheaper"), 1)  # type: ignore[assignment]
        for metric, (change, words, worse_sign) in changes.items():
            verdict = _verdict(change, words, noise)
            moved = change[0] * worse_sign if change is not None else 0.0
            records.append(
                {
                    **label,
                    "metric": metric,
                    "base": b.get(metric),
                    "new": n.get(metric),
                    "change": None if change is None else round(change[0], 4),
                    "change_lo": None if change is None else round(change[1], 4),
                    "change_hi": None if change is None else round(change[2], 4),
                    "verdict": verdict,
                    "regression": verdict in WORSE and moved > threshold,
                    "n_base": int(base_ns.size),
                    "n_new": int(new_ns.size),
                    "config_differs": differs,
                    "base_cell_id": b["cell_id"],
                    "new_cell_id": n["cell_id"],
                }
            )
    return Comparison(pd.DataFrame(records), only_base, only_new)


def comparison_text(result: Comparison, threshold: float) -> str:
    table = result.table
    if table.empty:
        return "no cells of BASE and NEW match (" + ", ".join(MATCH_KEYS) + ")"
    shown = table.assign(
        change=table["change"].map(lambda c: "" if pd.isna(c) else f"{c:+.1%}"),
        interval=[
            "" if pd.isna(lo) else f"{lo:+.1%} .. {hi:+.1%}"
            for lo, hi in zip(table["change_lo"], table["change_hi"], strict=True)
        ],
    )
    columns = ["model", "engine", "precision", "batch_size", "threads", "instance", "metric"]
    columns += ["change", "interval", "verdict"]
    lines = [shown[[c for c in columns if c in shown]].to_string(index=False)]
    for differs in sorted(set(table["config_differs"]) - {""}):
        lines.append(f"configs differ in: {differs}")
    lines += [f"only in BASE: {cell}" for cell in result.only_base]
    lines += [f"only in NEW: {cell}" for cell in result.only_new]
    regressions = result.regressions
    lines.append(
        f"{len(regressions)} regression(s) beyond {threshold:.0%} with 95% confidence"
        if len(regressions)
        else f"no regression beyond {threshold:.0%} with 95% confidence"
    )
    return "\n".join(lines)
