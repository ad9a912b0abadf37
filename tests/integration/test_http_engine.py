"""engine=http against a real server process on loopback (tests/support/openai_server.py, an
OpenAI-compatible test server with known delays and injected faults, not a model)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.cell.runner import run_cell
from bench.plan.grid import plan_from_overrides
from tests.support.http_cells import http_cell as _cell
from tests.support.http_cells import server_args
from tests.support.openai_server import check_streamed_row


@server_args("--first-token-ms", "20", "--token-ms", "4")
def test_streamed_completions_give_ttft_tpot_and_tokens(openai_server: str) -> None:
    cell = _cell(openai_server, "batch_size=2", "threads=2")
    row = run_cell(cell).row
    check_streamed_row(row)  # the server's truth: 20 ms to the first token, then 4 ms a token
    assert row["tokens_per_s"] == pytest.approx(row["inferences_per_s"] * 8, rel=0.01)
    info = json.loads(row["engine_info"])
    assert info["stream"] is True and openai_server in info["endpoint"]


@server_args("--fail", "0.10", "--hang", "0.05", "--hang-s", "3", "--token-ms", "2")
def test_failures_and_timeouts_are_failed_requests_and_the_rest_is_measured(
    openai_server: str,
) -> None:
    cell = _cell(
        openai_server,
        "threads=4",
        "scenario.request_timeout_s=0.5",
        "scenario.min_requests=300",
        "scenario.min_duration_s=2",
    )
    row = run_cell(cell).row
    assert row["status"] == "ok", row.get("error")
    sent = row["n"] + row["errors"]
    share = row["errors"] / sent
    # 10% HTTP 500 and 5% past the 0.5 s timeout: about 15% of requests failed
    assert 0.08 < share < 0.25, (row["n"], row["errors"])
    assert row["latency_ms_p99"] < 500  # the hung requests are not in the figures


@server_args("--short")
def test_a_server_that_stops_early_fails_the_usage_check(openai_server: str) -> None:
    row = run_cell(_cell(openai_server, "scenario.min_requests=5")).row
    assert row["status"] == "failed" and row["error_class"] == "NoCompletedRequests"
    lenient = run_cell(
        _cell(openai_server, "scenario.min_requests=5", "engine.check_usage=false")
    ).row
    assert lenient["status"] == "ok"


@server_args("--token-ms", "1")
def test_chat_non_streaming_and_embeddings(openai_server: str) -> None:
    chat = run_cell(_cell(openai_server, "engine.api=chat")).row
    assert chat["status"] == "ok" and chat["ttft_ms_p50"] > 0
    whole = run_cell(_cell(openai_server, "engine.stream=false")).row
    assert whole["status"] == "ok" and whole.get("ttft_ms_p50") is None  # no stream, no TTFT
    embed = run_cell(
        _cell(openai_server, "model=bert_tiny", "engine.api=embeddings", "batch_size=4")
    ).row
    assert embed["status"] == "ok" and embed["inferences_per_s"] > 0


def test_server_mode_starts_the_server_and_load_s_is_time_to_healthy(tmp_path: Path) -> None:
    command = f"{sys.executable} -m tests.support.openai_server --port {{port}} --startup-s 1.5"
    cell = _cell(
        "http://127.0.0.1:1",
        f"engine.server_command='{command}'",
        "scenario.min_requests=20",
        "scenario.min_duration_s=0.3",
    )
    row = run_cell(cell).row
    assert row["status"] == "ok", row.get("error")
    assert 1.5 <= row["load_s"] < 10  # the server slept 1.5 s before it listened
    assert row["server_exit_code"] in (0, -15)  # stopped with SIGTERM after measuring
    assert "server_command" in json.loads(row["engine_info"])


def test_a_server_that_never_gets_healthy_fails_the_cell_in_time() -> None:
    command = f"{sys.executable} -c 'import time; time.sleep(60)'"
    cell = _cell(
        "http://127.0.0.1:1", f'engine.server_command="{command}"', "engine.ready_timeout_s=1"
    )
    row = run_cell(cell).row
    assert row["status"] == "failed" and "not healthy after 1 s" in row["error"]


def test_bad_http_options_are_one_line_errors() -> None:
    from bench.config.checks import ConfigError

    with pytest.raises(ConfigError, match=r"engine\.api"):
        plan_from_overrides(["engine=http", "engine.api=grpc"])
    with pytest.raises(ConfigError, match=r"engine\.url"):
        plan_from_overrides(["engine=http", "engine.url=localhost:8000"])
    with pytest.raises(ConfigError, match=r"engine\.instances"):
        plan_from_overrides(["engine=http", "engine.instances=0"])
    # the price is that of the instances behind the endpoint
    one, three = (
        plan_from_overrides(["engine=http", "instance=g5.xlarge", f"engine.instances={n}"]).cells[0]
        for n in (1, 3)
    )
    assert three.price_per_hour == pytest.approx(3 * one.price_per_hour)
    assert "x 3 instances" in three.price_source
    encoder = plan_from_overrides(["engine=http", "model=bert_tiny"]).cells[0]
    from bench.engines import ENGINES

    assert "engine.api=embeddings" in ENGINES["http"].unsupported_reason(encoder)


@server_args("--require-token", "tok-123")
def test_a_bearer_token_comes_from_the_environment_and_credentials_never_show(
    openai_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.config.checks import ConfigError

    with pytest.raises(ConfigError) as refused:
        _cell(openai_server.replace("http://", "http://me:secret@"))
    assert "engine.api_key_env" in str(refused.value) and "secret" not in str(refused.value)
    missing = run_cell(_cell(openai_server, "engine.api_key_env=BENCH_TEST_TOKEN")).row
    assert missing["status"] == "unsupported" and "BENCH_TEST_TOKEN" in missing["error"]
    monkeypatch.setenv("BENCH_TEST_TOKEN", "tok-123")
    row = run_cell(_cell(openai_server, "engine.api_key_env=BENCH_TEST_TOKEN")).row
    assert row["status"] == "ok", row.get("error")  # the server answers 401 without it
    assert "tok-123" not in json.dumps(row, default=str)
