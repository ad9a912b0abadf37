"""bench's real images, built by containers/build_local.py (podman, local Debian base, CPU
torch), running sweep cells through the AWS Batch path: the sweep is submitted to the emulator,
then each array child runs *in the image* with `podman run --network host`, with the command
and environment read back from the job definition Batch registered, against the S3 emulator on
loopback. Ends in `collect` and an aggregate where every cell is ok and records its image.

Needs podman, runc and mmdebstrap (`.ci/run` installs them). Without podman these tests skip,
unless BENCH_REQUIRE_IMAGES=1 (CI sets it), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import boto3
import pandas as pd
import pytest

from bench.emulator import aws_env
from bench.executors.base import read_submissions
from bench.store import open_store
from tests.conftest import REPO, batch_queue

pytestmark = [pytest.mark.aws, pytest.mark.slow, pytest.mark.container]

IMAGES = ("hf", "deepspeed")
CPU_INSTANCE = "local-cpu"
# A bert_tiny cell and an opt_tiny generation cell, kept short: the point is where they run.
CELLS = [
    "grid.axes.model=[bert_tiny,opt_tiny]",
    f"grid.axes.instance=[{CPU_INSTANCE}]",
    "scenario.warmup_requests=2",
    "scenario.warmup_s=0",
    "scenario.min_requests=10",
    "scenario.min_duration_s=0.2",
    "scenario.ci_target=0",
]
# What the job role gives a container on AWS: here the emulator's dummy credentials.
AWS_KEYS = tuple(aws_env("http://127.0.0.1"))


@pytest.fixture(scope="session")
def built_images() -> dict[str, str]:
    """name -> local image reference, built (or found in podman's layer cache) once."""
    if not shutil.which("podman"):
        message = "podman is not installed (apt-get install podman runc mmdebstrap)"
        if os.environ.get("BENCH_REQUIRE_IMAGES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [sys.executable, str(REPO / "containers" / "build_local.py"), *IMAGES],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(zip(IMAGES, done.stdout.split(), strict=True))


@pytest.fixture
def cpu_queue(batch_queues: list[str]) -> str:
    """A queue for the CPU instance type, made as jobs/batch.yaml makes the G5 ones."""
    batch = boto3.client("batch")
    template = batch.describe_compute_environments(computeEnvironments=["bench-ce-g5-xlarge"])
    return batch_queue(batch, template["computeEnvironments"][0]["serviceRole"], CPU_INSTANCE)


def container_run(job: dict, index: int) -> list[str]:
    """`podman run` for array child `index` of `job`, as the job definition says: its image,
    its command with the job's parameters substituted for Ref::NAME, its environment, plus
    the array index Batch sets and the credentials a job role would give."""
    batch = boto3.client("batch")
    definition = batch.describe_job_definitions(jobDefinitions=[job["jobDefinition"]])[
        "jobDefinitions"
    ][0]
    props = definition["containerProperties"]
    parameters = {**definition.get("parameters", {}), **job.get("parameters", {})}
    command = [
        parameters[arg.removeprefix("Ref::")] if arg.startswith("Ref::") else arg
        for arg in props["command"]
    ]
    environment = {e["name"]: e["value"] for e in props.get("environment", [])}
    environment.update({key: os.environ[key] for key in AWS_KEYS if key in os.environ})
    environment["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
    flags = [arg for key, value in environment.items() for arg in ("--env", f"{key}={value}")]
    return ["podman", "run", "--rm", "--network", "host", *flags, props["image"], *command]


@pytest.mark.parametrize("name", IMAGES)
def test_cells_run_inside_the_image_through_the_batch_path(
    name, built_images, bench_cli, s3_root, cpu_queue
) -> None:
    image = built_images[name]
    sweep_id = f"in-{name}"
    proc = bench_cli(
        "sweep",
        f"engine={name}",
        *CELLS,
        "executor=aws_batch",
        f"executor.image={image}",
        f"store.root={s3_root}",
        f"sweep_id={sweep_id}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (submission,) = read_submissions(open_store(s3_root), sweep_id)
    assert len(submission.indices) == 2
    (job,) = boto3.client("batch").describe_jobs(jobs=[submission.job_id])["jobs"]
    assert job["jobQueue"].endswith(cpu_queue)
    for index in range(len(submission.indices)):
        child = subprocess.run(
            container_run(job, index), capture_output=True, text=True, timeout=600, check=False
        )
        assert child.returncode == 0, (child.stdout + child.stderr)[-4000:]

    collected = bench_cli("collect", sweep_id, f"store.root={s3_root}")
    assert collected.returncode == 0, collected.stderr
    frame = pd.read_parquet(f"{s3_root}/{sweep_id}/aggregated.parquet")
    assert sorted(frame["model"]) == ["bert_tiny", "opt_tiny"]
    assert (frame["status"] == "ok").all(), frame[["model", "status", "error"]].to_string()
    assert (frame["engine"] == name).all()
    assert (frame["image"] == image).all()
    assert frame["in_container"].all()
    assert frame["torch_version"].str.endswith("+cpu").all()
    for pins in frame["image_pins"]:
        assert f"torch=={frame['torch_version'].iloc[0]}" in pins.split()
        assert any(pin.startswith("transformers==") for pin in pins.split())
    generated = frame.set_index("model").loc["opt_tiny"]
    assert generated["tokens_per_s"] > 0


# What each image must import (containers/README.md's table): its engines' libraries.
IMPORTS = {
    "hf": ("torch", "transformers", "accelerate", "bitsandbytes", "bench"),
    "deepspeed": ("torch", "transformers", "deepspeed", "bench"),
}


@pytest.mark.parametrize("name", IMAGES)
def test_each_image_imports_what_its_engines_need(name, built_images) -> None:
    modules = IMPORTS[name]
    code = f"import importlib; [importlib.import_module(m) for m in {modules!r}]; print('ok')"
    done = subprocess.run(
        ["podman", "run", "--rm", "--entrypoint", "python", built_images[name], "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory: pytest.TempPathFactory):
    """A one-node Slurm cluster started for this module (tests/support/slurm_cluster.py)."""
    from tests.support.slurm_cluster import slurm_binaries_missing, slurm_cluster

    if reason := slurm_binaries_missing():
        pytest.skip(reason)
    with slurm_cluster(tmp_path_factory.mktemp("slurm-cluster")) as env:
        yield env


@pytest.mark.slurm
def test_slurm_tasks_run_the_cells_inside_the_image(built_images, slurm_env, tmp_path) -> None:
    from tests.conftest import run_cli

    image = built_images["hf"]
    logs = tmp_path / "logs"
    args = [
        "sweep",
        "engine=hf",
        *CELLS,
        "executor=slurm",
        f"executor.image={image}",
        f"executor.log_dir={logs}",
        "executor.poll_s=1",
        "wait=true",
        "sweep_id=slurm-image",
    ]
    proc = run_cli(args, tmp_path, env=slurm_env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (script,) = (logs / "slurm-image").glob("*.sbatch")
    assert f"exec podman run --rm --network host --env BENCH_IMAGE={image}" in script.read_text()
    frame = pd.read_parquet(tmp_path / "results" / "slurm-image" / "aggregated.parquet")
    assert sorted(frame["model"]) == ["bert_tiny", "opt_tiny"]
    assert (frame["status"] == "ok").all(), frame[["model", "status", "error"]].to_string()
    assert (frame["image"] == image).all() and frame["in_container"].all()
    assert frame["image_pins"].notna().all()
