"""executor=slurm against a real one-node Slurm cluster started here (munged, slurmctld,
slurmd; tests/support/slurm_cluster.py): `sbatch --array` per instance type, wait via squeue,
collect. The script rendering is checked without a cluster."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from bench.executors.slurm import render_script
from tests.conftest import run_cli
from tests.support.slurm_cluster import slurm_binaries_missing, slurm_cluster

NULL_SWEEP = "slurmnull"
NULL_ARRAY = f"{NULL_SWEEP}-local-cpu"  # <sweep_id>-<instance type>


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment (SLURM_CONF) of a cluster running for this module's tests."""
    reason = slurm_binaries_missing()
    if reason:
        pytest.skip(reason)
    with slurm_cluster(tmp_path_factory.mktemp("slurm-cluster")) as env:
        yield env


def _ok_rows(stdout: str) -> int:
    """Rows of the sweep's summary table whose status column says ok."""
    return sum(1 for line in stdout.splitlines() if re.search(r"\sok\s", line))


def _job_ids(stderr: str) -> list[str]:
    return [line.split()[1] for line in stderr.splitlines() if line.startswith("submitted ")]


@pytest.fixture(scope="module")
def null_sweep(
    slurm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, object]:
    """Four null-engine cells through one `sbatch --array=0-3%1`, waited for."""
    work = tmp_path_factory.mktemp("slurm-null")
    args = [
        "sweep",
        "engine=null",
        "grid.axes.threads=[1,2]",
        "grid.axes.batch_size=[1,4]",
        "scenario.min_requests=5",
        "scenario.min_duration_s=0.1",
        "scenario.ci_target=0",
        "executor=slurm",
        "wait=true",
        "executor.poll_s=1",
        f"sweep_id={NULL_SWEEP}",
        f"executor.log_dir={work / 'logs'}",
    ]
    proc = run_cli(args, work, env=slurm_env, timeout=300)
    return {"work": work, "proc": proc}


@pytest.mark.slurm
def test_null_sweep_runs_as_one_array_and_collects(null_sweep: dict) -> None:
    proc: subprocess.CompletedProcess[str] = null_sweep["proc"]
    work: Path = null_sweep["work"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(_job_ids(proc.stderr)) == 1, proc.stderr
    assert _ok_rows(proc.stdout) == 4, proc.stdout

    frame = pd.read_parquet(work / "results" / NULL_SWEEP / "aggregated.parquet")
    assert len(frame) == 4 and frame["cell_id"].is_unique
    assert (frame["status"] == "ok").all(), frame[["cell_id", "error"]]

    logs = work / "logs" / NULL_SWEEP
    (job_id,) = _job_ids(proc.stderr)
    # Array names carry a per-submission suffix: <sweep_id>-<instance type>-<6 hex>.
    task_logs = sorted(logs.glob(f"{NULL_ARRAY}-*-{job_id}_*.log"))
    assert [p.name.rsplit("-", 1)[1] for p in task_logs] == [f"{job_id}_{i}.log" for i in range(4)]
    for log in task_logs:
        assert '"status": "ok"' in log.read_text(), log.read_text()[-2000:]
    (script_path,) = logs.glob(f"{NULL_ARRAY}-*.sbatch")
    script = script_path.read_text()
    assert "#SBATCH --array=0-3%1" in script.splitlines(), script


@pytest.mark.slurm
def test_status_after_sweep_shows_job_done_and_nothing_missing(
    null_sweep: dict, slurm_env: dict[str, str]
) -> None:
    assert null_sweep["proc"].returncode == 0, null_sweep["proc"].stderr[-3000:]
    (job_id,) = _job_ids(null_sweep["proc"].stderr)
    proc = run_cli(["status", NULL_SWEEP], null_sweep["work"], env=slurm_env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job_lines = [line for line in proc.stdout.splitlines() if line.startswith(f"{job_id} ")]
    assert len(job_lines) == 1, proc.stdout
    assert NULL_ARRAY in job_lines[0] and " DONE" in job_lines[0], proc.stdout
    assert "cells=4" in job_lines[0], proc.stdout
    assert "rows: ok 4" in proc.stdout and "pending (no row yet) 0" in proc.stdout, proc.stdout


@pytest.mark.slurm
@pytest.mark.slow
def test_smoke_grid_through_sbatch_array(
    slurm_env: dict[str, str], models_dir: Path, tmp_path: Path
) -> None:
    args = [
        "sweep",
        "+grid=smoke",
        # both models, both batch sizes: 4 array tasks show the mechanics the 16 showed (the
        # whole smoke grid took 219 s of CI here; the local smoke sweep runs all 12 elsewhere)
        "grid.axes.precision=[fp32]",
        "grid.axes.threads=[1]",
        "executor=slurm",
        "wait=true",
        "executor.poll_s=2",
        "sweep_id=slurmsmoke",
        f"models_dir={models_dir}",
        f"executor.log_dir={tmp_path / 'logs'}",
    ]
    proc = run_cli(args, tmp_path, env=slurm_env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (job_id,) = _job_ids(proc.stderr)
    assert _ok_rows(proc.stdout) == 4, proc.stdout
    frame = pd.read_parquet(tmp_path / "results" / "slurmsmoke" / "aggregated.parquet")
    assert len(frame) == 4 and frame["cell_id"].is_unique
    assert (frame["status"] == "ok").all(), frame[["cell_id", "error"]]
    assert set(frame["model"]) == {"bert_tiny", "opt_tiny"}
    assert len(list((tmp_path / "logs" / "slurmsmoke").glob(f"*-{job_id}_*.log"))) == 4


def _render(gpus: int) -> str:
    return render_script(
        name="sw-g5.12xlarge",
        size=3,
        parallelism=1,
        gpus=gpus,
        time_limit_s=3600,
        log_dir=Path("/shared/logs/sw"),
        manifest_uri="s3://bucket/results/sw/manifest.json",
        array="sw-g5.12xlarge",
        python="/opt/venv/bin/python",
    )


def _directives(script: str) -> list[str]:
    return [
        line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH")
    ]


def test_render_script_asks_for_gpus_and_a_whole_node() -> None:
    directives = _directives(_render(gpus=2))
    assert "--gres=gpu:2" in directives
    assert "--exclusive" in directives
    assert "--array=0-2%1" in directives
    assert "--cpus-per-task=1" not in directives


def test_render_script_without_gpus_has_no_gres() -> None:
    script = _render(gpus=0)
    directives = _directives(script)
    assert not any(d.startswith("--gres") for d in directives), directives
    assert "--exclusive" not in directives
    assert "--cpus-per-task=1" in directives


@pytest.mark.parametrize("gpus", [0, 2])
def test_render_script_execs_bench_cell_on_the_array_map(gpus: int) -> None:
    script = _render(gpus)
    assert script.startswith("#!/bin/bash\n")
    (exec_line,) = [line for line in script.splitlines() if line.startswith("exec ")]
    assert shlex.split(exec_line) == [
        "exec",
        "/opt/venv/bin/python",
        "-m",
        "bench",
        "cell",
        "--manifest",
        "s3://bucket/results/sw/manifest.json",
        "--array",
        "sw-g5.12xlarge",
    ]


def test_an_image_runs_the_cell_in_a_container_with_the_task_environment(tmp_path: Path) -> None:
    from bench.executors.slurm import SlurmOptions, container_command
    from bench.store import open_store

    local = container_command(SlurmOptions(image="bench-hf:1"), open_store(str(tmp_path)), gpus=2)
    assert local[:4] == ["podman", "run", "--rm", "--network"] and local[-1] == "bench-hf:1"
    assert f"{tmp_path}:{tmp_path}" in local  # the local store, at its own path
    assert local[local.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    assert local[-3:-1] == ["--device", "nvidia.com/gpu=all"]
    for name in ("SLURM_ARRAY_TASK_ID", "SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES", "AWS_ENDPOINT_URL"):
        assert name in local
    script = render_script(
        name="sw",
        size=2,
        parallelism=1,
        gpus=0,
        time_limit_s=60,
        log_dir=tmp_path,
        manifest_uri="s3://b/r/sw/manifest.json",
        array="sw-a",
        container=["docker", "run", "--rm", "img:1"],
    )
    assert "exec docker run --rm img:1 --manifest s3://b/r/sw/manifest.json --array sw-a" in script
    assert container_command(SlurmOptions(), open_store(str(tmp_path)), gpus=0) == []


def test_an_unknown_container_runtime_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "sbatch"  # present, so the runtime is what is refused
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 99\n")
    fake.chmod(0o755)
    proc = run_cli(
        ["sweep", "engine=null", "executor=slurm", "executor.image=img:1",
         "executor.container_runtime=lxc"],
        tmp_path,
        env={"PATH": f"{fake.parent}:/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "executor.container_runtime" in proc.stderr and "podman or docker" in proc.stderr
    assert not (tmp_path / "results").exists()
