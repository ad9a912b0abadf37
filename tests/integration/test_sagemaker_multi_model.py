"""engine=sagemaker against a multi-model endpoint: a TargetModel drawn per request among N
(uniform, Zipf), and image models' encoded pictures, through boto3 against the SageMaker
runtime stub on loopback (tests/support/sagemaker_server.py, which decodes each picture with
Pillow and logs each invocation's TargetModel)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.cell.runner import run_cell
from bench.emulator import aws_env
from bench.engines.endpoint.targets import shares
from bench.plan.grid import plan_from_overrides
from tests.conftest import REPO

STUB = [sys.executable, "-m", "tests.support.sagemaker_server"]


@pytest.fixture
def stub_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The stub (10 ms a forward pass), boto3 pointed at it; the file it logs requests to."""
    log = tmp_path / "requests.jsonl"
    proc = subprocess.Popen(
        [*STUB, "--port", "0", "--first-token-ms", "10", "--token-ms", "1", "--log", str(log)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = f"http://127.0.0.1:{proc.stdout.readline().split()[-1]}"
    for key, value in aws_env(url).items():
        monkeypatch.setenv(key, value)
    try:
        yield log
    finally:
        proc.kill()
        proc.wait()


def _cell(*overrides: str):
    return plan_from_overrides(
        [
            "engine=sagemaker",
            "engine.endpoint_name=bench-mme",
            "scenario.warmup_requests=2",
            "scenario.warmup_s=0.1",
            "scenario.min_requests=120",
            "scenario.min_duration_s=1.0",
            "scenario.max_duration_s=8",
            "scenario.ci_target=0",
            *overrides,
        ]
    ).cells[0]


def _logged(log: Path) -> list[dict]:
    return [json.loads(line)["body"] for line in log.read_text().splitlines()]


def _chi_square(counts: list[int], expected: list[float]) -> float:
    total = sum(counts)
    return sum((c - total * p) ** 2 / (total * p) for c, p in zip(counts, expected, strict=True))


def test_image_requests_spread_over_n_targets_and_decode(stub_log: Path) -> None:
    row = run_cell(_cell("model=resnet_tiny", "engine.target_models=4", "threads=2")).row
    assert row["status"] == "ok", row.get("error")
    assert row["errors"] == 0 and row["n"] >= 120
    info = json.loads(row["engine_info"])
    sent = info["target_requests"]
    names = [f"model-{i}.tar.gz" for i in range(4)]
    assert sorted(sent) == names and info["targets"] == 4
    logged = _logged(stub_log)
    # the stub saw exactly what the row says was sent to each target (warmup included)
    assert Counter(entry["target"] for entry in logged) == Counter(sent)
    assert sum(sent.values()) == len(logged) >= row["n"]
    # every target used, evenly: chi-square with 3 degrees of freedom under its 0.1 % tail
    assert _chi_square([sent[n] for n in names], shares(4, "uniform", 1.0)) < 16.3, sent
    # each body a picture the stub decoded with Pillow at the model's 64 x 64
    assert {entry["content_type"] for entry in logged} == {"image/png"}
    assert all(
        entry["image"] == {"format": "PNG", "size": [64, 64], "mode": "RGB"} for entry in logged
    )
    assert info["payload_bytes"] > 3 * 64 * 64  # seeded noise: PNG cannot shrink it


def test_zipf_targets_and_jpeg_pictures(stub_log: Path) -> None:
    row = run_cell(
        _cell(
            "model=resnet_tiny",
            "engine.target_names=[hot.tar.gz,warm.tar.gz,cold.tar.gz]",
            "engine.target_distribution=zipf",
            "engine.target_skew=1.5",
            "engine.image_format=jpeg",
            "engine.content_type=image/jpeg",
        )
    ).row
    assert row["status"] == "ok", row.get("error")
    sent = json.loads(row["engine_info"])["target_requests"]
    assert sent["hot.tar.gz"] > sent["warm.tar.gz"] > sent["cold.tar.gz"] > 0, sent
    logged = _logged(stub_log)
    assert Counter(entry["target"] for entry in logged) == Counter(sent)
    assert {entry["image"]["format"] for entry in logged} == {"JPEG"}


def test_text_requests_to_n_targets_without_streaming(stub_log: Path) -> None:
    row = run_cell(
        _cell("model=opt_tiny", "engine.target_models=3", "engine.stream=false", "threads=2")
    ).row
    assert row["status"] == "ok", row.get("error")
    sent = json.loads(row["engine_info"])["target_requests"]
    logged = _logged(stub_log)
    assert Counter(entry["target"] for entry in logged) == Counter(sent) and len(sent) == 3
    assert {entry["content_type"] for entry in logged} == {"application/json"}
