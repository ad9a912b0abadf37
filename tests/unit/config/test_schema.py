"""Validation of config values: every bad value is a one-line error naming key, value, allowed."""

from __future__ import annotations

import dataclasses

import pytest

from bench.config.checks import ConfigError
from bench.config.compose import UsageError
from bench.config.schema import (
    InstanceSpec,
    cell_from_dict,
    conf_dir,
    group_options,
    instance_from_catalog,
    model_from_dict,
    scenario_from_dict,
)
from bench.plan.grid import plan_from_overrides


def _error(overrides: list[str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        plan_from_overrides(overrides)
    return info.value


@pytest.mark.parametrize(
    ("overrides", "key", "value", "allowed"),
    [
        (["model=nope"], "model", "nope", ["bert_tiny", "bert_base", "opt_tiny"]),
        (["engine=nope"], "engine", "nope", ["hf", "null", "sleep"]),
        (["+grid=nope"], "grid", "nope", ["smoke", "bert_g5"]),
        (["precision=fp8"], "precision", "fp8", ["fp32", "fp16", "bf16"]),
        (["instance=x1.huge"], "instance", "x1.huge", ["local-cpu", "g5.4xlarge"]),
        (["device=tpu"], "device", "tpu", ["auto", "cpu", "cuda"]),
    ],
)
def test_bad_choice_names_key_value_and_allowed(overrides, key, value, allowed):
    err = _error(overrides)
    assert err.key == key
    assert err.value == value
    message = str(err)
    assert "\n" not in message
    assert message.startswith(f"{key}=")
    assert repr(value) in message
    for option in allowed:
        assert option in message


@pytest.mark.parametrize("key", ["batch_size", "threads", "tp_degree"])
def test_integer_below_one_is_rejected(key):
    err = _error([f"{key}=0"])
    assert err.key == key
    assert err.value == 0
    assert str(err).startswith(f"{key}=0 is not allowed; must be an integer from 1 to ")


def test_negative_batch_size_is_rejected():
    err = _error(["batch_size=-3"])
    assert err.key == "batch_size"
    assert "-3" in str(err)


def test_non_integer_threads_is_rejected():
    err = _error(["threads=1.5"])
    assert err.key == "threads"
    assert "1.5" in str(err)
    assert "an integer from 1 to" in str(err)


def test_unknown_top_level_key_names_the_key():
    # A malformed override: Hydra rejects it; bench reports it as one line naming the key.
    with pytest.raises((ConfigError, UsageError)) as info:
        plan_from_overrides(["batchsize=4"])
    message = str(info.value)
    assert "batchsize" in message
    assert "\n" not in message


def test_unknown_grid_axis_names_the_axis_and_the_allowed_axes():
    err = _error(["+grid.axes.colour=[red]"])
    assert err.key == "grid.axes.colour"
    assert err.value == ["red"]
    message = str(err)
    assert "red" in message
    for axis in ("model", "engine", "precision", "batch_size", "threads", "instance"):
        assert axis in message


def test_unknown_grid_axis_without_plus_is_rejected():
    # grid.axes is an empty struct node: adding a key without '+' is refused either way.
    with pytest.raises((ConfigError, UsageError)) as info:
        plan_from_overrides(["grid.axes.colour=[red]"])
    assert "colour" in str(info.value)


def test_empty_axis_is_rejected():
    err = _error(["+grid.axes.precision=[]"])
    assert err.key == "grid.axes.precision"
    assert "at least one value" in str(err)


def test_engine_option_checks():
    err = _error(["engine=sleep", "engine.service_ms=0"])
    assert err.key == "engine.service_ms"
    assert "> 0" in str(err)

    err = _error(["engine=sleep", "+engine.colour=1"])
    assert err.key == "engine.colour"
    assert "service_ms" in str(err)  # the allowed options are named


def test_engine_option_wrong_type():
    err = _error(["engine=sleep", "engine.service_ms=fast"])
    assert err.key == "engine.service_ms"
    assert "fast" in str(err)
    assert "float" in str(err)


def test_scenario_max_below_min_is_rejected():
    err = _error(["scenario.min_duration_s=5", "scenario.max_duration_s=1"])
    assert err.key == "scenario.max_duration_s"
    assert "5" in str(err)


def test_negative_price_is_rejected():
    err = _error(["price_per_hour=-1"])
    assert err.key == "price_per_hour"


def test_valid_defaults_compose_to_one_cell():
    plan = plan_from_overrides([])
    assert len(plan.cells) == 1
    cell = plan.cells[0]
    assert cell.model.name == "bert_tiny"
    assert cell.precision == "fp32"
    assert cell.batch_size == 1
    assert cell.instance.type == "local-cpu"
    assert cell.price_per_hour == pytest.approx(0.192)


# --- the schema functions directly -------------------------------------------------------------


def _model(**changes):
    d = {
        "name": "m",
        "family": "bert",
        "task": "encode",
        "auto_class": "AutoModel",
        "seq_len": 8,
        "new_tokens": 0,
        "checkpoint": None,
        "architecture": {"model_type": "bert"},
    }
    d.update(changes)
    return d


def test_model_from_dict_accepts_a_valid_model():
    model = model_from_dict(_model())
    assert model.seq_len == 8
    assert model.family == "bert"


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"task": "translate"}, "model.task"),
        ({"auto_class": "os.system"}, "model.auto_class"),
        ({"seq_len": 0}, "model.seq_len"),
        ({"task": "generate", "new_tokens": 0}, "model.new_tokens"),
        ({"task": "seq2seq", "auto_class": "AutoModelForSeq2SeqLM"}, "model.new_tokens"),
        ({"task": "generate", "new_tokens": 4}, "model.auto_class"),  # AutoModel cannot generate
        ({"task": "classify_image", "image_size": 0}, "model.image_size"),
        ({"architecture": {}}, "model.architecture.model_type"),
    ],
)
def test_model_from_dict_rejects(changes, key):
    with pytest.raises(ConfigError) as info:
        model_from_dict(_model(**changes))
    assert info.value.key == key


def test_an_image_model_needs_no_seq_len():
    d = _model(task="classify_image", auto_class="AutoModelForImageClassification")
    del d["seq_len"], d["new_tokens"]
    model = model_from_dict({**d, "image_size": 64})
    assert (model.seq_len, model.new_tokens, model.image_size) == (0, 0, 64)


def test_a_wrong_auto_class_names_the_ones_the_task_takes():
    with pytest.raises(ConfigError, match="task generate takes: AutoModelForCausalLM"):
        model_from_dict(_model(task="generate", new_tokens=4))


def test_model_with_checkpoint_needs_no_model_type():
    model = model_from_dict(_model(architecture={}, checkpoint="/models/x"))
    assert model.checkpoint == "/models/x"


def test_scenario_from_dict_rejects_zero_min_requests():
    d = {
        "name": "latency",
        "warmup_requests": 0,
        "min_requests": 0,
        "min_duration_s": 1.0,
        "max_duration_s": 2.0,
    }
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(d)
    assert info.value.key == "scenario.min_requests"


def test_instance_from_catalog():
    catalog = [
        {
            "type": "a.big",
            "gpu_model": None,
            "gpus": 0,
            "gpu_memory_gib": 0,
            "compute_capability": None,
            "vcpus": 2,
            "memory_gib": 4,
            "usd_per_hour": 0.5,
            "price_date": "2025-01-01",
            "unknown_field": "ignored",
        }
    ]
    spec = instance_from_catalog(catalog, "a.big")
    assert isinstance(spec, InstanceSpec)
    assert spec.usd_per_hour == 0.5
    with pytest.raises(ConfigError) as info:
        instance_from_catalog(catalog, "b.small")
    assert "a.big" in str(info.value)


def test_cell_round_trips_through_dict():
    cell = plan_from_overrides(["engine=sleep", "engine.service_ms=2.5"]).cells[0]
    again = cell_from_dict(cell.to_dict())
    assert again == cell
    assert again.engine.options["service_ms"] == 2.5


def test_cell_from_dict_validates_a_tampered_manifest_entry():
    cell = plan_from_overrides(["engine=null"]).cells[0]
    d = dataclasses.replace(cell, batch_size=0).to_dict()
    with pytest.raises(ConfigError) as info:
        cell_from_dict(d)
    assert info.value.key == "batch_size"


def test_conf_dir_follows_env(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mine.yaml").write_text("name: mine\n")
    monkeypatch.setenv("BENCH_CONF_DIR", str(tmp_path))
    assert conf_dir() == tmp_path.resolve()
    assert group_options("model") == ["mine"]


def test_group_options_of_the_repo_tree(monkeypatch):
    monkeypatch.delenv("BENCH_CONF_DIR", raising=False)
    assert {"bert_tiny", "bert_base", "opt_tiny", "opt_125m"} <= set(group_options("model"))
    assert {"hf", "null", "sleep"} <= set(group_options("engine"))
    assert {"smoke", "bert_g5"} <= set(group_options("grid"))


def _scenario_error(**extra: object) -> ConfigError:
    d = {"name": "latency", "warmup_requests": 0, "min_requests": 1, "min_duration_s": 1.0}
    with pytest.raises(ConfigError) as info:
        scenario_from_dict({**d, "max_duration_s": 2.0, **extra})
    return info.value


@pytest.mark.parametrize("key", ["stable_windows", "bootstrap_resamples"])
def test_removed_scenario_keys_say_what_replaced_them(key):
    error = _scenario_error(**{key: 3})
    assert error.key == f"scenario.{key}" and "removed" in str(error)


def test_too_few_batches_for_an_interval_are_rejected():
    error = _scenario_error(windows=4)
    assert error.key == "scenario.windows" and ">= 8" in str(error)


@pytest.mark.parametrize("precision", ["amp_fp16", "amp_bf16"])
def test_mixed_precision_is_a_precision(precision):
    from bench.plan.grid import plan_from_overrides

    assert plan_from_overrides([f"precision={precision}"]).cells[0].precision == precision


@pytest.mark.parametrize("key", ["force", "wait", "run_infeasible"])
@pytest.mark.parametrize("value", ["no", "off", "'0'", "1"])
def test_a_switch_takes_only_true_or_false(key, value):
    """`force=no` must not mean force=true (a truthy string would re-run every ok cell)."""
    from bench.plan.grid import plan_from_overrides

    with pytest.raises(ConfigError) as info:
        plan_from_overrides([f"{key}={value}"])
    assert info.value.key == key and "must be true or false" in str(info.value)
    assert plan_from_overrides([f"{key}=false"]).cells  # the real booleans still work
