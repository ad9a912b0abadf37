"""index_from_environment: the one place a scheduler's array index is read."""

from __future__ import annotations

import pytest

from bench.executors.environment import INDEX_VARIABLES, index_from_environment


@pytest.mark.parametrize(
    "name", ["AWS_BATCH_JOB_ARRAY_INDEX", "SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"]
)
def test_each_scheduler_variable(name):
    assert index_from_environment({name: "7"}) == 7
    assert index_from_environment({name: "0"}) == 0
    assert index_from_environment({name: "1234", "UNRELATED": "x"}) == 1234


def test_order_of_precedence():
    environ = {"JOB_COMPLETION_INDEX": "3", "SLURM_ARRAY_TASK_ID": "2"}
    assert index_from_environment(environ) == 2
    environ["AWS_BATCH_JOB_ARRAY_INDEX"] = "1"
    assert index_from_environment(environ) == 1


def test_an_empty_variable_is_skipped():
    environ = {"AWS_BATCH_JOB_ARRAY_INDEX": "", "SLURM_ARRAY_TASK_ID": "5"}
    assert index_from_environment(environ) == 5


def test_none_set_is_a_value_error():
    with pytest.raises(ValueError) as info:
        index_from_environment({"PATH": "/usr/bin"})
    for name in INDEX_VARIABLES:
        assert name in str(info.value)


def test_only_empty_variables_is_a_value_error():
    with pytest.raises(ValueError):
        index_from_environment({name: "" for name in INDEX_VARIABLES})


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", " 3", "3 ", "0x1"])
def test_non_integer_is_a_value_error(value):
    with pytest.raises(ValueError) as info:
        index_from_environment({"SLURM_ARRAY_TASK_ID": value})
    assert "SLURM_ARRAY_TASK_ID" in str(info.value)
    assert repr(value) in str(info.value)


def test_reads_the_process_environment_by_default(monkeypatch):
    for name in INDEX_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError):
        index_from_environment()
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "11")
    assert index_from_environment() == 11
