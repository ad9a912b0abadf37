"""AWS Batch submission details, against a recording fake client (the emulator tests cover
the real API; these cover the edges: lone cells, array splitting, definition reuse)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.executors.aws_batch import MAX_ARRAY_SIZE, AwsBatchExecutor, _aws_error, _chunks
from bench.plan.grid import plan_from_overrides
from bench.store import LocalStore
from tests.support.fake_batch import FakeBatch


def test_arrays_split_at_the_batch_limit():
    sizes = [len(c) for c in _chunks(list(range(2 * MAX_ARRAY_SIZE + 1)), MAX_ARRAY_SIZE)]
    assert sizes == [MAX_ARRAY_SIZE, MAX_ARRAY_SIZE, 1]


def test_lone_cell_is_a_plain_job_and_definitions_are_reused(tmp_path):
    plan = plan_from_overrides(
        [
            "engine=null",
            "grid.axes.instance=[g5.xlarge,g5.2xlarge]",
            "grid.axes.threads=[1,2]",
            "instance=g5.xlarge",
            "sweep_id=t",
        ]
    )
    store = LocalStore(str(tmp_path))
    client = FakeBatch()
    executor = AwsBatchExecutor({"image": "img:1", "queue_prefix": "bench-"}, client=client)
    instance = plan.cells[0].instance
    subs = executor._submit_group(plan, store, instance, [0])
    lone = client.submitted[-1]
    assert "arrayProperties" not in lone
    assert lone["containerOverrides"]["command"][-2:] == ["--index", "0"]
    assert lone["jobQueue"] == "bench-g5-xlarge"
    second = executor._submit_group(plan, store, instance, [0, 1])
    assert client.submitted[-1]["arrayProperties"] == {"size": 2}
    assert second[0].name != subs[0].name  # each submission has its own array map
    assert len(client.registered) == 1  # same shape: one definition, reused
    props = client.registered[0]["containerProperties"]
    assert props["command"] == ["--manifest", "Ref::manifest", "--array", "Ref::array"]
    needs = {r["type"]: r["value"] for r in props["resourceRequirements"]}
    assert needs == {"VCPU": "3", "MEMORY": str(int(16 * 1024 * 0.9)), "GPU": "1"}
    array = json.loads((tmp_path / "t" / "arrays" / f"{subs[0].name}.json").read_text())
    assert array == {"indices": [0]}


def test_an_engine_with_its_own_image_gets_its_own_array_and_definition(tmp_path):
    """vLLM cells (in-process and served) run in the vLLM image, the rest in `image`; every
    definition gives /dev/shm a quarter of the job's memory (served models and TP ranks)."""
    plan = plan_from_overrides(
        [
            "grid.axes.engine=[hf,sleep]",
            "grid.axes.instance=[g5.xlarge]",
            "grid.axes.threads=[1,2]",
            "sweep_id=t",
        ]
    )
    client = FakeBatch()
    executor = AwsBatchExecutor(
        {"image": "hf:1", "images": {"sleep": "vllm:1"}, "queue_prefix": "bench-"}, client=client
    )
    executor.check_ready = lambda plan, store: None  # type: ignore[method-assign]  # no S3, no queues
    executor.submit(plan, LocalStore(str(tmp_path)), list(range(len(plan.cells))))
    images = {d["containerProperties"]["image"] for d in client.registered}
    assert images == {"hf:1", "vllm:1"}
    assert len(client.submitted) == 2  # one array per image on the one instance type
    for definition in client.registered:
        props = definition["containerProperties"]
        memory = int(
            next(r["value"] for r in props["resourceRequirements"] if r["type"] == "MEMORY")
        )
        assert props["linuxParameters"]["sharedMemorySize"] == memory // 4
    by_image = {
        d["jobDefinitionName"]: d["containerProperties"]["image"] for d in client.registered
    }
    for request in client.submitted:
        array = request["parameters"]["array"]
        maps = json.loads((tmp_path / "t" / "arrays" / f"{array}.json").read_text())["indices"]
        engines = {plan.cells[i].engine.name for i in maps}
        assert engines == ({"sleep"} if by_image[request["jobDefinition"]] == "vllm:1" else {"hf"})


def test_a_cell_without_an_image_and_a_bad_images_entry_are_one_line_errors(tmp_path):
    from bench.config.checks import ConfigError, UsageError

    plan = plan_from_overrides(["engine=sleep", "instance=g5.xlarge", "sweep_id=t"])
    store = LocalStore(str(tmp_path))
    with pytest.raises(UsageError, match=r"executor\.image.*engine sleep"):
        AwsBatchExecutor({"images": {"null": "x:1"}}, client=FakeBatch()).check_ready(plan, store)
    with pytest.raises(ConfigError, match=r"executor\.images\.vlm"):
        AwsBatchExecutor(
            {"image": "x:1", "images": {"vlm": "y:1"}}, client=FakeBatch()
        ).check_ready(plan, store)


NO_ANSWER = [
    "ConnectionClosedError",  # the connection dropped before an answer
    "ReadTimeoutError",  # no answer in time
    "EndpointConnectionError",  # no connection at all
]


def _no_answer(name: str) -> Exception:
    import botocore.exceptions

    return getattr(botocore.exceptions, name)(endpoint_url="http://127.0.0.1:9/v1/submitjob")


@pytest.mark.parametrize("name", NO_ANSWER)
def test_an_aws_error_without_a_response_is_one_line(name):
    """Issue 33 item 11: these carry `response=None` (or none at all): the error text read
    `.get` on it (AttributeError, a traceback and exit 1)."""
    exc = _no_answer(name)
    assert _aws_error(exc) == f"{name}: {exc}"


def test_an_aws_error_with_a_response_names_its_code():
    from botocore.exceptions import ClientError

    exc = ClientError({"Error": {"Code": "ClientException", "Message": "no queue"}}, "SubmitJob")
    assert _aws_error(exc) == "ClientException: no queue"


class LosingBatch(FakeBatch):
    """Lands every submission but loses its answer; ListJobs finds what landed (or, with
    `lookup_fails`, does not answer either)."""

    def __init__(self, lookup_fails: bool = False) -> None:
        super().__init__()
        self.lookup_fails = lookup_fails
        self.lookups: list[dict] = []

    def submit_job(self, **request: Any) -> dict:
        super().submit_job(**request)
        raise _no_answer("ConnectionClosedError")

    def list_jobs(self, **query: Any) -> dict:
        self.lookups.append(query)
        if self.lookup_fails:
            raise _no_answer("ReadTimeoutError")
        (wanted,) = query["filters"][0]["values"]
        landed = [
            {"jobId": f"job-{n}", "jobName": r["jobName"], "createdAt": n}
            for n, r in enumerate(self.submitted, start=1)
            if r["jobQueue"] == query["jobQueue"]
            and r["jobName"].lower().startswith(wanted.removesuffix("*").lower())
        ]
        return {"jobSummaryList": landed[::-1]}  # newest first, as Batch lists them


def _one_group(tmp_path, client) -> tuple[AwsBatchExecutor, Any, LocalStore]:
    plan = plan_from_overrides(
        ["engine=null", "instance=g5.xlarge", "grid.axes.threads=[1,2]", "sweep_id=t"]
    )
    executor = AwsBatchExecutor({"image": "img:1"}, client=client)
    return executor, plan, LocalStore(str(tmp_path))


def test_a_submission_whose_answer_is_lost_is_adopted_not_sent_again(tmp_path, monkeypatch):
    """Issue 33 item 6: bench looks up what landed before it would try again."""
    from bench.executors import aws_batch
    from bench.executors.base import read_submissions

    monkeypatch.setattr(aws_batch, "SUBMIT_BACKOFF_S", 0.0)
    client = LosingBatch()
    executor, plan, store = _one_group(tmp_path, client)
    (sub,) = executor._submit_group(plan, store, plan.cells[0].instance, [0, 1])
    assert len(client.submitted) == 1 and sub.job_id == "job-1"
    assert client.submitted[0]["jobName"] != sub.name  # the job name names the attempt
    assert client.submitted[0]["jobName"].startswith(sub.name)
    assert client.lookups[0]["filters"] == [{"name": "JOB_NAME", "values": [f"{sub.name}*"]}]
    assert [s.job_id for s in read_submissions(store, "t")] == ["job-1"]  # journaled


def test_a_submission_that_cannot_be_looked_up_stays_unconfirmed(tmp_path, monkeypatch):
    """No answer and no lookup either: bench cannot tell whether it landed, so it does not
    submit again; the journal keeps it UNCONFIRMED for the next run to look up."""
    from bench.executors import aws_batch
    from bench.executors.base import SubmissionFailed, read_submissions

    monkeypatch.setattr(aws_batch, "SUBMIT_BACKOFF_S", 0.0)
    client = LosingBatch(lookup_fails=True)
    executor, plan, store = _one_group(tmp_path, client)
    with pytest.raises(SubmissionFailed, match="UNCONFIRMED") as failed:
        executor._submit_group(plan, store, plan.cells[0].instance, [0, 1])
    assert "\n" not in str(failed.value) and "ConnectionClosedError" in str(failed.value)
    assert len(client.submitted) == 1
    (sub,) = read_submissions(store, "t")
    assert sub.job_id == ""
    client.lookup_fails = False  # a later run (status, resubmission) finds the job that landed
    (state,) = executor.describe([sub])
    assert state["job_id"] == "job-1" and state["status"] == "SUBMITTED"


def test_a_refused_submission_is_not_retried(tmp_path, monkeypatch):
    """A refusal (no such queue, bad parameters) is an answer: nothing landed, one line."""
    from botocore.exceptions import ClientError

    from bench.executors.base import SubmissionFailed

    class Refusing(LosingBatch):
        def submit_job(self, **request: Any) -> dict:
            self.submitted.append(request)
            raise ClientError(
                {"Error": {"Code": "ClientException", "Message": "no such queue"}}, "SubmitJob"
            )

    client = Refusing()
    executor, plan, store = _one_group(tmp_path, client)
    with pytest.raises(SubmissionFailed, match="ClientException: no such queue"):
        executor._submit_group(plan, store, plan.cells[0].instance, [0, 1])
    assert len(client.submitted) == 1 and not client.lookups


def test_batch_not_answering_describe_jobs_is_one_line():
    """`status` and `wait=true` read job states: a dropped connection there is one line too."""
    from bench.executors.base import Submission, SubmissionFailed

    class Silent(FakeBatch):
        def describe_jobs(self, jobs: list[str]) -> dict:
            raise _no_answer("ReadTimeoutError")

    executor = AwsBatchExecutor({"image": "img:1"}, client=Silent())
    sub = Submission("aws_batch", "job-1", "t-g5-xlarge-0-abcdef", "g5.xlarge", [0, 1])
    with pytest.raises(SubmissionFailed, match="cannot read the state of 1 AWS Batch jobs"):
        executor.describe([sub])


def test_batch_not_answering_a_definition_lookup_is_one_line(tmp_path):
    from bench.executors.base import SubmissionFailed

    class Silent(FakeBatch):
        def describe_job_definitions(self, jobDefinitionName: str, status: str) -> dict:
            raise _no_answer("ConnectionClosedError")

    executor, plan, store = _one_group(tmp_path, Silent())
    with pytest.raises(SubmissionFailed, match="cannot register job definition bench-"):
        executor._submit_group(plan, store, plan.cells[0].instance, [0, 1])


def _no_aws_settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No credentials, no region, no config files; never the instance metadata service."""
    for name in (
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


def test_every_missing_setting_is_said_at_once(monkeypatch, tmp_path):
    from bench.config.checks import UsageError

    _no_aws_settings(monkeypatch, tmp_path)
    plan = plan_from_overrides(["engine=null", "sweep_id=t"])
    executor = AwsBatchExecutor({})
    with pytest.raises(UsageError) as raised:
        executor.check_ready(plan, LocalStore(str(tmp_path)))
    message = str(raised.value)
    assert "\n" not in message and message.startswith("executor=aws_batch needs 4 more")
    for setting in ("executor.image=URI", "store.root=s3://", "AWS credentials", "a region"):
        assert setting in message
    # given them, nothing is missing (the queues are asked next, of Batch itself)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    given = AwsBatchExecutor({"image": "img:1"})
    s3 = type("S3", (), {"uri": lambda self, path: f"s3://b/p/{path}"})()
    assert given.missing_settings(plan, s3) == []
