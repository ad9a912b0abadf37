"""executor=slurm: one `sbatch --array` job per instance type, each task one cell.

The rendered script runs `python -m bench cell --manifest URI --array NAME`, or with
`executor.image` set, `podman run ... IMAGE --manifest URI --array NAME` (the image's entry
point is the cell verb; `container_runtime: docker` works the same); the task's index comes
from SLURM_ARRAY_TASK_ID. `%parallelism` caps how many tasks run at once (default 1:
cells sharing a node would skew each other's measurements). GPUs are asked for with
`--gres=gpu:K` where a cell needs them. Per-task logs go to `log_dir` (a filesystem the
compute nodes share). Status comes from squeue while jobs are queued or running; once they
have left the queue, the rows in the store are the truth.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config.checks import ConfigError, int_at_least, positive
from bench.executors.base import (
    Executor,
    JobHandle,
    ProgressFn,
    Submission,
    group_by_instance,
    handles_for,
    instance_queue,
    journal_submission,
)
from bench.executors.environment import SlurmEnvironment
from bench.executors.job import write_array_map
from bench.plan.manifest import Plan
from bench.store import LocalStore, Store, SweepPaths

SQUEUE_FAILURES_BEFORE_GIVING_UP = 10
# What a cell in a container reads from its Slurm task, passed in by name (a name the task
# does not have is skipped): its index and attempt, the GPUs Slurm gave it, the credentials
# and endpoint of an S3 store.
CONTAINER_ENV = (
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_JOB_ID",
    "SLURM_RESTART_COUNT",
    "CUDA_VISIBLE_DEVICES",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_EC2_METADATA_DISABLED",
    "HF_TOKEN",
)
# How each runtime hands the node's GPUs to a container (podman: through CDI).
GPU_FLAGS = {"podman": ["--device", "nvidia.com/gpu=all"], "docker": ["--gpus", "all"]}


class SqueueError(RuntimeError):
    pass


def _time_limit(seconds: int) -> str:
    minutes = max(1, (seconds + 59) // 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


@dataclass(frozen=True)
class SlurmOptions:
    parallelism: int = 1  # tasks of one array running at once (%N): 1 keeps cells apart
    time_limit_s: int = 3600  # --time for each task
    partition: str | None = None  # --partition for every array (None: the cluster's default)
    partition_per_instance: bool = False  # partition <partition_prefix><type, '.' -> '-'>
    partition_prefix: str = ""
    log_dir: str = "slurm-logs"  # per-task logs, <log_dir>/<sweep_id>/ (shared by the nodes)
    python: str | None = None  # interpreter on the nodes (None: this one)
    sbatch_args: tuple[str, ...] = ()  # extra #SBATCH directives, e.g. ["--account=ml"]
    image: str | None = None  # run each cell inside this image (bench's containers/)
    container_runtime: str = "podman"  # podman or docker: what runs `image` on the nodes
    container_args: tuple[str, ...] = ()  # extra `podman run` arguments
    poll_s: float = 5.0  # seconds between squeue polls when wait=true


def container_command(options: SlurmOptions, store: Store, gpus: int) -> list[str]:
    """`podman run ... IMAGE` for `executor.image`, to which the cell's arguments are appended
    (the image's entry point is `python -m bench cell`); [] when no image is set. A local
    store is mounted at its own path and written as the submitting user, so its files stay
    theirs."""
    image = options.image
    if not image:
        return []
    runtime = options.container_runtime or "podman"
    if runtime not in GPU_FLAGS:
        allowed = " or ".join(GPU_FLAGS)
        raise ConfigError("executor.container_runtime", runtime, f"use {allowed}")
    argv = [runtime, "run", "--rm", "--network", "host", "--env", f"BENCH_IMAGE={image}"]
    argv += [arg for name in CONTAINER_ENV for arg in ("--env", name)]
    if isinstance(store, LocalStore):
        argv += ["--volume", f"{store.root}:{store.root}", "--user", f"{os.getuid()}:{os.getgid()}"]
        argv += ["--env", "HOME=/tmp"]  # that user has no home in the image
    if gpus:
        argv += GPU_FLAGS[runtime]
    return [*argv, *options.container_args, image]


def render_script(
    *,
    name: str,
    size: int,
    parallelism: int,
    gpus: int,
    time_limit_s: int,
    log_dir: Path,
    manifest_uri: str,
    array: str,
    partition: str | None = None,
    python: str = sys.executable,
    extra: list[str] | None = None,
    container: list[str] | None = None,
) -> str:
    """The sbatch script for one array job of `size` cells."""
    directives = [
        f"--job-name={name}",
        f"--array=0-{size - 1}%{parallelism}",
        f"--output={log_dir}/%x-%A_%a.log",
        f"--time={_time_limit(time_limit_s)}",
        "--ntasks=1",
        "--exclusive" if gpus else "--cpus-per-task=1",
    ]
    if gpus:
        directives.append(f"--gres=gpu:{gpus}")
    if partition:
        directives.append(f"--partition={partition}")
    directives += extra or []
    cell = container or [python, "-m", "bench", "cell"]
    command = [*cell, "--manifest", manifest_uri, "--array", array]
    lines = ["#!/bin/bash", *(f"#SBATCH {d}" for d in directives), ""]
    lines += ["set -euo pipefail", f"exec {shlex.join(command)}", ""]
    return "\n".join(lines)


class SlurmExecutor(Executor):
    name = "slurm"
    # UNKNOWN too: when squeue cannot answer, submitting the same cells again risks paying twice
    active_states = ("ACTIVE", "UNKNOWN")
    Options = SlurmOptions
    environment = SlurmEnvironment
    options: SlurmOptions

    @property
    def attempt_limit_s(self) -> float:
        return float(self.options.time_limit_s)

    @classmethod
    def validate(cls, options: SlurmOptions) -> None:
        int_at_least("executor.parallelism", options.parallelism, 1)
        int_at_least("executor.time_limit_s", options.time_limit_s, 1)
        positive("executor.poll_s", options.poll_s)

    def _sbatch(self, script: str, script_path: Path) -> str:
        script_path.write_text(script)
        proc = subprocess.run(
            ["sbatch", "--parsable", str(script_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"sbatch failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout.strip().split(";")[0]  # "jobid" or "jobid;cluster"

    def submit(
        self,
        plan: Plan,
        store: Store,
        indices: list[int],
        progress: ProgressFn | None = None,
    ) -> list[JobHandle]:
        self.check_ready(plan, store)
        log_dir = Path(self.options.log_dir or "slurm-logs").expanduser().absolute()
        log_dir = log_dir / plan.sweep_id
        log_dir.mkdir(parents=True, exist_ok=True)
        manifest = store.uri(SweepPaths(plan.sweep_id).manifest)
        self.submissions = []
        for instance_type, group in group_by_instance(plan, indices).items():
            instance = plan.cells[group[0]].instance
            gpus = max(plan.cells[i].tp_degree for i in group) if instance.gpus else 0
            # Unique per submission, so a re-submission never rewrites a running array's map.
            name = f"{plan.sweep_id}-{instance_type}-{uuid.uuid4().hex[:6]}".replace("/", "-")
            write_array_map(store, plan.sweep_id, name, group)
            partition = self.options.partition
            if self.options.partition_per_instance:
                partition = instance_queue(self.options.partition_prefix, instance_type)
            script = render_script(
                name=name,
                size=len(group),
                parallelism=self.options.parallelism,
                gpus=gpus,
                time_limit_s=self.options.time_limit_s,
                log_dir=log_dir,
                manifest_uri=manifest,
                array=name,
                partition=partition,
                python=self.options.python or sys.executable,
                extra=list(self.options.sbatch_args),
                container=container_command(self.options, store, gpus),
            )
            sub = Submission(self.name, "", name, instance_type, group, array=name, queue=partition)
            journal_submission(store, plan.sweep_id, sub)  # before: a lost answer is on record
            sub.job_id = self._sbatch(script, log_dir / f"{name}.sbatch")
            journal_submission(store, plan.sweep_id, sub)
            self.submissions.append(sub)
        return handles_for(plan, self.submissions)

    def check_ready(self, plan: Plan, store: Store) -> None:
        if shutil.which("sbatch") is None:
            raise ConfigError("executor", "slurm", "needs sbatch on PATH (a Slurm client)")
        container_command(self.options, store, 0)  # a bad container_runtime: before any write

    @staticmethod
    def _squeue(job_ids: list[str]) -> dict[str, dict[str, int]]:
        """State counts of the queued/running tasks of each job (absent once all are done)."""
        proc = subprocess.run(
            ["squeue", "--noheader", "--array", "--format=%F %T", f"--jobs={','.join(job_ids)}"],
            capture_output=True,
            text=True,
            check=False,
        )
        # squeue exits 1 both when the controller is unreachable and when asked about a job it
        # has forgotten (which means that job is finished): only the first is an error.
        if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
            raise SqueueError(f"squeue failed ({proc.returncode}): {proc.stderr.strip()}")
        counts: dict[str, dict[str, int]] = {}
        for line in proc.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2:
                job, state = parts
                counts.setdefault(job, {}).setdefault(state, 0)
                counts[job][state] += 1
        return counts

    def describe(self, submissions: list[Submission]) -> list[dict[str, Any]]:
        """squeue's view: ACTIVE with task counts per state, DONE once no task is queued or
        running, UNKNOWN (with squeue's error) when squeue cannot answer."""
        if not submissions:
            return []
        try:
            if shutil.which("squeue") is None:
                raise SqueueError("squeue is not on PATH")
            ids = [s.job_id for s in submissions if s.job_id]
            queued, error = (self._squeue(ids) if ids else {}), ""
        except SqueueError as exc:
            queued, error = None, str(exc)
        states = []
        for sub in submissions:
            children = (queued or {}).get(sub.job_id, {})
            status = "UNKNOWN" if queued is None else ("ACTIVE" if children else "DONE")
            states.append(sub.state(status, children, error))
        return states

    def wait(self, submissions: list[Submission], poll_s: float) -> None:
        """Poll squeue until every job is DONE; give up after repeated squeue failures."""
        failures = 0
        while True:
            states = self.describe(submissions)
            if all(s["status"] == "DONE" for s in states):
                return
            unknown = [s for s in states if s["status"] == "UNKNOWN"]
            failures = failures + 1 if unknown else 0
            if failures >= SQUEUE_FAILURES_BEFORE_GIVING_UP:
                raise SqueueError(unknown[0]["reason"])
            time.sleep(poll_s)  # blocking sleep between polls; nothing spins
