"""`bench run`'s output: one cell's row as a short table, not its hundred-odd columns.

An ok row is a line of headline figures (status, requests, P50 and P99 with P99's 95%
interval, throughput, load time, dollars per million inferences, stability) and a line for
each thing that qualifies them (a percentile from too few requests, a busy host, the
planner's warnings). A row that is not ok is one line: its status, error class and message.
The whole row is `format=json`.
"""

from __future__ import annotations

from typing import Any

from bench.row.status import Status

# (row column, heading), as `sweep` and `collect` head theirs (bench.results.collect)
COLUMNS = (
    ("status", "status"),
    ("n", "n"),
    ("latency_ms_p50", "p50_ms"),
    ("latency_ms_p99", "p99_ms"),
    ("p99_interval", "p99 95% CI"),
    ("inferences_per_s", "inf/s"),
    ("load_s", "load_s"),
    ("usd_per_million_inferences", "$/M inf"),
    ("stability", "stability"),
)
GENERATION = (("ttft_ms_p99", "ttft_p99_ms"), ("tpot_ms_p99", "tpot_p99_ms"))
# Lines under the table, each where the row has it: (column, what it is called)
QUALIFIERS = (
    ("percentile_flags", "percentile flags"),
    ("stability_reason", "stability"),
    ("host_busy_reason", "host busy"),
    ("client_limited_reason", "client limited"),
    ("warnings", "planner warnings"),
)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _interval(row: dict[str, Any]) -> str:
    """P99's 95% interval; an end too few requests cannot give is `?`."""
    low, high = row.get("latency_ms_p99_lo"), row.get("latency_ms_p99_hi")
    if low is None and high is None:
        return ""
    return f"{_text(low) or '?'}-{_text(high) or '?'}"


def _one_line(text: Any) -> str:
    return " ".join(str(text or "").split())


def failure_line(row: dict[str, Any]) -> str:
    """`failed: CELL: ErrorClass: message` on one line."""
    what = ": ".join(p for p in (row.get("error_class"), _one_line(row.get("error"))) if p)
    return f"{row.get('status')}: {row.get('cell_id')}: {what or 'no error recorded'}"


def run_summary(row: dict[str, Any]) -> str:
    """The row as `bench run` prints it (see the module's docstring)."""
    if row.get("status") != Status.OK:
        return failure_line(row)
    columns = list(COLUMNS)
    columns += [c for c in GENERATION if row.get(c[0]) is not None]
    values = {**row, "p99_interval": _interval(row)}
    texts = [_text(values.get(column)) for column, _ in columns]
    widths = [
        max(len(heading), len(text)) for (_, heading), text in zip(columns, texts, strict=True)
    ]
    lines = [
        f"cell {row.get('cell_id')}",
        "  ".join(h.rjust(w) for (_, h), w in zip(columns, widths, strict=True)),
        "  ".join(t.rjust(w) for t, w in zip(texts, widths, strict=True)),
    ]
    shown = [key for key, _ in QUALIFIERS if row.get(key)]
    if row.get("stability") == "stable":  # its reason says only that it was
        shown = [key for key in shown if key != "stability_reason"]
    lines += [f"  {name}: {_one_line(row[key])}" for key, name in QUALIFIERS if key in shown]
    return "\n".join(lines)
