"""bench.config.tasks: each task's inputs, units and memory size."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.config.schema import model_from_dict
from bench.config.tasks import AUTO_CLASSES, TASKS, image_size, task_of


def _model(task: str, **extra):
    auto = TASKS[task].auto_classes[0]
    d = {"name": "m", "family": "x", "task": task, "auto_class": auto, "seq_len": 16}
    d["new_tokens"] = 4 if TASKS[task].generates else 0
    d["architecture"] = {"model_type": "x", **extra.pop("architecture", {})}
    return model_from_dict({**d, **extra})


def _cell(model, batch_size=3, seed=0):
    return SimpleNamespace(model=model, batch_size=batch_size, seed=seed)


def test_every_task_is_in_the_config_and_auto_classes_are_unique():
    from bench.config import schema as config

    assert tuple(TASKS) == config.TASKS
    assert len(AUTO_CLASSES) == len(set(AUTO_CLASSES))
    assert set(TASKS) == {"encode", "generate", "seq2seq", "classify_image"}


@pytest.mark.parametrize("task", ["encode", "generate", "seq2seq"])
def test_text_tasks_make_token_ids_of_the_cells_shape(task):
    model = _model(task)
    inputs = task_of(model).inputs(_cell(model), SimpleNamespace(vocab_size=100))
    assert inputs["input_ids"].shape == (3, 16)
    assert int(inputs["input_ids"].min()) >= 3 and int(inputs["input_ids"].max()) < 100
    assert (inputs["attention_mask"] == 1).all()
    again = task_of(model).inputs(_cell(model), SimpleNamespace(vocab_size=100))
    assert (again["input_ids"] == inputs["input_ids"]).all()  # seeded: every request the same


def test_image_inputs_follow_the_model_then_the_architecture_then_224():
    hf = SimpleNamespace(num_channels=1)
    model = _model("classify_image", image_size=32)
    pixels = task_of(model).inputs(_cell(model, batch_size=2), hf)["pixel_values"]
    assert pixels.shape == (2, 1, 32, 32) and pixels.dtype.is_floating_point
    assert image_size(_model("classify_image", architecture={"image_size": 48})) == 48
    assert image_size(_model("classify_image")) == 224


def test_units_and_memory_tokens():
    encode, generate, image = _model("encode"), _model("generate"), _model("classify_image")
    assert task_of(encode).tokens_per_inference(encode) == 16
    assert task_of(generate).tokens_per_inference(generate) == 4
    assert task_of(image).tokens_per_inference(image) is None  # images/s is inferences/s
    assert task_of(generate).memory_tokens(generate) == 20
    assert task_of(image).memory_tokens(image) == (224 // 16) ** 2
