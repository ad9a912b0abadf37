"""The result row: one per cell, whatever happened. Its columns, types and meanings.

The schema is versioned: a shared column added later bumps SCHEMA_VERSION, and the collector
reads older files with the new columns as nulls. Each scenario's own columns are declared by
its class (bench.measure.scenarios) and placed after the open-loop columns.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from bench.measure.scenarios import scenario_columns
from bench.measure.workloads import workload_columns

SCHEMA_VERSION = 13
# 2: download_s, init_s, engine_info; 3: packed cost columns; 4: confidence intervals,
# stability verdict, repeats, generation metrics, scenarios (ramp, open loop, capacity) and
# the fuller environment; 5: import_s, intervals valid under serial dependence (ci_method,
# n_effective), verdict stable | drifting | insufficient, precision_method, memory per phase
# and per GPU, thread policy, sync_scope; 6: in_container, image_pins, image_size, tasks
# seq2seq and classify_image; 7: pricing (ec2 | sagemaker | override), warnings (the
# planner's: a borderline memory estimate, int8 without int8 tensor cores); 8: telemetry of the
# measured window (host load and steal, host_busy; GPU utilisation, power, SM clock by NVML);
# server_exit_code (engine=http's server mode), request_errors; 9: the columns a scenario owns
# come from its class (a new scenario's columns are nullable additions: no bump needed), the
# ramp's headline_concurrency (threads stays the configured axis), capacity's
# memory_trace_json (stages_json holds ramp stages only), stability and stability_reason
# (were verdict, verdict_reason: `verdict` is compare's word alone); 10: the Python
# garbage collections inside the window (gc_*); 11: the workload (workload, workload_params,
# distinct_prompts), token counts per request as sent and received (input_tokens_*,
# server_input_tokens_*, output_tokens_asked_*, output_tokens_*, token_source,
# token_mismatches), goodput under per-request SLOs (slo, slo_*_met_share, goodput_per_s);
# samples carry each request's counts and turn; the server's own metrics (server_*), the
# client's health (client_limited, client_cpus_mean); sla_search's columns; 12: failed_share
# (a failed request is flagged in percentile_flags, and report recommends no cell over
# sla.max_failed_share), each TP rank's memory around its load (rank_peak_rss_mb,
# rank_memory_json); 13: the output check against eager fp32 (quality, quality_*)
# The columns that say which configuration a row measured (its grid axes), in reading order.
AXIS_COLUMNS = ("model", "engine", "precision", "batch_size", "threads", "tp_degree", "instance")

_TS = pa.timestamp("us", tz="UTC")

# (column, arrow type, meaning). The README's metric definitions describe the same columns.
COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("schema_version", pa.int16(), "row schema version"),
    ("sweep_id", pa.string(), "sweep folder name"),
    ("cell_id", pa.string(), "stable hash of the cell's resolved config, with a readable prefix"),
    ("attempt_id", pa.string(), "one id per execution of the cell (retries differ)"),
    ("cell_index", pa.int32(), "position of the cell in the manifest"),
    ("config_id", pa.string(), "cell_id without the repeat: the same for every repeat"),
    ("repeat", pa.int32(), "which repeat of the configuration (0 .. repeats-1)"),
    ("model", pa.string(), "conf/model name"),
    ("model_family", pa.string(), "architecture family"),
    ("task", pa.string(), "encode | generate | seq2seq | classify_image (bench.config.tasks)"),
    ("engine", pa.string(), "engine name"),
    (
        "precision",
        pa.string(),
        "fp32 | fp16 | bf16 (cast) | amp_fp16 | amp_bf16 (autocast, fp32 weights) | int8",
    ),
    ("precision_method", pa.string(), "none | cast | autocast | quantized"),
    ("batch_size", pa.int32(), "inputs per request"),
    ("seq_len", pa.int32(), "input tokens per sequence (0 for images)"),
    ("image_size", pa.int32(), "pixels per side of each input image (image tasks)"),
    ("new_tokens", pa.int32(), "generated tokens per sequence (0 for encoders)"),
    ("threads", pa.int32(), "concurrent closed-loop client threads"),
    ("tp_degree", pa.int32(), "GPUs one model copy spans"),
    ("instance", pa.string(), "instance type (catalog key)"),
    ("device", pa.string(), "resolved device, e.g. cpu or cuda"),
    ("scenario", pa.string(), "load scenario"),
    ("workload", pa.string(), "what each request carried (conf/workload): synthetic, dataset, ..."),
    ("workload_params", pa.string(), "the workload's options that differ from its defaults"),
    ("distinct_prompts", pa.int64(), "distinct prompts sent (warmup included; 1: a repeat)"),
    ("status", pa.string(), "ok | failed | unsupported | infeasible | timeout"),
    ("error_class", pa.string(), "exception class when not ok"),
    ("error", pa.string(), "error message when not ok"),
    (
        "warnings",
        pa.string(),
        "the planner's warnings, '; '-separated: memory estimate over usable GPU memory by "
        "at most fit.margin (borderline), int8 below compute capability 7.5 (slower)",
    ),
    ("params", pa.int64(), "parameters in the loaded model"),
    ("checkpoint", pa.string(), "local folder the weights were loaded from"),
    ("checkpoint_build_s", pa.float64(), "seconds to build the checkpoint from config (not load)"),
    ("download_s", pa.float64(), "seconds to copy a remote (s3://) checkpoint to local disk"),
    (
        "import_s",
        pa.float64(),
        "seconds of the engine's imports (libraries, modeling code) and device context",
    ),
    ("load_s", pa.float64(), "seconds from a local checkpoint to weights on the device"),
    ("init_s", pa.float64(), "seconds of engine transformation: compile, inject, quantize, shard"),
    ("engine_info", pa.string(), "JSON: what the engine did (device map, TP, kernels, versions)"),
    ("warmup_n", pa.int64(), "warmup requests (excluded from every figure)"),
    ("n", pa.int64(), "measured requests (the sample count behind every percentile)"),
    ("window_s", pa.float64(), "measured window: first measured send to last completion"),
    (
        "stop_reason",
        pa.string(),
        "why measuring stopped: intervals_tight | targets_met | max_duration | "
        "stages_done | first_failure (ramp) | schedule_done (open loop)",
    ),
    ("errors", pa.int64(), "requests that raised (ramp and open loop count them and go on)"),
    (
        "failed_share",
        pa.float64(),
        "failed requests / requests sent in the window; `report` recommends none over "
        "sla.max_failed_share",
    ),
    (
        "request_errors",
        pa.string(),
        "what failed requests raised, commonest first: '12 x HttpError: HTTP 503: ...'",
    ),
    ("latency_ms_p50", pa.float64(), "nearest-rank 50th percentile request latency"),
    ("latency_ms_p90", pa.float64(), "nearest-rank 90th percentile"),
    ("latency_ms_p95", pa.float64(), "nearest-rank 95th percentile"),
    ("latency_ms_p99", pa.float64(), "nearest-rank 99th percentile"),
    ("ci_level", pa.float64(), "confidence level of every *_lo / *_hi interval"),
    (
        "ci_method",
        pa.string(),
        "how the percentile intervals were made: binomial at effective n (batch means) | "
        "binomial (too few requests for batch means)",
    ),
    (
        "n_effective",
        pa.int64(),
        "independent requests the n correlated ones are worth, at the median",
    ),
    ("latency_ms_p50_lo", pa.float64(), "P50 interval, low end (valid for dependent samples)"),
    ("latency_ms_p50_hi", pa.float64(), "P50 interval, high end"),
    ("latency_ms_p90_lo", pa.float64(), "P90 interval, low end"),
    ("latency_ms_p90_hi", pa.float64(), "P90 interval, high end (null: too few samples)"),
    ("latency_ms_p99_lo", pa.float64(), "P99 interval, low end"),
    ("latency_ms_p99_hi", pa.float64(), "P99 interval, high end (null: too few samples)"),
    (
        "percentile_flags",
        pa.string(),
        "percentiles the sample count cannot support, and why (null: all supported)",
    ),
    (
        "stability",
        pa.string(),
        "stable | drifting (the level changed significantly during the window, beyond "
        "stable_tolerance;"
        " or an open loop that could not keep up) | insufficient (too few requests to judge)",
    ),
    ("stability_reason", pa.string(), "the figures behind `stability`; for insufficient, the fix"),
    (
        "windows_json",
        pa.string(),
        "JSON: per time block, requests, throughput and P50 (open loop: service-time P50)",
    ),
    ("latency_ms_mean", pa.float64(), "mean request latency"),
    ("latency_ms_std", pa.float64(), "sample standard deviation of request latency"),
    ("latency_ms_min", pa.float64(), "fastest request"),
    ("latency_ms_max", pa.float64(), "slowest request"),
    ("requests_per_s", pa.float64(), "completed requests / window_s"),
    ("inferences_per_s", pa.float64(), "completed requests x batch_size / window_s"),
    ("inferences_per_s_lo", pa.float64(), "throughput interval, low end (batch means)"),
    ("inferences_per_s_hi", pa.float64(), "throughput interval, high end"),
    (
        "tokens_per_s",
        pa.float64(),
        "generated tokens/s (generate) or input tokens/s (encode), from per-request counts",
    ),
    ("ttft_ms_p50", pa.float64(), "time to first token: send (open loop: scheduled) -> first"),
    ("ttft_ms_p90", pa.float64(), "TTFT 90th percentile"),
    ("ttft_ms_p99", pa.float64(), "TTFT 99th percentile"),
    ("tpot_ms_p50", pa.float64(), "time per output token: (e2e - TTFT) / (n_out - 1), per request"),
    ("tpot_ms_p90", pa.float64(), "TPOT 90th percentile"),
    ("tpot_ms_p99", pa.float64(), "TPOT 99th percentile"),
    ("itl_ms_p50", pa.float64(), "inter-token gap (consecutive tokens of one request), pooled"),
    ("itl_ms_p90", pa.float64(), "inter-token gap 90th percentile"),
    ("itl_ms_p99", pa.float64(), "inter-token gap 99th percentile"),
    (
        "input_tokens_mean",
        pa.float64(),
        "prompt tokens sent per request (the workload's count; words for text): mean",
    ),
    ("input_tokens_p50", pa.float64(), "input_tokens: nearest-rank median"),
    ("input_tokens_p99", pa.float64(), "input_tokens: nearest-rank 99th percentile"),
    (
        "server_input_tokens_mean",
        pa.float64(),
        "prompt tokens per request as the server reported them: mean over ok requests",
    ),
    ("server_input_tokens_p50", pa.float64(), "server_input_tokens: nearest-rank median"),
    ("server_input_tokens_p99", pa.float64(), "server_input_tokens: nearest-rank 99th percentile"),
    (
        "output_tokens_asked_mean",
        pa.float64(),
        "output tokens asked per request: mean over ok requests",
    ),
    ("output_tokens_asked_p50", pa.float64(), "output_tokens_asked: nearest-rank median"),
    ("output_tokens_asked_p99", pa.float64(), "output_tokens_asked: nearest-rank 99th percentile"),
    (
        "output_tokens_mean",
        pa.float64(),
        "output tokens produced per request, as counted (token_source): mean over ok requests",
    ),
    ("output_tokens_p50", pa.float64(), "output_tokens: nearest-rank median"),
    ("output_tokens_p99", pa.float64(), "output_tokens: nearest-rank 99th percentile"),
    (
        "token_source",
        pa.string(),
        "how output tokens were counted: usage (the server's report) | stream (chunks counted) "
        "| engine (in-process output); several with their request counts",
    ),
    ("token_mismatches", pa.int64(), "ok requests whose output tokens differ from those asked"),
    ("slo", pa.string(), "the per-request SLOs goodput is judged on, e.g. 'ttft<=200ms'"),
    ("slo_met_share", pa.float64(), "share of requests (failed ones too) meeting every SLO"),
    ("slo_ttft_met_share", pa.float64(), "share meeting slo.ttft_ms"),
    ("slo_tpot_met_share", pa.float64(), "share meeting slo.tpot_ms"),
    ("slo_e2e_met_share", pa.float64(), "share meeting slo.e2e_ms"),
    ("goodput_per_s", pa.float64(), "requests per second that met every SLO"),
    ("prefill_tokens_per_s", pa.float64(), "mean prompt tokens / mean send -> first token"),
    ("decode_tokens_per_s", pa.float64(), "batch / mean TPOT (one request's decode)"),
    (
        "output_tokens_per_gpu_per_s",
        pa.float64(),
        "generated tokens/s / GPUs the copy spans (null on CPU)",
    ),
    ("price_per_hour", pa.float64(), "USD per instance-hour used for the cost columns"),
    ("price_source", pa.string(), "where price_per_hour came from, with its date"),
    ("pricing", pa.string(), "the price list: ec2 (on-demand) | sagemaker (ml.*) | override"),
    ("usd_per_million_inferences", pa.float64(), "price_per_hour / 3600 / inferences_per_s x 1e6"),
    ("usd_per_million_tokens", pa.float64(), "price_per_hour / 3600 / tokens_per_s x 1e6"),
    ("usd_per_million_inferences_lo", pa.float64(), "$/M interval, low end (from throughput)"),
    ("usd_per_million_inferences_hi", pa.float64(), "$/M interval, high end"),
    ("usd_per_million_output_tokens", pa.float64(), "generate: $ per million generated tokens"),
    ("replicas_per_instance", pa.int32(), "model copies one instance holds: floor(GPUs / TP)"),
    ("usd_per_million_inferences_packed", pa.float64(), "the same with every replica busy"),
    ("usd_per_million_tokens_packed", pa.float64(), "tokens likewise, every replica busy"),
    ("target_rate_per_s", pa.float64(), "open loop: scheduled arrivals per second"),
    ("achieved_rate_per_s", pa.float64(), "open loop: completed requests / window_s"),
    ("dispatch_delay_ms_p50", pa.float64(), "open loop: scheduled arrival -> handed to a client"),
    ("dispatch_delay_ms_p99", pa.float64(), "open loop: dispatch delay 99th percentile"),
    ("queue_delay_ms_mean", pa.float64(), "open loop: scheduled arrival -> sent (waiting)"),
    ("queue_delay_ms_p99", pa.float64(), "open loop: queueing delay 99th percentile"),
    ("service_ms_p50", pa.float64(), "open loop: sent -> complete (latency without queueing)"),
    ("dropped", pa.int64(), "open loop: arrivals never sent before the budget ran out"),
    *scenario_columns(),  # each scenario's own (bench.measure.scenarios)
    *workload_columns(),  # each workload's own (bench.measure.workloads)
    ("rss_after_import_mb", pa.float64(), "cell process resident memory after imports, MiB"),
    ("rss_after_load_mb", pa.float64(), "... after loading (and initializing) the model, MiB"),
    ("model_rss_mb", pa.float64(), "the model's share: rss_after_load - rss_after_import"),
    (
        "peak_rss_mb",
        pa.float64(),
        "most resident memory while measuring (imports and model included), MiB",
    ),
    (
        "peak_rss_scope",
        pa.string(),
        "measurement (peak reset after load) | process (the kernel refused the reset)",
    ),
    (
        "peak_gpu_mem_mb",
        pa.float64(),
        "peak CUDA memory allocated by torch while measuring (reset after load), MiB, "
        "largest over devices",
    ),
    ("peak_gpu_reserved_mb", pa.float64(), "peak reserved by torch's caching allocator, MiB"),
    ("gpu_used_mb", pa.float64(), "device memory in use as the driver counts it, all GPUs"),
    (
        "gpu_memory_json",
        pa.string(),
        "JSON per device: allocated_peak_mb, reserved_peak_mb, driver_used_mb",
    ),
    (
        "rank_peak_rss_mb",
        pa.float64(),
        "DeepSpeed: the largest rank's peak resident memory from the start of its load to the "
        "end of the cell (its imports, load, sharding and serving), MiB",
    ),
    (
        "rank_memory_json",
        pa.string(),
        "DeepSpeed, JSON per rank: rss_before_load_mb (imports, process group), "
        "rss_after_load_mb, load_peak_rss_mb, peak_rss_mb, shard_mb (its slice of the model)",
    ),
    (
        "quality",
        pa.string(),
        "the engine's outputs against eager fp32 on the same batch (bench.measure."
        "quality_check): agrees | differs | unsupported (asked, but the check could not run: "
        "quality_reason); null: not asked (quality=off, or auto on an fp32 cell of an engine "
        "that does not transform the model)",
    ),
    ("quality_reason", pa.string(), "what differs, or why the check could not run"),
    (
        "quality_tokens_compared",
        pa.int32(),
        "generation: greedy new tokens compared (sequences x new_tokens)",
    ),
    (
        "quality_token_agreement",
        pa.float64(),
        "generation: share of compared tokens equal to eager fp32's, position by position",
    ),
    (
        "quality_first_mismatch",
        pa.int32(),
        "generation: the earliest new-token index where any sequence differs (null: none)",
    ),
    (
        "quality_max_abs_diff",
        pa.float64(),
        "largest absolute difference of the first forward's logits from eager fp32's",
    ),
    (
        "quality_cosine",
        pa.float64(),
        "cosine similarity of the first forward's logits with eager fp32's (an encoder or "
        "image model agrees at >= 0.999)",
    ),
    ("quality_reference", pa.string(), "the eager fp32 reference was computed | cached"),
    ("quality_check_s", pa.float64(), "seconds the check took (outside every timed bracket)"),
    (
        "sync_scope",
        pa.string(),
        "what a latency waits for: host | stream (the client's own CUDA stream) | device",
    ),
    ("gpu_name", pa.string(), "CUDA device name"),
    ("gpu_count", pa.int32(), "CUDA devices visible"),
    ("gpu_driver", pa.string(), "NVIDIA driver version"),
    ("cuda_version", pa.string(), "CUDA runtime torch was built with"),
    ("gpu_sm_clock_mhz", pa.float64(), "SM clock when the cell started, MHz"),
    ("gpu_max_sm_clock_mhz", pa.float64(), "maximum SM clock, MHz"),
    ("gpu_power_limit_w", pa.float64(), "enforced power limit, W"),
    ("cpu_name", pa.string(), "host CPU model"),
    ("cpu_count", pa.int32(), "logical CPUs on the host"),
    ("cpu_physical_cores", pa.int32(), "physical CPU cores on the host"),
    ("cpu_affinity", pa.int32(), "CPUs this process may run on (containers limit it)"),
    (
        "torch_threads",
        pa.int32(),
        "torch intra-op threads (default: CPUs free at the start // client threads)",
    ),
    ("omp_wait_policy", pa.string(), "OMP_WAIT_POLICY torch's OpenMP runtime read"),
    ("cpu_affinity_list", pa.string(), "CPUs the cell process may run on, e.g. 0-1"),
    (
        "cpus_busy_at_start",
        pa.float64(),
        "CPUs other processes kept busy just before the cell loaded (null: torch_threads set)",
    ),
    (
        "server_exit_code",
        pa.int32(),
        "engine=http server mode: how the server the cell started ended (negative: a signal)",
    ),
    # bench.measure.telemetry: sampled every 0.2 s inside the measured window(s)
    ("telemetry_samples", pa.int32(), "telemetry samples taken inside the measured window(s)"),
    ("host_cpus_busy_mean", pa.float64(), "CPUs busy during the window, every process (mean)"),
    (
        "host_other_cpus_mean",
        pa.float64(),
        "CPUs other processes kept busy during the window (mean; the cell's own left out)",
    ),
    ("host_other_cpus_max", pa.float64(), "the same, the busiest sample interval"),
    ("host_steal_share", pa.float64(), "share of CPU time the hypervisor stole (mean)"),
    (
        "host_busy",
        pa.bool_(),
        "other processes used >= 0.5 CPU on average or steal >= 5%: measured on a shared host",
    ),
    ("host_busy_reason", pa.string(), "what made host_busy true"),
    # bench.measure.heap: the Python garbage collections inside the window
    ("gc_collections", pa.int32(), "Python garbage collections begun inside the window(s)"),
    ("gc_full_collections", pa.int32(), "of those, full (generation 2) collections"),
    ("gc_pause_ms_total", pa.float64(), "time those collections paused the process, ms"),
    ("gc_pause_ms_max", pa.float64(), "the longest of those pauses, ms"),
    ("gpu_telemetry", pa.string(), "nvml, or why there are no GPU samples"),
    (
        "client_cpus_mean",
        pa.float64(),
        "CPUs the cell's own process used on average in the window (the client, and an "
        "in-process engine)",
    ),
    ("client_limited", pa.bool_(), "a remote engine's window paced by the client, not the server"),
    (
        "client_limited_reason",
        pa.string(),
        "why (dispatch lag, busy client threads, CPU) and the fix",
    ),
    (
        "server_metrics",
        pa.string(),
        "prometheus URL the server's own metrics came from, or why there are none",
    ),
    ("server_kv_cache_usage_max", pa.float64(), "server: KV cache in use, highest share (0..1)"),
    ("server_kv_cache_usage_mean", pa.float64(), "server: KV cache in use, mean share"),
    ("server_requests_running_max", pa.float64(), "server: most requests running at once"),
    ("server_requests_waiting_max", pa.float64(), "server: most requests waiting in its queue"),
    (
        "server_prefix_cache_hit_rate",
        pa.float64(),
        "server: prefix-cache hits / queries over the window (tokens, as vLLM counts)",
    ),
    ("server_preemptions", pa.float64(), "server: requests preempted during the window"),
    ("gpu_util_pct_mean", pa.float64(), "GPU utilisation (NVML: time a kernel ran), mean %"),
    ("gpu_util_pct_min", pa.float64(), "GPU utilisation, lowest sample %"),
    ("gpu_mem_used_mb_max", pa.float64(), "GPU memory in use (NVML, whole device), max MiB"),
    ("gpu_power_w_mean", pa.float64(), "GPU power draw, mean W"),
    ("gpu_power_w_max", pa.float64(), "GPU power draw, max W"),
    ("gpu_sm_clock_mhz_mean", pa.float64(), "SM clock during the window, mean MHz"),
    ("gpu_sm_clock_mhz_min", pa.float64(), "SM clock during the window, lowest MHz"),
    ("hostname", pa.string(), "host the cell ran on"),
    ("python_version", pa.string(), "Python version"),
    ("torch_version", pa.string(), "torch version"),
    ("transformers_version", pa.string(), "transformers version"),
    ("bench_version", pa.string(), "bench version"),
    ("git_sha", pa.string(), "commit of the harness, when known"),
    ("os_kernel", pa.string(), "operating system and kernel release"),
    ("image", pa.string(), "container image the cell ran in ($BENCH_IMAGE)"),
    ("image_digest", pa.string(), "its digest ($BENCH_IMAGE_DIGEST), when set"),
    ("in_container", pa.bool_(), "whether the cell ran inside a container (podman or docker)"),
    (
        "image_pins",
        pa.string(),
        "the image's installed versions, name==version space-separated (bench's images)",
    ),
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
    from bench.config.secrets import redact
    from bench.store.arrow import table  # from buffers: a cell never imports pandas

    def value(row: dict[str, Any], name: str) -> Any:
        found = row.get(name)
        return redact(found) if isinstance(found, str) else found  # an error may echo a key

    columns = {name: [value(row, name) for row in rows] for name in ROW_SCHEMA.names}
    return table(columns, ROW_SCHEMA)


def conform(table: pa.Table) -> pa.Table:
    """A table read from any schema version, cast to the current one (new columns null)."""
    if table.schema.equals(ROW_SCHEMA):
        return table
    table = _before_version_9(table)
    columns = []
    for field in ROW_SCHEMA:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=ROW_SCHEMA)


RENAMED_IN_9 = {"verdict": "stability", "verdict_reason": "stability_reason"}


def _before_version_9(table: pa.Table) -> pa.Table:
    """Files from before schema 9 named stability `verdict` and kept a capacity row's memory
    trace in stages_json (now memory_trace_json: stages_json is the ramp's alone)."""
    table = table.rename_columns([RENAMED_IN_9.get(n, n) for n in table.column_names])
    names = table.column_names
    if "memory_trace_json" in names or not {"stages_json", "scenario"} <= set(names):
        return table
    import pyarrow.compute as pc

    capacity = pc.equal(table.column("scenario"), "capacity")
    stages = table.column("stages_json")
    nothing = pa.nulls(table.num_rows, pa.string())
    table = table.set_column(
        names.index("stages_json"), "stages_json", pc.if_else(capacity, nothing, stages)
    )
    return table.append_column("memory_trace_json", pc.if_else(capacity, stages, nothing))


SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("thread", pa.int16()),  # client thread that sent the request
        pa.field("sent_ns", pa.int64()),  # send time, ns after the measured window opened
        pa.field("latency_ns", pa.int64()),  # send (open loop: scheduled) -> complete
        pa.field("stage", pa.int16()),  # ramp stage index (0 for other scenarios)
        pa.field("scheduled_ns", pa.int64()),  # open loop: scheduled arrival (else = sent_ns)
        pa.field("ttft_ns", pa.int64()),  # generate: send (open loop: scheduled) -> first token
        pa.field("ok", pa.bool_()),  # false: the request raised
        pa.field("input_tokens", pa.int32()),  # prompt tokens sent (null: not known)
        pa.field("server_input_tokens", pa.int32()),  # prompt tokens the server reported
        pa.field("output_tokens_asked", pa.int32()),  # output tokens asked for
        pa.field("output_tokens", pa.int32()),  # output tokens produced, as counted
        pa.field("turn", pa.int32()),  # multi_turn: the turn of its session (null: none)
    ]
)
