"""The result row: one per cell, whatever happened. Its columns, types and meanings.

The schema is versioned: a column added later bumps SCHEMA_VERSION, and the collector reads
older files with the new columns as nulls.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 3  # 2: download_s, init_s, engine_info; 3: packed cost columns
STATUSES = ("ok", "failed", "unsupported", "infeasible", "timeout")

_TS = pa.timestamp("us", tz="UTC")

# (column, arrow type, meaning). The README's metric definitions describe the same columns.
COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("schema_version", pa.int16(), "row schema version"),
    ("sweep_id", pa.string(), "sweep folder name"),
    ("cell_id", pa.string(), "stable hash of the cell's resolved config, with a readable prefix"),
    ("attempt_id", pa.string(), "one id per execution of the cell (retries differ)"),
    ("cell_index", pa.int32(), "position of the cell in the manifest"),
    ("model", pa.string(), "conf/model name"),
    ("model_family", pa.string(), "architecture family"),
    ("task", pa.string(), "encode | generate"),
    ("engine", pa.string(), "engine name"),
    ("precision", pa.string(), "fp32 | fp16 | bf16"),
    ("batch_size", pa.int32(), "inputs per request"),
    ("seq_len", pa.int32(), "input tokens per sequence"),
    ("new_tokens", pa.int32(), "generated tokens per sequence (0 for encoders)"),
    ("threads", pa.int32(), "concurrent closed-loop client threads"),
    ("tp_degree", pa.int32(), "GPUs one model copy spans"),
    ("instance", pa.string(), "instance type (catalog key)"),
    ("device", pa.string(), "resolved device, e.g. cpu or cuda"),
    ("scenario", pa.string(), "load scenario"),
    ("status", pa.string(), "ok | failed | unsupported | infeasible | timeout"),
    ("error_class", pa.string(), "exception class when not ok"),
    ("error", pa.string(), "error message when not ok"),
    ("params", pa.int64(), "parameters in the loaded model"),
    ("checkpoint", pa.string(), "local folder the weights were loaded from"),
    ("checkpoint_build_s", pa.float64(), "seconds to build the checkpoint from config (not load)"),
    ("download_s", pa.float64(), "seconds to copy a remote (s3://) checkpoint to local disk"),
    ("load_s", pa.float64(), "seconds from a local checkpoint to weights on the device"),
    ("init_s", pa.float64(), "seconds of engine transformation: compile, inject, quantize, shard"),
    ("engine_info", pa.string(), "JSON: what the engine did (device map, TP, kernels, versions)"),
    ("warmup_n", pa.int64(), "warmup requests (excluded from every figure)"),
    ("n", pa.int64(), "measured requests (the sample count behind every percentile)"),
    ("window_s", pa.float64(), "measured window: first measured send to last completion"),
    ("stop_reason", pa.string(), "why measuring stopped: targets_met | max_duration"),
    ("latency_ms_p50", pa.float64(), "nearest-rank 50th percentile request latency"),
    ("latency_ms_p90", pa.float64(), "nearest-rank 90th percentile"),
    ("latency_ms_p95", pa.float64(), "nearest-rank 95th percentile"),
    ("latency_ms_p99", pa.float64(), "nearest-rank 99th percentile"),
    ("latency_ms_mean", pa.float64(), "mean request latency"),
    ("latency_ms_std", pa.float64(), "sample standard deviation of request latency"),
    ("latency_ms_min", pa.float64(), "fastest request"),
    ("latency_ms_max", pa.float64(), "slowest request"),
    ("requests_per_s", pa.float64(), "completed requests / window_s"),
    ("inferences_per_s", pa.float64(), "completed requests x batch_size / window_s"),
    ("tokens_per_s", pa.float64(), "generated tokens/s (generate) or input tokens/s (encode)"),
    ("price_per_hour", pa.float64(), "USD per instance-hour used for the cost columns"),
    ("price_source", pa.string(), "where price_per_hour came from, with its date"),
    ("usd_per_million_inferences", pa.float64(), "price_per_hour / 3600 / inferences_per_s x 1e6"),
    ("usd_per_million_tokens", pa.float64(), "price_per_hour / 3600 / tokens_per_s x 1e6"),
    ("replicas_per_instance", pa.int32(), "model copies one instance holds: floor(GPUs / TP)"),
    ("usd_per_million_inferences_packed", pa.float64(), "the same with every replica busy"),
    ("usd_per_million_tokens_packed", pa.float64(), "tokens likewise, every replica busy"),
    ("peak_rss_mb", pa.float64(), "peak resident memory of the cell process, MiB"),
    ("peak_gpu_mem_mb", pa.float64(), "peak CUDA memory allocated by torch, MiB"),
    ("gpu_name", pa.string(), "CUDA device name"),
    ("gpu_count", pa.int32(), "CUDA devices visible"),
    ("cpu_name", pa.string(), "host CPU model"),
    ("cpu_count", pa.int32(), "logical CPUs on the host"),
    ("torch_threads", pa.int32(), "torch intra-op threads"),
    ("hostname", pa.string(), "host the cell ran on"),
    ("python_version", pa.string(), "Python version"),
    ("torch_version", pa.string(), "torch version"),
    ("transformers_version", pa.string(), "transformers version"),
    ("bench_version", pa.string(), "bench version"),
    ("git_sha", pa.string(), "commit of the harness, when known"),
    ("started_at", _TS, "UTC time the cell started"),
    ("finished_at", _TS, "UTC time the cell finished"),
    ("config_json", pa.string(), "the cell's full resolved config, as JSON"),
]

ROW_SCHEMA = pa.schema([pa.field(name, type_) for name, type_, _ in COLUMNS])
COLUMN_NAMES = frozenset(ROW_SCHEMA.names)


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (dicts) to a table with the row schema; absent columns are null."""
    for row in rows:
        unknown = set(row) - COLUMN_NAMES
        if unknown:
            raise KeyError(f"not row columns: {sorted(unknown)}")
    return pa.Table.from_pylist(rows, schema=ROW_SCHEMA)


def conform(table: pa.Table) -> pa.Table:
    """A table read from any schema version, cast to the current one (new columns null)."""
    if table.schema.equals(ROW_SCHEMA):
        return table
    columns = []
    for field in ROW_SCHEMA:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=ROW_SCHEMA)


SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("thread", pa.int16()),  # client thread that sent the request
        pa.field("sent_ns", pa.int64()),  # send time, ns after the measured window opened
        pa.field("latency_ns", pa.int64()),  # send to complete result on the host
    ]
)
