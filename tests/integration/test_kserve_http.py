"""engine=http with api=kserve: the KServe v2 / Triton HTTP inference protocol against the
protocol test server on loopback (tests/support/kserve_server.py: Triton's routes and its
checks of a request's tensors, not Triton), with a model drawn per request among N."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.cell.runner import run_cell
from bench.engines.endpoint.targets import shares
from bench.plan.grid import plan_from_overrides
from tests.conftest import REPO

SERVER = [sys.executable, "-m", "tests.support.kserve_server"]
MODELS = ",".join(f"model-{i}" for i in range(4))
TEXT_INPUTS = "input_ids:INT64,attention_mask:INT64"


@pytest.fixture
def kserve_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The test server started with the test's arguments (indirect); its URL and log."""
    log = tmp_path / "requests.jsonl"
    args = [*SERVER, "--port", "0", "--first-token-ms", "5", "--log", str(log)]
    proc = subprocess.Popen(
        [*args, *getattr(request, "param", [])], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    url = f"http://127.0.0.1:{proc.stdout.readline().split()[-1]}"
    try:
        yield url, log
    finally:
        proc.kill()
        proc.wait()


def server_args(*args: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("kserve_server", [list(args)], indirect=True)


def _cell(url: str, *overrides: str):
    return plan_from_overrides(
        [
            "engine=http",
            "engine.api=kserve",
            f"engine.url={url}",
            "scenario.warmup_requests=2",
            "scenario.warmup_s=0.1",
            "scenario.min_requests=120",
            "scenario.min_duration_s=1.0",
            "scenario.max_duration_s=8",
            "scenario.ci_target=0",
            *overrides,
        ]
    ).cells[0]


def _served(url: str) -> dict[str, int]:
    """Inferences the server answered per model (its statistics route)."""
    with urllib.request.urlopen(f"{url}/v2/models/stats", timeout=5) as answer:
        stats = json.load(answer)["model_stats"]
    return {s["name"]: s["inference_count"] for s in stats}


def _chi_square(counts: list[int], expected: list[float]) -> float:
    total = sum(counts)
    return sum((c - total * p) ** 2 / (total * p) for c, p in zip(counts, expected, strict=True))


@server_args("--models", MODELS, "--inputs", TEXT_INPUTS)
def test_encoder_token_ids_spread_over_n_models(kserve_server: tuple[str, Path]) -> None:
    url, log = kserve_server
    cell = _cell(url, "model=bert_tiny", "batch_size=2", "threads=2", "engine.target_models=4")
    row = run_cell(cell).row
    assert row["status"] == "ok", row.get("error")
    assert row["errors"] == 0 and row["n"] >= 120
    info = json.loads(row["engine_info"])
    sent = info["target_requests"]
    assert info["server"] == "kserve-test-server 0" and info["targets"] == 4
    # what the row says each model got is what the server answered for it
    assert _served(url) == sent and sum(sent.values()) >= row["n"]
    names = MODELS.split(",")
    assert _chi_square([sent[n] for n in names], shares(4, "uniform", 1.0)) < 16.3, sent
    inputs = {
        json.dumps(json.loads(line)["body"]["inputs"]) for line in log.read_text().splitlines()
    }
    assert inputs == {
        json.dumps(
            [
                {"name": "input_ids", "shape": [2, 128], "datatype": "INT64"},
                {"name": "attention_mask", "shape": [2, 128], "datatype": "INT64"},
            ]
        )
    }


@server_args("--inputs", "pixels:FP32")
def test_image_model_sends_an_fp32_pixel_tensor(kserve_server: tuple[str, Path]) -> None:
    url, log = kserve_server
    cell = _cell(
        url,
        "model=resnet_tiny",
        "batch_size=2",
        "engine.served_model=resnet",
        "engine.input_names=[pixels]",
    )
    row = run_cell(cell).row
    assert row["status"] == "ok", row.get("error")
    assert set(_served(url)) == {"resnet"}
    logged = [json.loads(line)["body"] for line in log.read_text().splitlines()]
    assert {json.dumps(entry["inputs"]) for entry in logged} == {
        json.dumps([{"name": "pixels", "shape": [2, 3, 64, 64], "datatype": "FP32"}])
    }
    assert "target_requests" not in json.loads(row["engine_info"])


@server_args("--models", "model-0,model-1")
def test_zipf_models_and_one_not_ready(kserve_server: tuple[str, Path]) -> None:
    url, _ = kserve_server
    skewed = _cell(
        url,
        "model=bert_tiny",
        "engine.target_names=[model-0,model-1]",
        "engine.target_distribution=zipf",
        "engine.target_skew=2",
        "scenario.min_requests=100",
    )
    row = run_cell(skewed).row
    assert row["status"] == "ok", row.get("error")
    sent = json.loads(row["engine_info"])["target_requests"]
    # zipf s=2 over two models: 80 % and 20 %
    assert 0.7 < sent["model-0"] / sum(sent.values()) < 0.9, sent
    missing = run_cell(_cell(url, "model=bert_tiny", "engine.target_models=3")).row
    assert missing["status"] == "failed" and "model-2" in missing["error"], missing["error"]


@server_args("--inputs", "input_ids:INT32,attention_mask:INT32,token_type_ids:INT32")
def test_int32_and_token_types_and_a_wrong_tensor_fails(kserve_server: tuple[str, Path]) -> None:
    url, _ = kserve_server
    names = "engine.input_names=[input_ids,attention_mask,token_type_ids]"
    row = run_cell(_cell(url, "model=bert_tiny", names, "engine.input_datatype=INT32")).row
    assert row["status"] == "ok", row.get("error")
    refused = run_cell(
        _cell(url, "model=bert_tiny", "scenario.min_requests=5", "scenario.max_duration_s=1")
    ).row
    # the server refuses INT64 ids and two inputs (HTTP 400): every request failed
    assert refused["status"] == "failed" and refused["error_class"] == "NoCompletedRequests"
