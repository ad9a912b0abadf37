"""AWS Batch submission details, against a recording fake client (the emulator tests cover
the real API; these cover the edges: lone cells, array splitting, definition reuse)."""

from __future__ import annotations

import json

from bench.executors.aws_batch import MAX_ARRAY_SIZE, AwsBatchExecutor, _chunks
from bench.plan import plan_from_overrides
from bench.store import LocalStore


class FakeBatch:
    def __init__(self) -> None:
        self.registered: list[dict] = []
        self.submitted: list[dict] = []

    def describe_job_definitions(self, jobDefinitionName: str, status: str) -> dict:
        found = [d for d in self.registered if d["jobDefinitionName"] == jobDefinitionName]
        return {"jobDefinitions": found}

    def register_job_definition(self, **body) -> dict:
        self.registered.append(body)
        return {"jobDefinitionName": body["jobDefinitionName"], "revision": 1}

    def submit_job(self, **request) -> dict:
        self.submitted.append(request)
        return {"jobId": f"job-{len(self.submitted)}"}


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
