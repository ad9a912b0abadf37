"""Each workload's stream of request inputs: distinct where it should be, repeatable from its
seed, shaped as its options say."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bench.config.checks import ConfigError
from bench.config.schema import CellConfig, WorkloadConfig
from bench.engines.base import Reply
from bench.measure.workloads import check_workload, workload_of
from bench.plan.grid import plan_from_overrides
from tests.support import datasets


@pytest.fixture(scope="module")
def cell() -> CellConfig:
    return plan_from_overrides(["model=opt_tiny", "engine=http"]).cells[0]


def _with(cell: CellConfig, name: str, batch_size: int = 1, **options) -> CellConfig:
    cell = dataclasses.replace(cell, batch_size=batch_size)
    cell = dataclasses.replace(cell, workload=WorkloadConfig(name, options))
    return dataclasses.replace(cell, workload=check_workload(cell))


def _draw(cell: CellConfig, count: int, client: int = 0) -> list:
    source = workload_of(cell.workload).source(cell)
    return [source.draw(client, -1) for _ in range(count)], source


def test_synthetic_prompts_are_distinct_and_repeatable(cell: CellConfig) -> None:
    drawn, source = _draw(_with(cell, "synthetic", batch_size=2), 50)
    prompts = [p for inputs in drawn for p in inputs.prompts]
    assert len(set(prompts)) == 100 and all(len(p) == cell.model.seq_len for p in prompts)
    assert {i.output_lens for i in drawn} == {(cell.model.new_tokens,) * 2}
    again, _ = _draw(_with(cell, "synthetic", batch_size=2), 50)
    assert again == drawn  # the seeded stream
    assert source.facts()["distinct_prompts"] == 50


def test_repeat_sends_one_prompt(cell: CellConfig) -> None:
    drawn, source = _draw(_with(cell, "synthetic", repeat=True), 20)
    assert len({i.prompts for i in drawn}) == 1 and source.facts()["distinct_prompts"] == 1


def test_synthetic_draws_one_output_length_per_request(cell: CellConfig) -> None:
    synthetic = _with(
        cell, "synthetic", batch_size=3, output_dist="uniform", output_min=2, output_max=40
    )
    drawn, _ = _draw(synthetic, 200)
    assert all(len(set(i.output_lens)) == 1 for i in drawn)
    assert len({i.output_lens[0] for i in drawn}) > 20


def test_shared_prefix_groups_share_their_prefix(cell: CellConfig) -> None:
    drawn, _ = _draw(_with(cell, "shared_prefix", prefixes=3, prefix_len=40, input_mean=5), 30)
    heads = [i.prompts[0][:40] for i in drawn]
    assert len(set(heads)) == 3 and heads[0] == heads[3] != heads[1]
    assert len({i.prompts[0] for i in drawn}) == 30 and all(len(i.prompts[0]) == 45 for i in drawn)


def test_multi_turn_carries_the_conversation(cell: CellConfig) -> None:
    multi = _with(cell, "multi_turn", turns=3, input_mean=4, output_mean=2)
    source = workload_of(multi.workload).source(multi)
    first = source.draw(0, -1)
    assert first.turn == 0 and len(first.prompts[0]) == 4
    source.answered(0, first, Reply(answer=(7, 8)))
    second = source.draw(0, -1)
    assert second.turn == 1 and second.prompts[0][:6] == first.prompts[0] + (7, 8)
    assert [role for role, _ in second.turns] == ["user", "assistant", "user"]
    source.answered(0, second, Reply(answer="a text answer"))
    third = source.draw(0, -1)
    assert third.turns[3] == ("assistant", "a text answer") and third.turn == 2
    source.answered(0, third, Reply(answer=None))
    assert source.draw(0, -1).turn == 0  # a new conversation after `turns` turns
    other = source.draw(1, -1)
    assert other.turn == 0  # each client holds its own
    source.answered(1, other, None)  # a failed turn ends it
    assert source.draw(1, -1).turn == 0
    assert source.facts()["answers_carried_share"] == pytest.approx(2 / 3)


def test_dataset_reads_sharegpt_and_filters(cell: CellConfig) -> None:
    data = _with(cell, "dataset", path=str(datasets.SHAREGPT), min_input_len=10, max_input_len=40)
    drawn, source = _draw(data, 100)
    assert all(10 <= len(i.texts[0].split()) <= 40 for i in drawn)
    assert all(len(i.prompts[0]) == len(i.texts[0].split()) for i in drawn)
    kept = source.facts()["dataset_prompts"]
    assert 5 < kept < 40 and source.facts()["distinct_prompts"] == kept  # cycled through
    conversations = json.loads(datasets.SHAREGPT.read_text())
    humans = {
        next(t["value"] for t in c["conversations"] if t["from"] == "human")
        for c in conversations
        if c["conversations"]
    }
    assert {i.texts[0] for i in drawn} <= humans


def test_the_fixture_is_what_the_generator_writes() -> None:
    assert json.loads(datasets.SHAREGPT.read_text()) == datasets.sharegpt()


def test_dataset_jsonl_messages_and_output_len(cell: CellConfig, tmp_path: Path) -> None:
    path = datasets.write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"prompt": "one two three", "output_len": 5},
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u v"}]},
        ],
    )
    drawn, _ = _draw(_with(cell, "dataset", path=str(path)), 4)
    by_text = {i.texts[0]: i for i in drawn}
    assert by_text["one two three"].output_lens == (5,)
    chat = by_text["s\nu v"]
    assert chat.turns == (("system", "s"), ("user", "u v"))
    assert chat.output_lens == (cell.model.new_tokens,)


def test_trace_schedule_and_shared_blocks(cell: CellConfig, tmp_path: Path) -> None:
    entries = datasets.trace(30, mean_gap_ms=10)
    path = datasets.write_jsonl(tmp_path / "t.jsonl", entries)
    traced = dataclasses.replace(
        _with(cell, "trace", path=str(path), speedup=2.0, block_size=16),
        scenario=dataclasses.replace(cell.scenario, name="open_loop"),
    )
    source = workload_of(traced.workload).source(traced)
    first = entries[0]["timestamp"]
    expected = [int((e["timestamp"] - first) / 2 * 1e6) for e in entries]
    assert source.schedule_ns.tolist() == expected
    zero, three, one = (source.draw(0, k) for k in (0, 3, 1))
    assert zero.prompts[0][:20] == three.prompts[0][:20] != one.prompts[0][:20]
    assert len(one.prompts[0]) == entries[1]["input_length"]
    assert one.output_lens == (entries[1]["output_length"],)


@pytest.mark.parametrize(
    ("name", "options", "key"),
    [
        ("dataset", {}, "workload.path"),
        ("dataset", {"path": "/no/such/file.json"}, "workload.path"),
        ("trace", {"path": "/no/such/trace.jsonl"}, "workload.path"),
        ("multi_turn", {"turns": 0}, "workload.turns"),
        ("shared_prefix", {"prefixes": 0}, "workload.prefixes"),
        ("nosuch", {}, "workload"),
    ],
)
def test_bad_workload_options_name_their_key(cell: CellConfig, name, options, key) -> None:
    with pytest.raises(ConfigError) as caught:
        _with(cell, name, **options)
    assert caught.value.key == key


def test_engines_that_send_one_batch_refuse_varied_workloads() -> None:
    from bench.measure.support import why_unsupported

    varied = ["workload.input_dist=uniform", "workload.input_max=64"]
    ranks = ["model=opt_tiny", "engine=deepspeed", "tp_degree=2", "device=cpu"]
    plan = plan_from_overrides([*ranks, *varied])
    assert "sends one fixed batch" in why_unsupported(plan.cells[0], this_host=False)
    plain = plan_from_overrides(ranks).cells[0]
    assert why_unsupported(plain, this_host=False) is None
    one = plan_from_overrides(["model=opt_tiny", "engine=deepspeed", *varied]).cells[0]
    assert why_unsupported(one, this_host=False) is None  # one process varies its inputs
    ft = plan_from_overrides(
        ["model=opt_tiny", "engine=fastertransformer", "instance=g5.xlarge", *varied]
    ).cells[0]
    assert "sends one fixed batch" in (why_unsupported(ft, this_host=False) or "")


def test_workloads_name_the_scenario_they_need() -> None:
    from bench.measure.support import why_unsupported

    talk = plan_from_overrides(["engine=http", "model=opt_tiny", "workload=multi_turn"]).cells[0]
    opened = dataclasses.replace(talk, scenario=dataclasses.replace(talk.scenario, name="ramp"))
    reason = why_unsupported(opened, this_host=False) or ""
    assert "closed-loop clients: use scenario=latency, not ramp" in reason
    assert why_unsupported(talk, this_host=False) is None
