"""executor=aws_batch against moto's Batch and S3 servers on loopback: real submissions, then
the array children run here as local processes with AWS_BATCH_JOB_ARRAY_INDEX set."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pandas as pd
import pytest

from bench.executors.base import read_submissions
from bench.store import open_store
from tests.conftest import G5_TYPES

pytestmark = pytest.mark.aws

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench-hf:test"
CATALOG_VCPUS = {
    "g5.xlarge": 4,
    "g5.2xlarge": 8,
    "g5.4xlarge": 16,
    "g5.12xlarge": 48,
    "g5.24xlarge": 96,
    "g5.48xlarge": 192,
}


def _jobs(queue: str, sweep_id: str) -> list[dict]:
    """The array parents one sweep submitted to `queue` (the emulator's queues are shared by
    every test of the session)."""
    batch = boto3.client("batch")
    ids = [
        j["jobId"]
        for j in batch.list_jobs(jobQueue=queue, jobStatus="SUCCEEDED")["jobSummaryList"]
        if ":" not in j["jobId"]
    ]  # parents only; children are <id>:<i>
    jobs = batch.describe_jobs(jobs=ids)["jobs"] if ids else []
    return [job for job in jobs if job.get("tags", {}).get("bench:sweep") == sweep_id]


def test_bert_g5_submits_one_array_per_instance_type(bench_cli, s3_root, batch_queues) -> None:
    proc = bench_cli(
        "sweep",
        "+grid=bert_g5",
        "executor=aws_batch",
        f"executor.image={IMAGE}",
        "executor.job_role_arn=arn:aws:iam::123456789012:role/bench-job",
        f"store.root={s3_root}",
        "sweep_id=g5batch",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("submitted ") == 6
    batch = boto3.client("batch")
    for instance_type, queue in zip(G5_TYPES, batch_queues, strict=True):
        jobs = _jobs(queue, "g5batch")
        assert len(jobs) == 1, queue
        job = jobs[0]
        assert job["arrayProperties"]["size"] == 40  # 2 precisions x 5 batch sizes x 4 threads
        assert job["parameters"]["manifest"] == f"{s3_root}/g5batch/manifest.json"
        assert job["tags"]["bench:sweep"] == "g5batch"
        definition = batch.describe_job_definitions(jobDefinitions=[job["jobDefinition"]])[
            "jobDefinitions"
        ][0]
        needs = {
            r["type"]: r["value"] for r in definition["containerProperties"]["resourceRequirements"]
        }
        assert needs["GPU"] == "1"
        assert needs["VCPU"] == str(CATALOG_VCPUS[instance_type] - 1)
        assert definition["containerProperties"]["image"] == IMAGE
        assert definition["containerProperties"]["jobRoleArn"].endswith("role/bench-job")
        retry = definition["retryStrategy"]
        assert retry["attempts"] == 3
        assert [e["action"].upper() for e in retry["evaluateOnExit"]] == ["RETRY", "EXIT"]
        assert retry["evaluateOnExit"][0]["onStatusReason"] == "Host EC2*"
        assert definition["timeout"]["attemptDurationSeconds"] == 3600

    status = bench_cli("status", "g5batch", f"store.root={s3_root}")
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("SUCCEEDED") >= 6
    assert "240 cells" in status.stdout and "pending (no row yet) 240" in status.stdout

    # Submitting again reuses the job definitions (same shape -> same name, one revision).
    again = bench_cli(
        "sweep",
        "+grid=bert_g5",
        "executor=aws_batch",
        f"executor.image={IMAGE}",
        "executor.job_role_arn=arn:aws:iam::123456789012:role/bench-job",
        f"store.root={s3_root}",
        "sweep_id=g5batch",
    )
    assert again.returncode == 0
    definitions = batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]
    revisions = [d["revision"] for d in definitions if d["jobDefinitionName"].startswith("bench-")]
    assert revisions and max(revisions) == 1


def test_children_run_locally_and_collect_finds_every_cell(bench_cli, s3_root, batch_queues):
    # Cheap cells on three instance types: the null engine, so children start in about a second.
    proc = bench_cli(
        "sweep",
        "engine=null",
        "grid.axes.instance=[g5.xlarge,g5.2xlarge,g5.4xlarge]",
        "grid.axes.threads=[1,2]",
        "scenario.min_requests=5",
        "scenario.min_duration_s=0.1",
        "scenario.ci_target=0",
        "executor=aws_batch",
        f"executor.image={IMAGE}",
        f"store.root={s3_root}",
        "sweep_id=children",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = open_store(s3_root)
    submissions = read_submissions(store, "children")
    assert sorted(len(s.indices) for s in submissions) == [2, 2, 2]
    manifest = f"{s3_root}/children/manifest.json"
    for sub in submissions:
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench",
                    "cell",
                    "--manifest",
                    manifest,
                    "--array",
                    sub.array,
                ],
                env={**os.environ, "AWS_BATCH_JOB_ARRAY_INDEX": str(i)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for i in range(len(sub.indices))
        ]
        errors = [c.communicate(timeout=120)[1] for c in children]
        assert [c.returncode for c in children] == [0] * len(children), errors
    collected = bench_cli("collect", "children", f"store.root={s3_root}")
    assert collected.returncode == 0, collected.stderr
    frame = pd.read_parquet(f"{s3_root}/children/aggregated.parquet")
    assert len(frame) == 6 and (frame["status"] == "ok").all()
    assert sorted(frame["instance"].unique()) == ["g5.2xlarge", "g5.4xlarge", "g5.xlarge"]


def test_bad_executor_input_is_one_line_and_nothing_written(bench_cli, s3_root, tmp_path):
    no_image = bench_cli("sweep", "engine=null", "executor=aws_batch", f"store.root={s3_root}")
    assert no_image.returncode == 2 and "executor.image" in no_image.stderr
    local = bench_cli("sweep", "engine=null", "executor=aws_batch", f"executor.image={IMAGE}")
    assert local.returncode == 2 and "s3://" in local.stderr
    assert not (tmp_path / "results").exists()
    keys = boto3.client("s3").list_objects_v2(Bucket=s3_root.split("/")[2]).get("KeyCount", 0)
    assert keys == 0


class StillQueued:
    """The real (emulator) Batch client, except that every job reads RUNNABLE: moto's simple
    Batch finishes each job the moment it is submitted, where real ones wait while their
    instances start. Everything else (submissions, definitions, queues) is the emulator's."""

    def __init__(self, client) -> None:
        self.client = client

    def __getattr__(self, name: str):
        return getattr(self.client, name)

    def describe_jobs(self, jobs: list[str]) -> dict:
        found = self.client.describe_jobs(jobs=jobs)
        return {"jobs": [{**job, "status": "RUNNABLE"} for job in found["jobs"]]}


@pytest.fixture
def jobs_held_pending(monkeypatch):
    from bench.executors.aws_batch import AwsBatchExecutor

    real = boto3.client("batch")
    monkeypatch.setattr(AwsBatchExecutor, "client", property(lambda self: StillQueued(real)))


NULL_SWEEP = [
    "sweep",
    "engine=null",
    "grid.axes.instance=[g5.xlarge,g5.2xlarge,g5.4xlarge]",
    "grid.axes.threads=[1,2]",
    "executor=aws_batch",
    f"executor.image={IMAGE}",
]


def _parents(queues: list[str], sweep_id: str) -> list[str]:
    """The sweep's array jobs in any state (the queues are shared by the module's tests)."""
    batch = boto3.client("batch")
    return [
        j["jobId"]
        for q in queues
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "RUNNING", "SUCCEEDED", "FAILED")
        for j in batch.list_jobs(jobQueue=q, jobStatus=status)["jobSummaryList"]
        if ":" not in j["jobId"] and j["jobName"].startswith(f"{sweep_id}-")
    ]


def test_submitting_twice_leaves_queued_cells_to_the_first_submission(
    s3_root, batch_queues, jobs_held_pending, capsys
):
    from bench.plan.grid import plan_from_overrides
    from bench.sweep import run_sweep

    def sweep(*extra: str) -> tuple[str, int]:
        run_sweep(plan_from_overrides([*NULL_SWEEP[1:], f"store.root={s3_root}", *extra]))
        err = capsys.readouterr().err
        return err, sum(line.startswith("submitted ") for line in err.splitlines())

    _, submitted = sweep("sweep_id=twice")
    arrays = _parents(batch_queues, "twice")
    assert len(arrays) == 3 and submitted == 3
    again, submitted = sweep("sweep_id=twice")
    assert "6 cells are in submissions still queued or running" in again
    assert submitted == 0
    assert sorted(_parents(batch_queues, "twice")) == sorted(arrays)  # no duplicate array
    assert sweep("sweep_id=twice", "force=true")[1] == 3


def test_a_missing_queue_is_one_line_and_nothing_is_written(bench_cli, s3_root, batch_queues):
    proc = bench_cli(
        *NULL_SWEEP[:2], "grid.axes.instance=[g5.xlarge,p4d.24xlarge]", *NULL_SWEEP[3:],
        f"store.root={s3_root}",
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no job queue bench-p4d-24xlarge" in lines[0], proc.stderr
    keys = boto3.client("s3").list_objects_v2(Bucket=s3_root.split("/")[2]).get("KeyCount", 0)
    assert keys == 0


def test_a_queue_without_a_usable_compute_environment_is_refused(bench_cli, s3_root, batch_queues):
    batch = boto3.client("batch")
    batch.update_compute_environment(computeEnvironment="bench-ce-g5-xlarge", state="DISABLED")
    try:
        proc = bench_cli(
            *NULL_SWEEP[:2], "grid.axes.instance=[g5.xlarge]", *NULL_SWEEP[3:],
            f"store.root={s3_root}",
        )  # fmt: skip
    finally:
        batch.update_compute_environment(computeEnvironment="bench-ce-g5-xlarge", state="ENABLED")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert (
        "bench-g5-xlarge has no ENABLED, VALID compute environment (bench-ce-g5-xlarge)"
        in (lines[0])
    )
    keys = boto3.client("s3").list_objects_v2(Bucket=s3_root.split("/")[2]).get("KeyCount", 0)
    assert keys == 0


def test_a_failure_part_way_leaves_the_submitted_arrays_on_record(
    bench_cli, s3_root, batch_queues, monkeypatch
):
    # The queue check passes, then one queue is gone by the time its array is submitted (as
    # when someone tears a stack down mid-sweep): the arrays before it are running.
    from bench.executors.aws_batch import AwsBatchExecutor
    from bench.plan.grid import plan_from_overrides
    from bench.sweep import run_sweep

    plan = plan_from_overrides([*NULL_SWEEP[1:], f"store.root={s3_root}", "sweep_id=partway"])
    submit = AwsBatchExecutor._submit_job

    def queue_gone(self, request, submitted_before):
        if request["jobQueue"] == "bench-g5-4xlarge":
            request = {**request, "jobQueue": "bench-torn-down"}
        return submit(self, request, submitted_before)

    from bench.executors.base import SubmissionFailed

    with monkeypatch.context() as patched:  # only this; the store's environment stays
        patched.setattr(AwsBatchExecutor, "_submit_job", queue_gone)
        with pytest.raises(SubmissionFailed, match="the 2 arrays submitted before it are recorded"):
            run_sweep(plan)
    status = bench_cli("status", "partway", f"store.root={s3_root}")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert sum("SUCCEEDED" in line for line in lines) == 2, status.stdout  # moto: done at once
    assert sum("UNCONFIRMED" in line and "g5.4xlarge" in line for line in lines) == 1
