"""The server's own metrics: Prometheus text parsed, the figures bench keeps, the window's
summary."""

from __future__ import annotations

import pytest

from bench.measure.server_metrics import ServerMetrics, figures, parse, summary

PAGE = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
vllm:num_requests_waiting{engine="0",model_name="m"} 7.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 1000.0
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 250.0
vllm:num_preemptions_total{engine="0",model_name="m"} 1.0
process_cpu_seconds_total 12.5
weird_metric{label="has } brace"} 4
not_a_number NaN
"""


def test_a_page_is_parsed_and_summed_over_label_sets() -> None:
    values = parse(PAGE)
    assert values["vllm:num_requests_running"] == 5.0  # two engines
    assert values["process_cpu_seconds_total"] == 12.5
    assert "not_a_number" not in values
    assert figures(values) == {
        "kv_cache_usage": 0.5,
        "requests_running": 5.0,
        "requests_waiting": 7.0,
        "prefix_hits": 250.0,
        "prefix_queries": 1000.0,
        "preemptions": 1.0,
    }


def test_the_window_summary_takes_extremes_and_differences() -> None:
    readings = [
        {"kv_cache_usage": 0.2, "requests_running": 1, "prefix_hits": 100, "prefix_queries": 400},
        {"kv_cache_usage": 0.6, "requests_running": 4, "prefix_hits": 400, "prefix_queries": 800},
    ]
    columns = summary(readings, None, "http://127.0.0.1:1/metrics")
    assert columns["server_kv_cache_usage_max"] == 0.6
    assert columns["server_kv_cache_usage_mean"] == pytest.approx(0.4)
    assert columns["server_requests_running_max"] == 4
    assert columns["server_prefix_cache_hit_rate"] == pytest.approx(300 / 400)
    assert summary([], "gone", "u") == {"server_metrics": "gone"}


def test_a_page_that_does_not_answer_is_left_after_two_tries() -> None:
    reader = ServerMetrics("http://127.0.0.1:9/metrics")  # discard port: nothing listens
    assert reader.read() is None and reader.unavailable is None
    assert reader.read() is None and "127.0.0.1:9" in reader.unavailable
    assert ServerMetrics(None).unavailable
