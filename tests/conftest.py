"""Shared fixtures: run the CLI as a user would, in a temp folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Checkpoints built from config, shared by the whole test session."""
    return tmp_path_factory.mktemp("models")


def run_cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`python -m bench ARGS` in cwd; returns the completed process (never raises on rc)."""
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def bench_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def call(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(list(args), tmp_path, env)

    return call


@pytest.fixture
def conf_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of conf/ (BENCH_CONF_DIR points at it) for tests that add YAML files."""
    import shutil

    target = tmp_path / "conf"
    shutil.copytree(REPO / "conf", target)
    monkeypatch.setenv("BENCH_CONF_DIR", str(target))
    return target


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu` tests run only where torch sees a CUDA device."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def s3_server() -> str:
    """moto's S3 server as a separate process on a free loopback port, for the session."""
    from bench.emulator import moto_server

    with moto_server() as url:
        yield url


@pytest.fixture
def s3_root(s3_server: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A fresh bucket on the emulator, and the environment pointing at it (dummy credentials,
    AWS_ENDPOINT_URL on loopback). Returns s3://BUCKET/results."""
    import re
    import uuid

    from bench.emulator import aws_env

    for key, value in aws_env(s3_server).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    import boto3

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    bucket = f"{name}-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/results"


G5_TYPES = ["g5.xlarge", "g5.2xlarge", "g5.4xlarge", "g5.12xlarge", "g5.24xlarge", "g5.48xlarge"]


@pytest.fixture
def batch_queues(s3_root: str, s3_server: str) -> list[str]:
    """What jobs/batch.yaml would create, on the emulator: a compute environment and a job
    queue per G5 type. moto's Batch is told not to run containers (it marks jobs done)."""
    import json
    import urllib.request

    import boto3

    request = urllib.request.Request(
        f"{s3_server}/moto-api/config",
        data=json.dumps({"batch": {"use_docker": False}}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request).read()
    iam, batch = boto3.client("iam"), boto3.client("batch")
    try:
        role = iam.get_role(RoleName="bench-batch-service")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName="bench-batch-service", AssumeRolePolicyDocument="{}")[
            "Role"
        ]["Arn"]
    return [batch_queue(batch, role, instance_type) for instance_type in G5_TYPES]


def batch_queue(batch, service_role: str, instance_type: str) -> str:
    """The queue and compute environment jobs/batch.yaml makes for one instance type, on the
    emulator (made once; its name is returned)."""
    suffix = instance_type.replace(".", "-")
    name = f"bench-{suffix}"
    if batch.describe_job_queues(jobQueues=[name])["jobQueues"]:
        return name
    env = batch.create_compute_environment(
        computeEnvironmentName=f"bench-ce-{suffix}",
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=service_role,
    )
    batch.create_job_queue(
        jobQueueName=name,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
    )
    return name
