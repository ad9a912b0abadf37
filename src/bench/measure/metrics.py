"""Metric definitions: one function each, the formulas the README states.

- Percentiles are nearest-rank: the smallest sample with at least q% of samples at or below it
  (`numpy.percentile(..., method="inverted_cdf")`), always reported with n.
- inferences_per_s = completed requests x batch_size / window_s.
- tokens_per_s = the tokens the ok requests produced (generating) or sent (encoding), counted
  per request (bench.measure.goodput), / window_s; where an engine does not count them,
  inferences_per_s x new_tokens (generating) or seq_len (encoding); none for images.
- usd_per_million_inferences = price_per_hour / 3600 / inferences_per_s x 1e6.
- packed: the instance holds replicas = floor(GPUs / TP degree) copies, each serving what the
  measured copy served: price_per_hour / replicas / 3600 / inferences_per_s x 1e6.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from bench import stats
from bench.config.schema import CellConfig, ScenarioConfig, packed_replicas
from bench.config.tasks import task_of
from bench.engines.base import device_kind
from bench.measure import goodput
from bench.measure.loadgen import LoadResult

PERCENTILES = (50, 90, 95, 99)


def nearest_rank_ms(latency_ns: np.ndarray, q: float) -> float:
    """The q-th nearest-rank percentile of latencies given in ns, in ms."""
    return float(np.percentile(latency_ns, q, method="inverted_cdf")) / 1e6


def usd_per_million(price_per_hour: float, per_second: float | None) -> float | None:
    """Dollars per million units served at `per_second` on an instance at `price_per_hour`
    (None when nothing is served, or the unit does not apply)."""
    if per_second is None or per_second <= 0:
        return None
    return price_per_hour / 3600.0 / per_second * 1e6


def tokens_per_inference(cell: CellConfig) -> int | None:
    return task_of(cell.model).tokens_per_inference(cell.model)


def _percentile_ms(values_ns: np.ndarray, p: float) -> float | None:
    return nearest_rank_ms(values_ns, p) if values_ns.size else None


def latency_summary(latency_ns: np.ndarray, confidence: float, batches: int) -> dict[str, Any]:
    """Percentiles with their intervals and flags, mean, spread, extremes (ms). `latency_ns`
    is in the order the requests were sent: the intervals allow for serial dependence."""
    ms = latency_ns / 1e6
    summary: dict[str, Any] = {
        f"latency_ms_p{q}": _percentile_ms(latency_ns, q) for q in PERCENTILES
    }
    ordered = np.sort(latency_ns)
    effective: dict[int, int] = {}
    for q in stats.CI_PERCENTILES:
        ranks = stats.serial_quantile_ranks(latency_ns, q / 100, confidence, batches, ordered)
        effective[q] = ranks.n_effective
        low, high = ranks.values(ordered)
        summary[f"latency_ms_p{q}_lo"] = low / 1e6 if low is not None else None
        summary[f"latency_ms_p{q}_hi"] = high / 1e6 if high is not None else None
        if q == 50:
            summary.update(n_effective=ranks.n_effective, ci_method=ranks.method)
    summary.update(
        ci_level=confidence,
        percentile_flags=stats.percentile_flags(ordered.size, PERCENTILES, confidence, effective),
        latency_ms_mean=float(ms.mean()) if ms.size else None,
        latency_ms_std=float(ms.std(ddof=1)) if ms.size > 1 else None,
        latency_ms_min=float(ms.min()) if ms.size else None,
        latency_ms_max=float(ms.max()) if ms.size else None,
    )
    return summary


def stability(result: LoadResult, scenario: ScenarioConfig) -> dict[str, Any]:
    """The stability of the measured window, and its time windows for the row.

    In an open loop the arrivals set the throughput and queueing makes latency bursty, so the
    server is judged on service time (sent -> complete), and the loop on whether it kept up."""
    ok = result.ok
    open_loop = result.target_rate_per_s is not None
    judged = (result.done_ns - result.sent_ns)[ok] if open_loop else result.latency_ns
    window_ns = int(result.window_s * 1e9)
    evidence = stats.Evidence(
        latency_ns=judged,
        done_ns=result.done_ns[ok],
        window_ns=window_ns,
        judge_rate=not open_loop,
        target_rate_per_s=result.target_rate_per_s,
        queue_ns=(result.sent_ns - result.scheduled_ns)[ok] if open_loop else None,
        dropped=result.dropped,
    )
    found = stats.stability(evidence, scenario.stable_tolerance)
    reason = found.reason
    if found.need_requests is not None:
        reason += "; " + _how_to_measure_longer(result, scenario, found.need_requests)
    windows = stats.time_windows(result.done_ns[ok], judged, window_ns, scenario.windows)
    return {
        "stability": found.state,
        "stability_reason": reason,
        "windows_json": json.dumps([w.to_dict() for w in windows]),
    }


def _how_to_measure_longer(result: LoadResult, scenario: ScenarioConfig, need: int) -> str:
    """The override that would give `need` requests, at the rate this cell measured."""
    rate = result.n / result.window_s if result.window_s > 0 else 0.0
    if rate <= 0:
        return f"set scenario.min_requests={need}"
    seconds = math.ceil(need / rate * 1.1)
    advice = f"set scenario.min_requests={need}"
    if seconds > scenario.max_duration_s:
        advice += f" scenario.max_duration_s={seconds}"
    return f"{advice} (about {seconds} s at {rate:.3g} requests/s)"


def generation_summary(result: LoadResult, cell: CellConfig) -> dict[str, Any]:
    """TTFT, TPOT = (e2e - TTFT) / (n_out - 1) with each request's own streamed count n_out,
    inter-token gaps, prefill and decode speeds.

    Only for generating cells whose engine streamed token times; every value in ms per
    request, speeds in tokens/s of one request (batch x tokens it carries)."""
    ok = result.ok & (result.ttft_ns >= 0)
    if not task_of(cell.model).generates or not ok.any():
        return {}
    # TTFT and e2e both run from the scheduled time (= the send in a closed loop), so an
    # open loop's queueing counts in them as it does in latency; TPOT is their difference.
    ttft = result.ttft_ns[ok]
    prefill = ttft - (result.sent_ns - result.scheduled_ns)[ok]  # the send -> first token
    columns: dict[str, Any] = {f"ttft_ms_p{q}": nearest_rank_ms(ttft, q) for q in (50, 90, 99)}
    sent = result.input_tokens[ok] if result.input_tokens is not None else np.zeros(0)
    prompt_tokens = sent.mean() if sent.size and (sent >= 0).all() else None
    prompt_tokens = prompt_tokens or cell.batch_size * cell.model.seq_len
    columns["prefill_tokens_per_s"] = prompt_tokens / (prefill.mean() / 1e9)
    tpot = goodput.tpot_ns(result, cell.model.new_tokens)[ok]
    tpot = tpot[~np.isnan(tpot)]
    if tpot.size:
        columns.update({f"tpot_ms_p{q}": nearest_rank_ms(tpot, q) for q in (50, 90, 99)})
        columns["decode_tokens_per_s"] = cell.batch_size / (tpot.mean() / 1e9)
    gaps = result.token_gaps_ns
    if gaps.size:
        columns.update({f"itl_ms_p{q}": nearest_rank_ms(gaps, q) for q in (50, 90, 99)})
    return columns


def open_loop_summary(result: LoadResult) -> dict[str, Any]:
    if result.target_rate_per_s is None:
        return {}
    ok = result.ok
    queue_ns = (result.sent_ns - result.scheduled_ns)[ok]
    service_ns = (result.done_ns - result.sent_ns)[ok]
    lateness = result.dispatch_delay_ns if result.dispatch_delay_ns is not None else np.zeros(0)
    return {
        "target_rate_per_s": result.target_rate_per_s,
        "achieved_rate_per_s": result.n / result.window_s if result.window_s > 0 else 0.0,
        "dispatch_delay_ms_p50": _percentile_ms(lateness, 50),
        "dispatch_delay_ms_p99": _percentile_ms(lateness, 99),
        "queue_delay_ms_mean": float(queue_ns.mean()) / 1e6 if queue_ns.size else None,
        "queue_delay_ms_p99": _percentile_ms(queue_ns, 99),
        "service_ms_p50": _percentile_ms(service_ns, 50),
        "dropped": result.dropped,
    }


def failed_share(result: LoadResult) -> float:
    """Failed requests over all requests sent in the window (ok + failed)."""
    sent = result.n + result.errors
    return result.errors / sent if sent else 0.0


def _with_dropped(flags: str | None, result: LoadResult) -> str | None:
    """The sample-count flags, plus a warning when an overloaded open loop dropped arrivals
    (the longest waits are then missing from every percentile) or when requests failed (the
    percentiles are of those that succeeded: a failure has no latency to rank)."""
    if result.errors:
        share = failed_share(result)
        failed = (
            f"{result.errors} of {result.n + result.errors} requests failed ({share:.1%}): "
            f"the percentiles are of the {result.n} that succeeded"
        )
        flags = f"{flags}; {failed}" if flags else failed
    if result.dropped:
        dropped = (
            f"{result.dropped} arrivals dropped unsent (overload): the percentiles "
            "leave out the longest waits"
        )
        flags = f"{flags}; {dropped}" if flags else dropped
    return flags


def summarize(result: LoadResult, cell: CellConfig) -> dict[str, Any]:
    """Row columns for a measured window."""
    scenario = cell.scenario
    requests_per_s = result.n / result.window_s if result.window_s > 0 else 0.0
    inferences_per_s = requests_per_s * cell.batch_size
    per_inference = tokens_per_inference(cell)
    tokens_per_s = inferences_per_s * per_inference if per_inference is not None else None
    generating = task_of(cell.model).generates
    counted = goodput.counted_tokens(
        result.output_tokens if generating else result.input_tokens, result.ok
    )
    if counted is not None and per_inference is not None and result.window_s > 0:
        tokens_per_s = counted / result.window_s
    replicas = packed_replicas(cell.instance, cell.tp_degree)
    per_replica = cell.price_per_hour / replicas
    low, high = stats.rate_interval(
        result.done_ns[result.ok], int(result.window_s * 1e9), scenario.confidence, scenario.windows
    )
    latency = latency_summary(result.latency_ns, scenario.confidence, scenario.windows)
    latency["percentile_flags"] = _with_dropped(latency["percentile_flags"], result)
    scale = cell.batch_size
    on_gpu = device_kind(cell) == "cuda"
    return {
        "n": result.n,
        "errors": result.errors,
        "failed_share": failed_share(result),
        "request_errors": result.failure_text(),
        "warmup_n": result.warmup_n,
        "window_s": result.window_s,
        "stop_reason": result.stop_reason,
        **latency,
        **stability(result, scenario),
        "requests_per_s": requests_per_s,
        "inferences_per_s": inferences_per_s,
        "inferences_per_s_lo": low * scale if low is not None else None,
        "inferences_per_s_hi": high * scale if high is not None else None,
        "tokens_per_s": tokens_per_s,
        "usd_per_million_inferences": usd_per_million(cell.price_per_hour, inferences_per_s),
        # a faster end of the throughput interval is the cheaper end of the cost interval
        "usd_per_million_inferences_lo": (
            usd_per_million(cell.price_per_hour, high * scale) if high else None
        ),
        "usd_per_million_inferences_hi": (
            usd_per_million(cell.price_per_hour, low * scale) if low else None
        ),
        "usd_per_million_tokens": usd_per_million(cell.price_per_hour, tokens_per_s),
        "usd_per_million_output_tokens": (
            usd_per_million(cell.price_per_hour, tokens_per_s) if generating else None
        ),
        "output_tokens_per_gpu_per_s": (
            tokens_per_s / cell.tp_degree if generating and on_gpu else None
        ),
        "replicas_per_instance": replicas,
        "usd_per_million_inferences_packed": usd_per_million(per_replica, inferences_per_s),
        "usd_per_million_tokens_packed": usd_per_million(per_replica, tokens_per_s),
        **generation_summary(result, cell),
        **open_loop_summary(result),
        **goodput.token_summary(result),
        **goodput.goodput_summary(result, cell.slo, cell.model.new_tokens),
    }
