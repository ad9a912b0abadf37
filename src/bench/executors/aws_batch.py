"""executor=aws_batch: one AWS Batch array job per instance type (and image), each child one
cell.

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
- SubmitJob is never retried by botocore: a retried call whose answer was lost lands a second
  array that nothing tracks. bench tries up to SUBMIT_TRIES times itself, each try under a job
  name of its own (the array's unique name plus the try's number), and before each retry,
  and before a re-run submits cells whose journal says UNCONFIRMED, lists what landed under
  those names (ListJobs, JOB_NAME filter) and adopts it instead.
- Images: `image` for every cell, or `images.ENGINE` for one engine's cells (vLLM's image
  for `vllm` and for `http` cells that serve vLLM in the same container); cells of one
  instance type are split into one array per image.
- /dev/shm is a quarter of the job's memory (`shared_memory_mib` to set it): served models,
  vLLM's engine processes and tensor-parallel ranks share tensors through it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench.config.checks import ConfigError, UsageError, int_at_least, positive
from bench.config.schema import CellConfig, InstanceSpec
from bench.executors.base import (
    UNCONFIRMED,
    Executor,
    JobHandle,
    ProgressFn,
    Submission,
    SubmissionFailed,
    group_by_instance,
    handles_for,
    instance_queue,
    journal_submission,
)
from bench.executors.environment import AwsBatchEnvironment
from bench.executors.job import write_array_map
from bench.plan.manifest import Plan
from bench.store import Store, SweepPaths

MAX_ARRAY_SIZE = 10_000
MEMORY_SHARE = 0.9  # of the instance's RAM; the rest is the OS's and the ECS agent's
SHM_SHARE = 4  # /dev/shm: a quarter of the job's memory unless shared_memory_mib says
DONE_STATES = ("SUCCEEDED", "FAILED")
ACTIVE_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
NAMES_PER_CALL = 100  # DescribeJobQueues and DescribeComputeEnvironments take at most this many
SUBMIT_TRIES = 3  # bench's own tries of one SubmitJob (botocore's retries are off for it)
SUBMIT_BACKOFF_S = 2.0  # after a failed try, before the lookup (doubling): Batch lists it by then
NAME_STEM_CHARS = 118  # + "-" + 6 hex (the array's name) + "-" + try number <= Batch's 128
THROTTLED = ("TooManyRequestsException", "ThrottlingException", "Throttling")


def _aws_error(exc: Exception) -> str:
    """One line for a boto error: the service's code and message when it answered; else the
    exception itself (a dropped connection or a timeout has `response=None`, or none)."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    if error:
        return f"{error.get('Code', '')}: {error.get('Message', '')}".strip(": ")
    return f"{type(exc).__name__}: {exc}"


def _credentials_missing() -> list[str]:
    """What boto3 would not find here: AWS credentials, a region (empty: it finds both)."""
    import boto3

    session = boto3.Session()
    gaps = []
    if session.get_credentials() is None:
        gaps.append(
            "AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or an "
            "instance role: none found)"
        )
    if not session.region_name:
        # boto3 reads AWS_DEFAULT_REGION (AWS_REGION alone leaves its clients without one)
        gaps.append("a region (AWS_DEFAULT_REGION, or the profile's region)")
    return gaps


def _may_retry(exc: Exception) -> bool:
    """Whether a failed SubmitJob may be tried again: no answer came (a dropped connection, a
    timeout), or Batch was throttling or failing (5xx). A refusal (4xx) is an answer: final."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(exc, (ConnectionError, HTTPClientError)):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = exc.response.get("Error", {}).get("Code")
        return status >= 500 or status == 429 or code in THROTTLED
    return False


def _job_name(array: str, attempt: int) -> str:
    """The Batch job name of try `attempt` of the array named `array`: unique per try, so a
    lookup can tell what each try left behind."""
    return f"{array}-{attempt}"


RETRY_ON_EXIT = [
    {"onStatusReason": "Host EC2*", "action": "RETRY"},  # Spot reclaim, host failure
    {"onReason": "*", "action": "EXIT"},
]


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)[:128]


def _chunks(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i : i + size] for i in range(0, len(indices), size)]


@dataclass(frozen=True)
class AwsBatchOptions:
    image: str | None = None  # container image URI (ECR)
    images: dict[str, str | None] | None = None  # an engine's own image (null: `image`)
    shared_memory_mib: int | None = None  # /dev/shm per job; None = a quarter of its memory
    job_role_arn: str | None = None  # role the cells run as (jobs/batch.yaml JobRoleArn)
    execution_role_arn: str | None = None  # role ECS pulls the image with
    queue_prefix: str = "bench-"
    job_definition_prefix: str = "bench"
    attempts: int = 3  # tries per child; only host/Spot terminations are retried
    attempt_duration_s: int = 3600  # Batch kills an attempt running longer than this
    poll_s: float = 30.0  # seconds between status polls when wait=true


class AwsBatchExecutor(Executor):
    name = "aws_batch"
    active_states = ACTIVE_STATES
    Options = AwsBatchOptions
    environment = AwsBatchEnvironment
    options: AwsBatchOptions

    @classmethod
    def validate(cls, options: AwsBatchOptions) -> None:
        int_at_least("executor.attempts", options.attempts, 1)
        # AWS Batch refuses attempt timeouts under a minute
        int_at_least("executor.attempt_duration_s", options.attempt_duration_s, 60)
        positive("executor.poll_s", options.poll_s)
        if options.shared_memory_mib is not None:
            int_at_least("executor.shared_memory_mib", options.shared_memory_mib, 64)

    def __init__(self, options: dict[str, Any], client: Any | None = None) -> None:
        super().__init__(options)
        self._client = client
        self._submit_client: Any | None = None
        self.adopted: list[Submission] = []  # UNCONFIRMED journal entries a lookup resolved

    @property
    def attempt_limit_s(self) -> float:
        return float(self.options.attempt_duration_s)

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("batch")
        return self._client

    @property
    def submit_client(self) -> Any:
        """The client SubmitJob goes through: botocore's retries off (total_max_attempts=1;
        `max_attempts` counts retries, so max_attempts=1 would still try twice). A client
        handed in is used as it is."""
        if self._client is not None:
            return self._client
        if self._submit_client is None:
            import boto3
            from botocore.config import Config

            config = Config(retries={"total_max_attempts": 1})
            self._submit_client = boto3.client("batch", config=config)
        return self._submit_client

    def image_for(self, cell: CellConfig) -> str:
        """The image a cell runs in: its engine's entry in `images` (vLLM, served vLLM: an
        image whose environment has that engine's libraries), else `image`."""
        images = self.options.images or {}
        return str(images.get(cell.engine.name) or self.options.image or "")

    def container_properties(
        self, instance: InstanceSpec, gpus: int, image: str | None = None
    ) -> dict[str, Any]:
        image = image or self.options.image
        vcpus = max(1, instance.vcpus - 1)
        memory_mib = int(instance.memory_gib * 1024 * MEMORY_SHARE)
        requirements = [
            {"type": "VCPU", "value": str(vcpus)},
            {"type": "MEMORY", "value": str(memory_mib)},
        ]
        if gpus:
            requirements.append({"type": "GPU", "value": str(gpus)})
        shm = self.options.shared_memory_mib
        props: dict[str, Any] = {
            "image": image,
            "command": ["--manifest", "Ref::manifest", "--array", "Ref::array"],
            "resourceRequirements": requirements,
            # /dev/shm: Docker's default is 64 MiB; vLLM's engine processes, a served model's
            # workers and tensor-parallel ranks pass tensors through it (vLLM asks for --ipc=host
            # or a large --shm-size). It is memory of the job's own (tmpfs).
            "linuxParameters": {
                "sharedMemorySize": int(shm) if shm else max(64, memory_mib // SHM_SHARE)
            },
            # BENCH_IMAGE (and its digest when the URI pins one): rows record the image they
            # ran in (bench.measure.host_facts.host_facts).
            "environment": [
                {"name": "PYTHONUNBUFFERED", "value": "1"},
                {"name": "BENCH_IMAGE", "value": image},
            ],
        }
        _, at, digest = image.partition("@")
        if at:
            props["environment"].append({"name": "BENCH_IMAGE_DIGEST", "value": digest})
        for key, field in (
            ("job_role_arn", "jobRoleArn"),
            ("execution_role_arn", "executionRoleArn"),
        ):
            if value := getattr(self.options, key):
                props[field] = value
        return props

    def job_definition(self, instance: InstanceSpec, gpus: int, image: str | None = None) -> str:
        """Name of an ACTIVE job definition with this shape and image, registering it if
        needed."""
        body = {
            "type": "container",
            "containerProperties": self.container_properties(instance, gpus, image),
            "retryStrategy": {
                "attempts": self.options.attempts,
                "evaluateOnExit": RETRY_ON_EXIT,
            },
            "timeout": {"attemptDurationSeconds": self.options.attempt_duration_s},
            "parameters": {"manifest": "", "array": ""},
            "propagateTags": True,
        }
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
        name = f"{self.options.job_definition_prefix}-{digest}"
        from botocore.exceptions import BotoCoreError, ClientError

        try:  # both idempotent: botocore's retries stay on for them
            found = self.client.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")
            if not found.get("jobDefinitions"):
                self.client.register_job_definition(jobDefinitionName=name, **body)
        except (ClientError, BotoCoreError) as exc:
            raise SubmissionFailed(
                f"cannot register job definition {name} ({_aws_error(exc)}); the arrays "
                f"submitted before it are recorded: run the same sweep again to submit the rest"
            ) from exc
        return name

    def _submit_group(
        self, plan: Plan, store: Store, instance: InstanceSpec, indices: list[int]
    ) -> list[Submission]:
        gpus = max(plan.cells[i].tp_degree for i in indices) if instance.gpus else 0
        definition = self.job_definition(instance, gpus, self.image_for(plan.cells[indices[0]]))
        queue = instance_queue(self.options.queue_prefix, instance.type)
        manifest = store.uri(SweepPaths(plan.sweep_id).manifest)
        submissions = []
        for part, chunk in enumerate(_chunks(indices, MAX_ARRAY_SIZE)):
            # Unique per submission: a later re-submission of the sweep's pending cells must not
            # rewrite the array map that children of a still-running array are reading. The
            # token comes after the cut, so a long sweep id cannot cut it off.
            stem = _safe_name(f"{plan.sweep_id}-{instance.type}-{part}")[:NAME_STEM_CHARS]
            name = f"{stem}-{uuid.uuid4().hex[:6]}"
            write_array_map(store, plan.sweep_id, name, chunk)
            request: dict[str, Any] = {  # jobName: per try (_submit_job)
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
            sub = Submission(self.name, "", name, instance.type, chunk, array=name, queue=queue)
            journal_submission(store, plan.sweep_id, sub)  # before: a lost answer is on record
            sub.job_id = self._submit_job(request, len(self.submissions) + len(submissions))
            journal_submission(store, plan.sweep_id, sub)
            submissions.append(sub)
        return submissions

    def _submit_job(self, request: dict[str, Any], submitted_before: int) -> str:
        """The id of the job `request` (an array named by its `array` parameter) became. Each
        try has a job name of its own; after a try that got no answer, what landed is looked
        up before anything is sent again, and adopted."""
        from botocore.exceptions import BotoCoreError, ClientError

        array, queue = request["parameters"]["array"], request["jobQueue"]
        for attempt in range(1, SUBMIT_TRIES + 1):
            try:
                job = {**request, "jobName": _job_name(array, attempt)}
                return str(self.submit_client.submit_job(**job)["jobId"])
            except (ClientError, BotoCoreError) as exc:
                if not _may_retry(exc):
                    raise self._submit_failed(array, queue, exc, submitted_before) from exc
                error = exc
            time.sleep(SUBMIT_BACKOFF_S * 2 ** (attempt - 1))  # a blocking wait; nothing spins
            if (landed := self._look_up(array, queue, error)) is not None:
                return landed
        raise self._submit_failed(array, queue, error, submitted_before)

    @staticmethod
    def _submit_failed(
        array: str, queue: str, exc: Exception, submitted_before: int
    ) -> SubmissionFailed:
        return SubmissionFailed(
            f"submitting {array} to queue {queue} failed ({_aws_error(exc)}); the "
            f"{submitted_before} arrays submitted before it are recorded: see `bench status`, "
            "and run the same sweep again to submit the rest"
        )

    def _look_up(self, array: str, queue: str, error: Exception) -> str | None:
        """_landed, after a try that got no answer; a lookup that fails too leaves the
        submission journaled UNCONFIRMED: sending it again could run it twice."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._landed(array, queue)
        except (ClientError, BotoCoreError) as exc:
            raise SubmissionFailed(
                f"submitting {array} to queue {queue} got no answer ({_aws_error(error)}) and "
                f"whether it landed cannot be looked up ({_aws_error(exc)}); it is journaled "
                f"{UNCONFIRMED}: run the same sweep again, which looks it up before submitting"
            ) from exc

    def _landed(self, array: str, queue: str) -> str | None:
        """The id of the job a try of array `array` left in `queue` (the oldest, should several
        have landed), or None. With a filter, ListJobs lists jobs in every status."""
        names = {array.lower()} | {  # the array's own name: journals from before per-try names
            _job_name(array, attempt).lower() for attempt in range(1, SUBMIT_TRIES + 1)
        }
        query: dict[str, Any] = {
            "jobQueue": queue,
            "filters": [{"name": "JOB_NAME", "values": [f"{array}*"]}],
        }
        found: list[dict[str, Any]] = []
        while True:
            page = self.client.list_jobs(**query)
            found += [j for j in page.get("jobSummaryList", []) if j["jobName"].lower() in names]
            if not page.get("nextToken"):
                break
            query["nextToken"] = page["nextToken"]
        if not found:
            return None
        return str(min(found, key=lambda job: job.get("createdAt", 0))["jobId"])

    def _adopt(self, sub: Submission) -> None:
        """Give a submission journaled UNCONFIRMED the id of the job it left in Batch, if one
        landed: so `status` follows it and a re-run does not submit its cells again."""
        from botocore.exceptions import BotoCoreError, ClientError

        if sub.job_id or not sub.queue:
            return
        try:
            sub.job_id = self._landed(sub.name, sub.queue) or ""
        except (ClientError, BotoCoreError) as exc:
            raise SubmissionFailed(
                f"cannot tell whether {sub.name}, journaled {UNCONFIRMED}, landed in queue "
                f"{sub.queue} ({_aws_error(exc)}); nothing was submitted: run it again once "
                "AWS Batch answers"
            ) from exc
        if sub.job_id:  # journaled with its id by the next submit (status writes nothing)
            self.adopted.append(sub)

    def submit(
        self,
        plan: Plan,
        store: Store,
        indices: list[int],
        progress: ProgressFn | None = None,
    ) -> list[JobHandle]:
        self.check_ready(plan, store)
        for sub in self.adopted:  # the journal says what the lookups found
            journal_submission(store, plan.sweep_id, sub)
        self.adopted = []
        self.submissions = []
        for group in group_by_instance(plan, indices).values():
            instance = plan.cells[group[0]].instance
            by_image: dict[str, list[int]] = {}  # an array's children share one definition
            for index in group:
                by_image.setdefault(self.image_for(plan.cells[index]), []).append(index)
            for same_image in by_image.values():
                self.submissions += self._submit_group(plan, store, instance, same_image)
        return handles_for(plan, self.submissions)

    def check_ready(self, plan: Plan, store: Store) -> None:
        """Everything the sweep needs from the user, said at once (one line, every missing
        setting), then the queues (which takes a call to Batch), before anything is written."""
        from bench.engines import ENGINES

        images = self.options.images or {}
        for engine, uri in images.items():
            if engine not in ENGINES or not (uri is None or (isinstance(uri, str) and uri)):
                raise ConfigError(
                    f"executor.images.{engine}",
                    uri,
                    "an engine name (" + ", ".join(ENGINES) + ") mapped to an image URI",
                )
        if missing := self.missing_settings(plan, store):
            raise UsageError(
                f"executor=aws_batch needs {len(missing)} more setting(s): " + "; ".join(missing)
            )
        self._check_queues(plan)

    def missing_settings(self, plan: Plan, store: Store) -> list[str]:
        """Each setting the sweep lacks, as `key: what to give` (empty: none)."""
        missing = []
        if lacking := sorted({c.engine.name for c in plan.cells if not self.image_for(c)}):
            missing.append(
                "executor.image=URI (the container image the cells run in; cells of engine "
                f"{', '.join(lacking)} have none; executor.images.ENGINE=URI gives one engine "
                "its own)"
            )
        if not store.uri("").startswith("s3://"):
            missing.append(
                f"store.root=s3://BUCKET/prefix (the containers write their rows there; "
                f"store.root is {plan.store_root})"
            )
        if self._client is None:  # a client handed in (tests, a caller's session) has its own
            missing += _credentials_missing()
        return missing

    def _describe(self, what: str, names: list[str]) -> list[dict[str, Any]]:
        """Batch's description of the named job queues or compute environments, a call per
        NAMES_PER_CALL; an API failure is one line."""
        from botocore.exceptions import BotoCoreError, ClientError

        call, argument, answer = {
            "job queues": (self.client.describe_job_queues, "jobQueues", "jobQueues"),
            "compute environments": (
                self.client.describe_compute_environments,
                "computeEnvironments",
                "computeEnvironments",
            ),
        }[what]
        found: list[dict[str, Any]] = []
        try:
            for start in range(0, len(names), NAMES_PER_CALL):
                found += call(**{argument: names[start : start + NAMES_PER_CALL]})[answer]
        except (ClientError, BotoCoreError) as exc:
            raise ConfigError(
                "executor", "aws_batch", f"cannot list AWS Batch {what} ({_aws_error(exc)})"
            ) from exc
        return found

    def _check_queues(self, plan: Plan) -> None:
        """Every instance type's queue exists and is enabled, before anything is written."""
        prefix = self.options.queue_prefix
        wanted = sorted({instance_queue(prefix, cell.instance.type) for cell in plan.cells})
        found = {q["jobQueueName"]: q for q in self._describe("job queues", wanted)}
        if missing := [q for q in wanted if q not in found]:
            raise ConfigError(
                "executor.queue_prefix",
                prefix,
                f"no job queue {missing[0]}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                + "; deploy jobs/batch.yaml for these instance types, or narrow grid.axes.instance",
            )
        if off := [q for q in wanted if found[q].get("state") != "ENABLED"]:
            raise ConfigError("executor.queue_prefix", prefix, f"job queue {off[0]} is not ENABLED")
        self._check_compute_environments(prefix, [found[q] for q in wanted])

    def _check_compute_environments(self, prefix: str, queues: list[dict[str, Any]]) -> None:
        """A queue whose compute environments are all disabled or invalid would hold its jobs
        RUNNABLE forever: refuse it now, naming the environment."""
        by_queue = {
            q["jobQueueName"]: [
                e["computeEnvironment"] for e in q.get("computeEnvironmentOrder", [])
            ]
            for q in queues
        }
        arns = sorted({arn for names in by_queue.values() for arn in names})
        usable = {
            key
            for env in self._describe("compute environments", arns)
            if env.get("state") == "ENABLED" and env.get("status", "VALID") == "VALID"
            for key in (env.get("computeEnvironmentArn"), env.get("computeEnvironmentName"))
        }
        for queue, names in by_queue.items():
            if not any(name in usable for name in names):
                raise ConfigError(
                    "executor.queue_prefix",
                    prefix,
                    f"job queue {queue} has no ENABLED, VALID compute environment "
                    f"({', '.join(n.rsplit('/', 1)[-1] for n in names) or 'none attached'})",
                )

    def describe(self, submissions: list[Submission]) -> list[dict[str, Any]]:
        """Batch's view of each submitted job: status and, for arrays, children per status."""
        for sub in submissions:
            self._adopt(sub)
        states = []
        for start in range(0, len(submissions), 100):  # describe_jobs takes 100 ids
            batch = submissions[start : start + 100]
            ids = [s.job_id for s in batch if s.job_id]
            by_id = {job["jobId"]: job for job in self._describe_jobs(ids)}
            for sub in batch:
                job = by_id.get(sub.job_id, {})
                summary = job.get("arrayProperties", {}).get("statusSummary", {})
                states.append(
                    sub.state(
                        job.get("status", "UNKNOWN") if sub.job_id else UNCONFIRMED,
                        {k: v for k, v in summary.items() if v},
                        job.get("statusReason", ""),
                    )
                )
        return states

    def _describe_jobs(self, ids: list[str]) -> list[dict[str, Any]]:
        """DescribeJobs of up to 100 ids; no answer is one line (SubmissionFailed), never
        botocore's exception."""
        from botocore.exceptions import BotoCoreError, ClientError

        if not ids:
            return []
        try:
            return list(self.client.describe_jobs(jobs=ids)["jobs"])
        except (ClientError, BotoCoreError) as exc:
            raise SubmissionFailed(
                f"cannot read the state of {len(ids)} AWS Batch jobs ({_aws_error(exc)}); "
                "the journaled submissions are unchanged: ask again once AWS Batch answers"
            ) from exc

    def wait(self, submissions: list[Submission], poll_s: float) -> None:
        """Block until every job has finished (polling Batch every poll_s seconds)."""
        while True:
            states = self.describe(submissions)
            if all(s["status"] in DONE_STATES for s in states):
                return
            time.sleep(poll_s)  # a blocking sleep between polls; nothing spins
