"""executor=aws_batch: one AWS Batch array job per instance type, each child one cell.

- The manifest is in the S3 store; a child needs only its URI, the array map name and
  AWS_BATCH_JOB_ARRAY_INDEX (which Batch sets): `python -m bench cell --manifest URI --array A`.
- Job definitions are registered per container shape (image, GPUs, vCPUs, memory, roles,
  timeout, retries) under a name derived from a hash of that shape, and reused when an ACTIVE
  revision with that name exists, so re-submitting registers nothing new.
- A cell asks for all of its instance's vCPUs (less one for the ECS agent) and most of its
  memory, so Batch never packs two cells onto one instance: a neighbour would skew the
  measurement. GPU = the GPUs the cell needs (its TP degree; none on CPU instances).
- Retries: host/Spot terminations are retried (`Host EC2*`), everything else exits (a failed
  cell already wrote its row; retrying it would only repeat the failure).
- Arrays hold at most 10,000 children; larger groups are split.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from typing import Any

from bench.config import ConfigError, InstanceSpec
from bench.executors.base import (
    Executor,
    JobHandle,
    ProgressFn,
    Submission,
    group_by_instance,
    handles_for,
)
from bench.job import write_array_map
from bench.plan import Plan
from bench.store import Store, SweepPaths

MAX_ARRAY_SIZE = 10_000
MEMORY_SHARE = 0.9  # of the instance's RAM; the rest is the OS's and the ECS agent's
DONE_STATES = ("SUCCEEDED", "FAILED")
RETRY_ON_EXIT = [
    {"onStatusReason": "Host EC2*", "action": "RETRY"},  # Spot reclaim, host failure
    {"onReason": "*", "action": "EXIT"},
]


def queue_name(prefix: str, instance_type: str) -> str:
    """Queue per instance type, as jobs/batch.yaml names them: bench-g5-xlarge."""
    return f"{prefix}{instance_type.replace('.', '-')}"


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)[:128]


def _chunks(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i : i + size] for i in range(0, len(indices), size)]


class AwsBatchExecutor(Executor):
    name = "aws_batch"

    def __init__(self, options: dict[str, Any], client: Any | None = None) -> None:
        super().__init__(options)
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("batch")
        return self._client

    def container_properties(self, instance: InstanceSpec, gpus: int) -> dict[str, Any]:
        vcpus = max(1, instance.vcpus - 1)
        memory_mib = int(instance.memory_gib * 1024 * MEMORY_SHARE)
        requirements = [
            {"type": "VCPU", "value": str(vcpus)},
            {"type": "MEMORY", "value": str(memory_mib)},
        ]
        if gpus:
            requirements.append({"type": "GPU", "value": str(gpus)})
        props: dict[str, Any] = {
            "image": self.options["image"],
            "command": ["--manifest", "Ref::manifest", "--array", "Ref::array"],
            "resourceRequirements": requirements,
            # BENCH_IMAGE: rows record the image they ran in (bench.environment.host_facts).
            "environment": [
                {"name": "PYTHONUNBUFFERED", "value": "1"},
                {"name": "BENCH_IMAGE", "value": self.options["image"]},
            ],
        }
        for key, field in (
            ("job_role_arn", "jobRoleArn"),
            ("execution_role_arn", "executionRoleArn"),
        ):
            if self.options.get(key):
                props[field] = self.options[key]
        return props

    def job_definition(self, instance: InstanceSpec, gpus: int) -> str:
        """Name of an ACTIVE job definition with this shape, registering it if needed."""
        body = {
            "type": "container",
            "containerProperties": self.container_properties(instance, gpus),
            "retryStrategy": {
                "attempts": int(self.options.get("attempts", 3)),
                "evaluateOnExit": RETRY_ON_EXIT,
            },
            "timeout": {
                "attemptDurationSeconds": int(self.options.get("attempt_duration_s", 3600))
            },
            "parameters": {"manifest": "", "array": ""},
            "propagateTags": True,
        }
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
        name = f"{self.options.get('job_definition_prefix', 'bench')}-{digest}"
        found = self.client.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")
        if not found.get("jobDefinitions"):
            self.client.register_job_definition(jobDefinitionName=name, **body)
        return name

    def _submit_group(
        self, plan: Plan, store: Store, instance: InstanceSpec, indices: list[int]
    ) -> list[Submission]:
        gpus = max(plan.cells[i].tp_degree for i in indices) if instance.gpus else 0
        definition = self.job_definition(instance, gpus)
        queue = queue_name(self.options.get("queue_prefix", "bench-"), instance.type)
        manifest = store.uri(SweepPaths(plan.sweep_id).manifest)
        submissions = []
        for part, chunk in enumerate(_chunks(indices, MAX_ARRAY_SIZE)):
            # Unique per submission: a later re-submission of the sweep's pending cells must not
            # rewrite the array map that children of a still-running array are reading.
            name = _safe_name(f"{plan.sweep_id}-{instance.type}-{part}-{uuid.uuid4().hex[:6]}")
            write_array_map(store, plan.sweep_id, name, chunk)
            request: dict[str, Any] = {
                "jobName": name,
                "jobQueue": queue,
                "jobDefinition": definition,
                "parameters": {"manifest": manifest, "array": name},
                "tags": {"bench:sweep": plan.sweep_id, "bench:instance": instance.type},
                "propagateTags": True,
            }
            if len(chunk) > 1:
                request["arrayProperties"] = {"size": len(chunk)}
            else:  # Batch arrays need >= 2 children: a lone cell gets its index directly
                request["containerOverrides"] = {
                    "command": ["--manifest", manifest, "--array", name, "--index", "0"]
                }
            job_id = self.client.submit_job(**request)["jobId"]
            submissions.append(
                Submission(self.name, job_id, name, instance.type, chunk, array=name, queue=queue)
            )
        return submissions

    def submit(
        self,
        plan: Plan,
        store: Store,
        indices: list[int],
        progress: ProgressFn | None = None,
    ) -> list[JobHandle]:
        self.check(plan, store)
        self.submissions = []
        for group in group_by_instance(plan, indices).values():
            instance = plan.cells[group[0]].instance
            self.submissions += self._submit_group(plan, store, instance, group)
        return handles_for(plan, self.submissions)

    def check(self, plan: Plan, store: Store) -> None:
        if not self.options.get("image"):
            raise ConfigError(
                "executor.image", self.options.get("image"), "set the container image URI to run"
            )
        if not store.uri("").startswith("s3://"):
            raise ConfigError(
                "store.root", plan.store_root, "executor=aws_batch needs s3://BUCKET/prefix"
            )

    def describe(self, submissions: list[Submission]) -> list[dict[str, Any]]:
        """Batch's view of each submitted job: status and, for arrays, children per status."""
        states = []
        for start in range(0, len(submissions), 100):  # describe_jobs takes 100 ids
            batch = submissions[start : start + 100]
            found = self.client.describe_jobs(jobs=[s.job_id for s in batch])["jobs"]
            by_id = {job["jobId"]: job for job in found}
            for sub in batch:
                job = by_id.get(sub.job_id, {})
                summary = job.get("arrayProperties", {}).get("statusSummary", {})
                states.append(
                    sub.state(
                        job.get("status", "UNKNOWN"),
                        {k: v for k, v in summary.items() if v},
                        job.get("statusReason", ""),
                    )
                )
        return states

    def wait(self, submissions: list[Submission], poll_s: float) -> None:
        """Block until every job has finished (polling Batch every poll_s seconds)."""
        while True:
            states = self.describe(submissions)
            if all(s["status"] in DONE_STATES for s in states):
                return
            time.sleep(poll_s)  # a blocking sleep between polls; nothing spins
