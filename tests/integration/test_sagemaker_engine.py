"""engine=sagemaker through boto3 against servers on loopback: a stub of the SageMaker runtime's
wire protocol (tests/support/sagemaker_server.py: signed requests only, event-stream framing,
known delays and injected faults; labelled a stub, it is not SageMaker) and moto's server, which
implements InvokeEndpoint (without streaming) and the endpoint control plane."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest

from bench.cell.runner import run_cell
from bench.emulator import aws_env
from bench.plan.grid import plan_from_overrides
from tests.conftest import REPO
from tests.support.openai_server import check_streamed_row

STUB = [sys.executable, "-m", "tests.support.sagemaker_server"]


@pytest.fixture
def sagemaker_stub(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The stub, started with the test's parameters (indirect); boto3 pointed at it."""
    args = list(getattr(request, "param", []))
    proc = subprocess.Popen(
        [*STUB, "--port", "0", *args], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    url = f"http://127.0.0.1:{proc.stdout.readline().split()[-1]}"
    for key, value in aws_env(url).items():
        monkeypatch.setenv(key, value)
    try:
        yield url
    finally:
        proc.kill()
        proc.wait()


def stub_args(*args: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("sagemaker_stub", [list(args)], indirect=True)


def _cell(*overrides: str):
    return plan_from_overrides(
        [
            "model=opt_tiny",
            "engine=sagemaker",
            "engine.endpoint_name=bench-test",
            "scenario.warmup_requests=2",
            "scenario.warmup_s=0.1",
            "scenario.min_requests=40",
            "scenario.min_duration_s=1.0",
            "scenario.max_duration_s=6",
            "scenario.ci_target=0",
            *overrides,
        ]
    ).cells[0]


@stub_args("--first-token-ms", "20", "--token-ms", "4")
def test_streamed_tgi_schema_gives_ttft_tpot_from_signed_requests(sagemaker_stub: str) -> None:
    row = run_cell(_cell("threads=2")).row
    # the stub's truth (20 ms to the first token, then 4 ms a token), half of the token lines
    # split across two PayloadParts
    check_streamed_row(row)
    info = json.loads(row["engine_info"])
    assert info["endpoint_status"] == "InService" and info["variants"][0]["instances"] == 1
    assert "testing-secret" not in json.dumps(row, default=str)


@stub_args("--fail", "0.10", "--hang", "0.05", "--hang-s", "3", "--token-ms", "2")
def test_model_errors_and_timeouts_are_failed_requests_never_retried(sagemaker_stub: str) -> None:
    row = run_cell(
        _cell(
            "threads=4",
            "scenario.request_timeout_s=0.5",
            "scenario.min_requests=300",
            "scenario.min_duration_s=2",
        )
    ).row
    assert row["status"] == "ok", row.get("error")
    share = row["errors"] / (row["n"] + row["errors"])
    # 10% ModelError (424) and 5% past the 0.5 s read timeout; a retry would hide both
    assert 0.08 < share < 0.25, (row["n"], row["errors"])
    assert row["latency_ms_p99"] < 500
    assert "ModelError" in row["request_errors"] and "Timeout" in row["request_errors"]


@stub_args("--short")
def test_an_endpoint_that_stops_early_fails_the_token_count_check(sagemaker_stub: str) -> None:
    row = run_cell(_cell("scenario.min_requests=5")).row
    assert row["status"] == "failed" and row["error_class"] == "NoCompletedRequests"


@stub_args("--token-ms", "1")
def test_chat_schema_non_streaming_batches_and_encoders(sagemaker_stub: str) -> None:
    chat = run_cell(_cell("engine.schema=chat")).row
    assert chat["status"] == "ok" and chat["ttft_ms_p50"] > 0, chat.get("error")
    whole = run_cell(_cell("engine.stream=false", "batch_size=4")).row
    assert whole["status"] == "ok" and whole.get("ttft_ms_p50") is None, whole.get("error")
    assert whole["tokens_per_s"] == pytest.approx(whole["inferences_per_s"] * 8, rel=0.01)
    encoder = run_cell(_cell("model=bert_tiny", "batch_size=4")).row
    assert encoder["status"] == "ok" and encoder["inferences_per_s"] > 0, encoder.get("error")
    streamed_batch = run_cell(_cell("batch_size=4")).row
    assert streamed_batch["status"] == "unsupported" and "batch_size=1" in streamed_batch["error"]


def test_bad_sagemaker_options_are_one_line_errors() -> None:
    from bench.config.checks import ConfigError

    with pytest.raises(ConfigError, match=r"engine\.endpoint_name"):
        plan_from_overrides(["engine=sagemaker", "model=opt_tiny"])
    with pytest.raises(ConfigError, match=r"engine\.schema"):
        plan_from_overrides(["engine=sagemaker", "engine.endpoint_name=x", "engine.schema=grpc"])


def test_invoke_endpoint_against_moto(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's server: the endpoint made through its control plane, InvokeEndpoint answered from
    a queue of results set through moto's API (it has no streaming route)."""
    import boto3

    for key, value in aws_env(s3_server).items():
        monkeypatch.setenv(key, value)
    control = boto3.client("sagemaker")
    role = "arn:aws:iam::123456789012:role/bench"
    image = {"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/tgi:latest"}
    control.create_model(ModelName="opt", ExecutionRoleArn=role, PrimaryContainer=image)
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": "opt",
        "InstanceType": "ml.g4dn.2xlarge",  # moto knows older types only
        "InitialInstanceCount": 2,
    }
    control.create_endpoint_config(EndpointConfigName="opt", ProductionVariants=[variant])
    control.create_endpoint(EndpointName="bench-moto", EndpointConfigName="opt")
    answer = [{"generated_text": "x" * 8, "details": {"generated_tokens": 8}}]
    queued = {"results": [{"Body": json.dumps(answer), "ContentType": "application/json"}]}
    request = urllib.request.Request(
        f"{s3_server}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps(queued).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()
    # moto answers each distinct body once from its queue, then with a placeholder: one
    # prompt, repeated, gets the queued answer every time
    row = run_cell(
        _cell(
            "engine.endpoint_name=bench-moto",
            "engine.stream=false",
            "scenario.min_requests=30",
            "workload.repeat=true",
        )
    ).row
    assert row["status"] == "ok", row.get("error")
    assert row["n"] >= 30 and row["errors"] == 0 and row["tokens_per_s"] > 0
    info = json.loads(row["engine_info"])
    assert info["endpoint_status"] == "InService"
