"""`bench compare BASE NEW`: did it get faster or slower, per configuration, beyond noise.

Cells of the two sweeps are matched on what a row says about its configuration (MATCH_KEYS:
model, engine, precision, batch, threads, TP degree, instance, scenario, task shape, and any
grid axis that varies within both sides); where a matched pair's resolved configs differ
anywhere else (an engine option, a model key), the keys that differ are listed beside it, so a
comparison of two torch versions and one of two engine settings read the same way. A
configuration's runs (`repeats=K`: rows sharing a `config_id`) are one side of a pair.
`compare_ab.split_sides` makes BASE and NEW from one interleaved A/B sweep instead.

Per pair and metric, the relative change NEW / BASE - 1 with a 95% interval, from one of:
- **runs** (a side with two or more runs): the spread between runs, Welch's t on the log of
  each run's value (compare_runs): the interval holds how the host changes between runs;
- **requests** (one run per side): within that run only, as before issue 37:
  - P50 / P90 / P99 latency: from both cells' raw samples (every measured request), by a
    moving-block bootstrap of each sample separately (blocks of ceil(n^(1/3)) consecutive
    requests keep the serial dependence a closed loop has; BOOTSTRAP resamples); the interval
    is the percentile interval of the resampled ratio of quantiles;
  - throughput and $/M inferences: from each row's throughput interval (batch means over time
    windows), combined on the log scale (independent sweeps: the variances add).
  Such an interval cannot see what differs between two processes (clock, placement, a
  neighbour): on a busy host two runs of one configuration differ by more than it (A/A flaps),
  which the output says, with what repeats would resolve.
A latency quantile needs min_samples_supported requests in every run, else `insufficient
data`. A verdict says `faster` / `slower` (latency, throughput) or `cheaper` / `dearer` ($/M)
when the interval excludes no change and the change is at least `noise` (1% by default), else
`no significant change`. A pair regresses when a metric moved the wrong way significantly and
by more than `threshold` (relative). `resolvable_change` is the smallest true change the pair's
interval detects 80% of the time (never under `noise`): over `threshold`, the data cannot
answer the gate's question. The noise guard (compare_host) compares both sides' host facts.
Exit codes (`Comparison.exit_code`): 0 no regression, 1 regression, 3 the hosts differed
(mismatched or unequally loaded): re-run, never reported as a regression; 2 is the CLI's
usage error.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bench.results.compare_host import HostCheck, check_host
from bench.results.compare_runs import (
    resolvable_from_interval,
    run_change,
    what_repeats_buy,
)
from bench.row.schema import AXIS_COLUMNS
from bench.row.status import Status
from bench.stats import min_samples_supported
from bench.store import Store, SweepPaths

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


EXIT_NO_REGRESSION, EXIT_REGRESSION, EXIT_RERUN = 0, 1, 3  # 2: the CLI's usage error


@dataclass
class Comparison:
    table: pd.DataFrame  # one row per matched pair and metric
    only_base: list[str] = field(default_factory=list)  # config ids with no match in NEW
    only_new: list[str] = field(default_factory=list)
    host: HostCheck | None = None  # the noise guard's finding; None: not checked
    notes: list[str] = field(default_factory=list)  # what the intervals rest on, one per line

    @property
    def regressions(self) -> pd.DataFrame:
        if self.table.empty:  # nothing matched: no column to read
            return self.table
        return self.table[self.table["regression"]]

    @property
    def exit_code(self) -> int:
        """3 when the hosts differed (a verdict there may be the host's: re-run, never 1), else
        1 on a regression, else 0."""
        if self.host is not None and self.host.rerun:
            return EXIT_RERUN
        return EXIT_REGRESSION if len(self.regressions) else EXIT_NO_REGRESSION


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


@dataclass(frozen=True)
class Change:
    """One metric's relative change NEW / BASE - 1, its interval and what it can resolve."""

    change: float
    low: float
    high: float
    resolvable: float


def _group_ids(frame: pd.DataFrame) -> pd.Series:
    """A configuration's id per row: `config_id` (shared by its repeats), else the cell id."""
    cells = frame["cell_id"].astype(str)
    if "config_id" not in frame:
        return cells
    return frame["config_id"].where(frame["config_id"].notna(), cells).astype(str)


def _row_axes(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Each row's grid axes and its values on them (from its resolved config)."""
    out = []
    for raw in frame["config_json"] if "config_json" in frame else [None] * len(frame):
        try:
            out.append(json.loads(raw).get("axes") or {} if isinstance(raw, str) else {})
        except ValueError:
            out.append({})
    return out


def _varying(axes: list[dict[str, Any]]) -> set[str]:
    """The axes that take more than one value among these rows."""
    seen: dict[str, set[str]] = {}
    for found in axes:
        for name, value in found.items():
            seen.setdefault(name, set()).add(json.dumps(value, sort_keys=True, default=str))
    return {name for name, values in seen.items() if len(values) > 1}


def _pairs(
    base: pd.DataFrame, new: pd.DataFrame, split_key: str | None = None
) -> tuple[list[tuple[pd.DataFrame, pd.DataFrame]], list[str], list[str]]:
    """Matched (BASE runs, NEW runs) of each configuration, and the config ids of each side
    that matched nothing. Matched on MATCH_KEYS and on the grid axes that vary within both
    sides (two sweeps of `engine.service_ms=[40,44]` pair 40 with 40), never on `split_key`
    (the A/B axis a sweep was split on)."""
    keys = [k for k in MATCH_KEYS if k in base.columns and k in new.columns and k != split_key]
    base_axes, new_axes = _row_axes(base), _row_axes(new)
    shared = sorted((_varying(base_axes) & _varying(new_axes)) - {split_key or ""} - set(keys))

    def key(frame: pd.DataFrame, axes: list[dict[str, Any]]) -> list[str]:
        values = frame[keys].astype(object)
        values = values.where(values.notna(), None)  # NaN never equals NaN: compare as None
        return [
            repr((tuple(row), tuple(json.dumps(a.get(k), default=str) for k in shared)))
            for row, a in zip(values.itertuples(index=False), axes, strict=True)
        ]

    left = base.assign(_key=key(base, base_axes), _group=_group_ids(base))
    right = new.assign(_key=key(new, new_axes), _group=_group_ids(new))
    order = "repeat" if "repeat" in left.columns and "repeat" in right.columns else "cell_id"
    # each side's configurations (their runs) under each match key, in the side's own order
    sides = [
        {
            match: [runs.sort_values(order) for _, runs in rows.groupby("_group", sort=False)]
            for match, rows in frame.groupby("_key", sort=False)
        }
        for frame in (left, right)
    ]
    pairs = [
        (b_rows, n_rows)
        for match, configs in sides[0].items()
        for b_rows in configs
        for n_rows in sides[1].get(match, [])
    ]
    only_base = sorted(set(left[~left["_key"].isin(right["_key"])]["_group"]))
    only_new = sorted(set(right[~right["_key"].isin(left["_key"])]["_group"]))
    return pairs, only_base, only_new


def _runs(rows: pd.DataFrame, column: str) -> np.ndarray:
    if column not in rows:
        return np.empty(0)
    return pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=float)


def _geometric_mean(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values) & (values > 0)]
    return float(np.exp(np.log(values).mean())) if values.size else None


def _over_runs(b_rows: pd.DataFrame, n_rows: pd.DataFrame) -> dict[str, Change | None]:
    """Each metric's change from per-run values (compare_runs: Welch's t on the log scale)."""
    changes: dict[str, Change | None] = {}
    counts = np.concatenate([_runs(b_rows, "n"), _runs(n_rows, "n")])
    for column in (*LATENCY, "inferences_per_s", "usd_per_million_inferences"):
        need = min_samples_supported(LATENCY[column]) if column in LATENCY else 1
        found = None
        if not (np.isnan(counts).any() or (counts < need).any()):
            found = run_change(_runs(b_rows, column), _runs(n_rows, column))
        changes[column] = (
            None if found is None else Change(found.change, found.low, found.high, found.resolvable)
        )
    return changes


def _within_one_run(
    base_store: Store, b: pd.Series, new_store: Store, n: pd.Series
) -> tuple[dict[str, Change | None], int, int]:
    """Each metric's change from one run per side (its requests, or its row's intervals), and
    the two runs' request counts."""
    base_ns, new_ns = cell_latencies(base_store, b), cell_latencies(new_store, n)
    found: dict[str, tuple[float, float, float] | None] = {
        column: latency_change(base_ns, new_ns, q) for column, q in LATENCY.items()
    }
    through = rate_change(b, n, "inferences_per_s")
    found["inferences_per_s"] = through
    cost = None
    if through is not None and b.get("price_per_hour") and n.get("price_per_hour"):
        price = float(n["price_per_hour"]) / float(b["price_per_hour"])
        # $/M falls as throughput rises: its low end comes from throughput's high end
        point, low, high = (price / (1 + c) - 1 for c in (through[0], through[2], through[1]))
        cost = (point, low, high)
    found["usd_per_million_inferences"] = cost
    changes = {
        metric: None if c is None else Change(*c, resolvable_from_interval(c[1], c[2]))
        for metric, c in found.items()
    }
    return changes, int(base_ns.size), int(new_ns.size)


DIRECTION = {  # metric: (words for a significant rise and fall, sign that makes it worse)
    **{column: (("slower", "faster"), 1) for column in LATENCY},
    "inferences_per_s": (("faster", "slower"), -1),
    "usd_per_million_inferences": (("dearer", "cheaper"), 1),
}


def _pair_records(
    base_store: Store,
    b_rows: pd.DataFrame,
    new_store: Store,
    n_rows: pd.DataFrame,
    threshold: float,
    noise: float,
) -> list[dict[str, Any]]:
    """One record per metric for a matched configuration's runs."""
    b, n = b_rows.iloc[0], n_rows.iloc[0]
    differs = ", ".join(config_differences(b.get("config_json"), n.get("config_json")))
    over_runs = len(b_rows) > 1 or len(n_rows) > 1
    if over_runs:
        changes = _over_runs(b_rows, n_rows)
        n_base, n_new = int(np.nansum(_runs(b_rows, "n"))), int(np.nansum(_runs(n_rows, "n")))
    else:
        changes, n_base, n_new = _within_one_run(base_store, b, new_store, n)
    label = {k: b[k] for k in MATCH_KEYS if k in b}
    records = []
    for metric, change in changes.items():
        words, worse_sign = DIRECTION[metric]
        point = None if change is None else (change.change, change.low, change.high)
        verdict = _verdict(point, words, noise)
        moved = change.change * worse_sign if change is not None else 0.0
        shown = (
            (_geometric_mean(_runs(b_rows, metric)), _geometric_mean(_runs(n_rows, metric)))
            if over_runs
            else (b.get(metric), n.get(metric))
        )
        records.append(
            {
                **label,
                "metric": metric,
                "base": shown[0],
                "new": shown[1],
                "change": None if change is None else round(change.change, 4),
                "change_lo": None if change is None else round(change.low, 4),
                "change_hi": None if change is None else round(change.high, 4),
                "verdict": verdict,
                "regression": verdict in WORSE and moved > threshold,
                # never under the floor: a smaller change is never called, whatever its interval
                "resolvable_change": None
                if change is None
                else round(max(noise, change.resolvable), 4),
                "interval_over": "runs" if over_runs else "requests",
                "runs_base": len(b_rows),
                "runs_new": len(n_rows),
                "n_base": n_base,
                "n_new": n_new,
                "config_differs": differs,
                "base_cell_id": b["cell_id"],
                "new_cell_id": n["cell_id"],
            }
        )
    return records


def compare(
    base_store: Store,
    base: pd.DataFrame,
    new_store: Store,
    new: pd.DataFrame,
    threshold: float = 0.05,
    noise: float = 0.01,
    split_key: str | None = None,
    host_check: bool = True,
) -> Comparison:
    """Every matched configuration of ok rows of BASE and NEW, metric by metric; `split_key`:
    the A/B axis BASE and NEW were split from one sweep on (never matched on); `host_check`:
    run the noise guard (compare_host) on the rows the verdicts rest on."""
    base = base[base["status"] == Status.OK]
    new = new[new["status"] == Status.OK]
    pairs, only_base, only_new = _pairs(base, new, split_key)
    records = []
    for b_rows, n_rows in pairs:
        records += _pair_records(base_store, b_rows, new_store, n_rows, threshold, noise)
    table = pd.DataFrame(records)
    host = None
    if host_check and pairs:
        used_base = pd.concat([b for b, _ in pairs]).drop_duplicates("cell_id")
        used_new = pd.concat([n for _, n in pairs]).drop_duplicates("cell_id")
        host = check_host(used_base, used_new)
        if not table.empty:
            table["host_check"] = "ok" if not host.rerun else host.line().removeprefix("host: ")
    notes = _notes(table, pairs, threshold) if pairs else []
    return Comparison(table, only_base, only_new, host, notes)


def _notes(
    table: pd.DataFrame, pairs: list[tuple[pd.DataFrame, pd.DataFrame]], threshold: float
) -> list[str]:
    """What the intervals rest on, and what they cannot resolve, one line each."""
    notes = []
    runs = [(len(b), len(n)) for b, n in pairs]
    multi = [r for r in runs if max(r) > 1]
    if multi:
        sides = {f"{b} vs {n}" for b, n in multi}
        notes.append(
            f"intervals over runs for {len(multi)} configuration(s) ({', '.join(sorted(sides))} "
            "runs): Welch's t on the log of each run's value; runs assumed independent"
        )
        if pooled := sum(1 for r in multi if min(r) == 1):
            notes.append(
                f"{pooled} configuration(s) have one run on one side: its run-to-run spread "
                "is assumed to be the other side's"
            )
    if single := len(runs) - len(multi):
        busy = any(
            bool(frame["host_busy"].fillna(False).any())
            for b, n in pairs
            if max(len(b), len(n)) == 1
            for frame in (b, n)
            if "host_busy" in frame
        )
        notes.append(
            f"one run per side for {single} configuration(s): intervals are within one run "
            "only (its requests) and blind to how the host changes between runs"
            + (" (and the host was busy: such verdicts flap)" if busy else "")
            + f"; repeats=K per side would resolve a change of about {what_repeats_buy()} "
            "the metric's run-to-run spread (which one run cannot show)"
        )
    if not table.empty:
        known = table[table["resolvable_change"].notna()]
        if blind := int((known["resolvable_change"] > threshold).sum()):
            notes.append(
                f"{blind} of {len(known)} metric(s) cannot resolve a {threshold:.0%} change "
                "(resolvable_change over the threshold): more repeats or longer runs would"
            )
    return notes


def comparison_text(result: Comparison, threshold: float) -> str:
    """The comparison as a table, its notes, the host check and the gate's line."""
    table = result.table
    if table.empty:
        return "no cells of BASE and NEW match (" + ", ".join(MATCH_KEYS) + ")"
    shown = table.assign(
        change=table["change"].map(lambda c: "" if pd.isna(c) else f"{c:+.1%}"),
        interval=[
            "" if pd.isna(lo) else f"{lo:+.1%} .. {hi:+.1%}"
            for lo, hi in zip(table["change_lo"], table["change_hi"], strict=True)
        ],
        resolves=table["resolvable_change"].map(lambda c: "" if pd.isna(c) else f"{c:.1%}"),
        runs=[f"{b}v{n}" for b, n in zip(table["runs_base"], table["runs_new"], strict=True)],
    )
    columns = ["model", "engine", "precision", "batch_size", "threads", "instance", "metric"]
    columns += ["runs", "change", "interval", "resolves", "verdict"]
    lines = [shown[[c for c in columns if c in shown]].to_string(index=False)]
    for differs in sorted(set(table["config_differs"]) - {""}):
        lines.append(f"configs differ in: {differs}")
    lines += [f"only in BASE: {cell}" for cell in result.only_base]
    lines += [f"only in NEW: {cell}" for cell in result.only_new]
    lines += result.notes
    if result.host is not None:
        lines.append(result.host.line())
    regressions = result.regressions
    if result.exit_code == EXIT_RERUN:
        lines.append(
            f"{len(regressions)} apparent regression(s) beyond {threshold:.0%}: not a verdict "
            "on this host (exit 3: re-run)"
        )
    else:
        lines.append(
            f"{len(regressions)} regression(s) beyond {threshold:.0%} with 95% confidence"
            if len(regressions)
            else f"no regression beyond {threshold:.0%} with 95% confidence"
        )
    return "\n".join(lines)
