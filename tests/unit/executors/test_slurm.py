"""bench.executors.slurm without a cluster: a task's time limit in Slurm's form, the script's
partition and extra directives, the container command for docker and for a store that is not
a local folder, its options' checks, and squeue's answers read (a job still queued, one squeue
has forgotten, squeue not answering). The script's GPU and exec lines, and real sweeps
through sbatch, are tests/integration/test_slurm.py's."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bench.config.checks import ConfigError
from bench.executors.base import Submission
from bench.executors.slurm import (
    SQUEUE_FAILURES_BEFORE_GIVING_UP,
    SlurmExecutor,
    SlurmOptions,
    SqueueError,
    _time_limit,
    container_command,
    render_script,
)
from bench.store import LocalStore
from bench.store.s3 import S3Store


@pytest.mark.parametrize(
    ("seconds", "limit"),
    [(0, "00:01:00"), (59, "00:01:00"), (60, "00:01:00"), (61, "00:02:00"), (3600, "01:00:00"),
     (3601, "01:01:00"), (100 * 3600, "100:00:00")],
)  # fmt: skip
def test_a_time_limit_is_whole_minutes_rounded_up(seconds, limit):
    assert _time_limit(seconds) == limit


def test_the_script_names_its_partition_and_the_extra_directives(tmp_path):
    script = render_script(
        name="sw-a",
        size=5,
        parallelism=2,
        gpus=0,
        time_limit_s=90,
        log_dir=tmp_path,
        manifest_uri="/r/sw/manifest.json",
        array="sw-a",
        partition="bench-g5-xlarge",
        extra=["--account=ml", "--qos=low"],
    )
    directives = [
        line.removeprefix("#SBATCH ") for line in script.splitlines() if "#SBATCH" in line
    ]
    assert directives[:4] == [
        "--job-name=sw-a",
        "--array=0-4%2",
        f"--output={tmp_path}/%x-%A_%a.log",
        "--time=00:02:00",
    ]
    assert directives[-3:] == ["--partition=bench-g5-xlarge", "--account=ml", "--qos=low"]
    assert "set -euo pipefail" in script.splitlines()


def test_docker_gets_its_own_gpu_flags_and_a_remote_store_no_mount():
    s3 = S3Store("s3://bench-results/p", client=object())  # the command sends nothing
    argv = container_command(
        SlurmOptions(
            image="bench-hf:2", container_runtime="docker", container_args=("--shm-size=8g",)
        ),
        s3,
        gpus=1,
    )
    assert argv[:3] == ["docker", "run", "--rm"] and argv[-1] == "bench-hf:2"
    assert argv[-4:-1] == ["--gpus", "all", "--shm-size=8g"]
    assert "--volume" not in argv and "--user" not in argv  # nothing local to mount
    assert "BENCH_IMAGE=bench-hf:2" in argv


def test_an_unknown_container_runtime_is_refused(tmp_path):
    with pytest.raises(ConfigError) as refused:
        container_command(
            SlurmOptions(image="x", container_runtime="lxc"), LocalStore(str(tmp_path)), 0
        )
    assert refused.value.key == "executor.container_runtime"
    assert str(refused.value).endswith("use podman or docker")


@pytest.mark.parametrize(
    ("options", "key"),
    [({"parallelism": 0}, "executor.parallelism"), ({"time_limit_s": 0}, "executor.time_limit_s"),
     ({"poll_s": 0}, "executor.poll_s"), ({"parallelism": 1.5}, "executor.parallelism")],
)  # fmt: skip
def test_option_values_are_checked(options, key):
    with pytest.raises(ConfigError) as refused:
        SlurmExecutor(options)
    assert refused.value.key == key


def _fake_squeue(folder: Path, body: str) -> None:
    """An `squeue` on PATH that answers as `body` says (a shell script)."""
    script = folder / "squeue"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def _submission(job_id: str) -> Submission:
    return Submission("slurm", job_id, f"arr-{job_id}", "local-cpu", [0, 1, 2])


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The only folder on PATH (the fake scripts' shells are named by absolute path)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))  # these fakes alone: no real Slurm client
    return folder


def test_squeue_counts_each_jobs_tasks_per_state(bin_dir):
    _fake_squeue(bin_dir, "printf '41 RUNNING\\n41 PENDING\\n41 PENDING\\nnoise\\n'")
    states = SlurmExecutor({}).describe([_submission("41"), _submission("42")])
    assert (states[0]["status"], states[0]["children"]) == ("ACTIVE", {"RUNNING": 1, "PENDING": 2})
    assert (states[1]["status"], states[1]["children"]) == ("DONE", {})  # left the queue


def test_a_job_squeue_has_forgotten_is_done_and_a_failing_squeue_is_unknown(bin_dir):
    _fake_squeue(bin_dir, "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1")
    assert SlurmExecutor({}).describe([_submission("9")])[0]["status"] == "DONE"
    _fake_squeue(bin_dir, "echo 'Unable to contact slurm controller' >&2; exit 1")
    (state,) = SlurmExecutor({}).describe([_submission("9")])
    assert state["status"] == "UNKNOWN"
    assert state["reason"] == "squeue failed (1): Unable to contact slurm controller"
    assert SlurmExecutor({}).describe([]) == []


def test_waiting_gives_up_after_repeated_unknown_states(bin_dir):
    _fake_squeue(bin_dir, "echo 'Unable to contact slurm controller' >&2; exit 1")
    with pytest.raises(SqueueError, match="Unable to contact slurm controller"):
        SlurmExecutor({}).wait([_submission("9")], poll_s=0)
    assert SQUEUE_FAILURES_BEFORE_GIVING_UP > 1  # one failed poll is not enough to give up


def test_waiting_ends_once_every_job_has_left_the_queue(bin_dir):
    _fake_squeue(bin_dir, "exit 0")
    SlurmExecutor({}).wait([_submission("9"), _submission("10")], poll_s=0)


def test_without_sbatch_a_slurm_sweep_is_refused_before_anything_is_written(bin_dir, tmp_path):
    with pytest.raises(ConfigError, match="needs sbatch on PATH"):
        SlurmExecutor({}).check_ready(None, LocalStore(str(tmp_path)))  # type: ignore[arg-type]
