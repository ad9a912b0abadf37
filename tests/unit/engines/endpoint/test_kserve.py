"""The KServe v2 protocol engine=http speaks with api=kserve: its option errors, the bodies
it sends (a batch padded, pixels) and the check of an answer."""

from __future__ import annotations

import json

import pytest

from bench.config.checks import ConfigError
from bench.engines.endpoint import kserve
from bench.plan.grid import plan_from_overrides


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["engine.target_models=2"], "engine.target_models"),  # api=completions
        (["engine.input_names=[ids]"], "engine.input_names"),
        (["engine.api=kserve", "engine.input_datatype=STRING"], "engine.input_datatype"),
        (["engine.api=kserve", "engine.input_layout=chw"], "engine.input_layout"),
        (["engine.api=kserve", "engine.input_names=[a,b,c,d]"], "engine.input_names"),
    ],
)
def test_bad_kserve_options_are_one_line_errors(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        plan_from_overrides(["model=bert_tiny", "engine=http", *overrides])


def test_kserve_bodies_pad_a_batch_and_carry_pixels() -> None:
    body = kserve.text_body(((5, 6, 7), (8,)), ("input_ids", "attention_mask", "tt"), "INT64")
    ids, mask, types = body["inputs"]
    assert ids["name"] == "input_ids" and ids["shape"] == [2, 3] and ids["datatype"] == "INT64"
    assert ids["data"] == [5, 6, 7, 8, 0, 0]
    assert mask["data"] == [1, 1, 1, 1, 0, 0] and types["data"] == [0] * 6
    cell = plan_from_overrides(["model=resnet_tiny", "engine=http", "batch_size=2"]).cells[0]
    image = kserve.image_body(cell, "pixel_values", "FP32", "nchw")["inputs"][0]
    assert image["shape"] == [2, 3, 64, 64] and len(image["data"]) == 2 * 3 * 64 * 64
    assert kserve.image_body(cell, "x", "FP32", "nhwc")["inputs"][0]["shape"] == [2, 64, 64, 3]
    answer = {"outputs": [{"name": "logits", "shape": [2, 10], "data": [0.0] * 20}]}
    assert kserve.checked_answer(json.dumps(answer).encode(), 2) == answer
    short = {"outputs": [{"name": "logits", "shape": [2, 10], "data": [1.0]}]}
    for bad, batch in ((answer, 3), ({"outputs": []}, 2), (short, 2)):
        with pytest.raises(ValueError):
            kserve.checked_answer(json.dumps(bad).encode(), batch)
