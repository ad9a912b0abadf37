"""Seed 003's summary of a multi-model endpoint sweep (scenario=multi_model): per model and
instance type, the study's four metrics for each engine (how many models one instance holds,
latency, throughput, and the most concurrent users before the first failed request), and the
compiled engine against PyTorch eager (the study's TensorRT against PyTorch).

The compiled side is any engine other than `hf` (onnxruntime with its tensorrt provider,
tensorrt, torch_compile); PyTorch is `hf`. Each ratio is compiled / PyTorch."""

from __future__ import annotations

import json

import pandas as pd

from bench.results.document import Heading, Table, Text
from bench.results.report_decisions import Section
from bench.row.status import Status

EAGER = "hf"
# (row column, the table's heading); the study's four metrics
METRICS = (
    ("max_models_loaded", "models loaded"),
    ("warm_latency_ms_p50", "P50 ms (warm)"),
    ("warm_latency_ms_p99", "P99 ms (warm)"),
    ("max_rps_without_failure", "max requests/s without failure"),
    ("max_users_before_failure", "max users before a failure"),
)


def _engine_label(row: pd.Series) -> str:
    """`hf` is PyTorch; onnxruntime says its provider (tensorrt: the study's TensorRT)."""
    if row["engine"] == EAGER:
        return "PyTorch (hf)"
    info = json.loads(row["engine_info"]) if isinstance(row.get("engine_info"), str) else {}
    # the session's providers (onnxruntime's engine_info), or the one asked for
    providers = info.get("providers") or [info.get("provider") or ""]
    tensorrt = any(str(p).lower().startswith("tensorrt") for p in providers)
    return f"{row['engine']}{' tensorrt' if tensorrt else ''} {row['precision']}"


def multi_model_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One line per model, instance and engine of the ok multi_model rows, with the ratios of
    each compiled engine to PyTorch's line on the same model and instance."""
    if "scenario" not in frame.columns:
        return pd.DataFrame()
    rows = frame[(frame["status"] == Status.OK) & (frame["scenario"] == "multi_model")]
    wanted = [column for column, _ in METRICS if column in rows.columns]
    if rows.empty or not wanted:
        return pd.DataFrame()
    lines = []
    for (model, instance), group in rows.groupby(["model", "instance"], sort=True):
        eager = group[group["engine"] == EAGER]
        base = eager.iloc[0] if len(eager) else None
        for _, row in group.sort_values(["engine", "precision"]).iterrows():
            line = {"model": model, "instance": instance, "engine": _engine_label(row)}
            line.update({heading: row[column] for column, heading in METRICS if column in wanted})
            if base is not None and row["engine"] != EAGER:
                for column, heading in METRICS:
                    if column in wanted and pd.notna(base[column]) and base[column]:
                        line[f"{heading} x"] = round(float(row[column]) / float(base[column]), 2)
            lines.append(line)
    return pd.DataFrame(lines)


def multi_model_section(frame: pd.DataFrame) -> Section | None:
    """The summary section, or None for a sweep without multi_model rows."""
    table = multi_model_table(frame)
    if table.empty:
        return None
    explained = (
        "Each line is one engine serving many models in one process (scenario=multi_model): "
        "how many models fit before memory passed its threshold, warm-request latency (cold "
        "starts apart), the highest requests/s of a stage without a failed request, and the "
        "most concurrent users before the first failure. The `x` columns are the compiled "
        "engine over PyTorch on the same model and instance (latency: below 1 is faster; the "
        "rest: above 1 is more)."
    )
    return Section([Heading("Multi-model endpoint: PyTorch against compiled"), Text(explained),
                    Table(table)])  # fmt: skip
