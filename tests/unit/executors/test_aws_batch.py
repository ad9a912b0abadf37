"""AWS Batch submission details, against a recording fake client (the emulator tests cover
the real API; these cover the edges: lone cells, array splitting, definition reuse)."""

from __future__ import annotations

import json

from bench.executors.aws_batch import MAX_ARRAY_SIZE, AwsBatchExecutor, _chunks
from bench.plan.grid import plan_from_overrides
from bench.results.store import LocalStore
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
    executor.check = lambda plan, store: None  # type: ignore[method-assign]  # no S3, no queues
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
        maps = json.loads((tmp_path / "t" / "arrays" / f"{request['jobName']}.json").read_text())[
            "indices"
        ]
        engines = {plan.cells[i].engine.name for i in maps}
        assert engines == ({"sleep"} if by_image[request["jobDefinition"]] == "vllm:1" else {"hf"})


def test_a_cell_without_an_image_and_a_bad_images_entry_are_config_errors(tmp_path):
    import pytest

    from bench.config.checks import ConfigError

    plan = plan_from_overrides(["engine=sleep", "instance=g5.xlarge", "sweep_id=t"])
    store = LocalStore(str(tmp_path))
    with pytest.raises(ConfigError, match=r"executor\.image.*engine sleep"):
        AwsBatchExecutor({"images": {"null": "x:1"}}, client=FakeBatch()).check(plan, store)
    with pytest.raises(ConfigError, match=r"executor\.images\.vlm"):
        AwsBatchExecutor({"image": "x:1", "images": {"vlm": "y:1"}}, client=FakeBatch()).check(
            plan, store
        )
