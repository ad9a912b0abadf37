"""engine=http with api=kserve against a real NVIDIA Triton Inference Server (2.51.0, CPU
only, from PyTriton's wheel: tests/support/triton_env.py builds its environment once per
machine, tests/support/triton_models.py serves stand-in models): token ids to three models
drawn per request and an image model's FP32 pixels, each request's model counted by Triton
itself (its Prometheus metrics, nv_inference_request_success per model).

Building the environment needs the package registry; where that fails the test is skipped
with the reason, unless BENCH_REQUIRE_TRITON=1. BENCH_SKIP_TRITON=1 skips it (about 20 s once
built: Triton loads each model's Python backend in 1-2 s)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from bench.cell.runner import run_cell
from bench.engines.process_groups import start_group, stop_group
from bench.plan.grid import plan_from_overrides
from tests.conftest import REPO

START_S = 120  # Triton up with its four models (about 12 s here)
STOP_S = 30  # PyTriton stops Triton on SIGTERM; what is left then is killed


@pytest.fixture(scope="module")
def triton() -> Iterator[tuple[str, str]]:
    """Triton serving model-0..2 and image: its HTTP and metrics base URLs."""
    if os.environ.get("BENCH_SKIP_TRITON"):
        pytest.skip("BENCH_SKIP_TRITON is set")
    from tests.support.triton_env import ensure_triton_python

    try:
        python = ensure_triton_python()
    except RuntimeError as exc:
        if os.environ.get("BENCH_REQUIRE_TRITON"):
            raise
        pytest.skip(f"no PyTriton environment here: {exc}")
    script = REPO / "tests" / "support" / "triton_models.py"
    # a process group of its own: Triton and its backend stubs end with it (stop_group)
    proc = start_group(
        [str(python), str(script), "--models", "3"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline, ports = time.monotonic() + START_S, None
    while ports is None and time.monotonic() < deadline:  # Triton's own log comes first
        line = proc.stdout.readline()
        if not line:
            break
        ports = re.match(r"listening on (\d+) (\d+)", line)
    try:
        assert ports is not None, "Triton did not start (its log is above)"
        yield f"http://127.0.0.1:{ports[1]}", f"http://127.0.0.1:{ports[2]}"
    finally:
        stop_group(proc, STOP_S)


def _cell(url: str, *overrides: str):
    return plan_from_overrides(
        [
            "engine=http",
            "engine.api=kserve",
            f"engine.url={url}",
            "scenario.warmup_requests=2",
            "scenario.warmup_s=0.1",
            "scenario.min_requests=100",
            "scenario.min_duration_s=1.0",
            "scenario.max_duration_s=8",
            "scenario.ci_target=0",
            *overrides,
        ]
    ).cells[0]


def _served(metrics: str) -> dict[str, int]:
    """Successful inference requests per model, as Triton counts them."""
    with urllib.request.urlopen(f"{metrics}/metrics", timeout=5) as answer:
        page = answer.read().decode()
    found = re.findall(r'^nv_inference_request_success\{model="([^"]+)",[^}]*\} (\d+)', page, re.M)
    return {model: int(count) for model, count in found}


def test_a_real_triton_serves_token_ids_to_n_models_and_pixels(triton: tuple[str, str]) -> None:
    url, metrics = triton
    row = run_cell(
        _cell(url, "model=bert_tiny", "batch_size=2", "threads=2", "engine.target_models=3")
    ).row
    assert row["status"] == "ok" and row["errors"] == 0, row.get("error")
    info = json.loads(row["engine_info"])
    assert info["server"].startswith("triton ")
    sent = info["target_requests"]
    assert sorted(sent) == ["model-0", "model-1", "model-2"] and min(sent.values()) > 0
    counted = _served(metrics)
    assert {m: counted.get(m) for m in sent} == sent  # Triton counted what the row says
    image = run_cell(
        _cell(url, "model=resnet_tiny", "batch_size=2", "engine.served_model=image")
    ).row
    assert image["status"] == "ok" and image["errors"] == 0, image.get("error")
    assert _served(metrics)["image"] >= image["n"]
