"""bench.config.checks: each check passes a good value through and refuses a bad one in one
line naming the key, the value and what is allowed; typed options refuse unknown keys and
wrong types, and are made once per distinct set of values."""

from __future__ import annotations

import dataclasses
import math

import pytest

from bench.config import checks
from bench.config.checks import ConfigError


def _refused(check, *args) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        check(*args)
    assert "\n" not in str(info.value)
    return info.value


def test_a_config_error_is_one_line_naming_key_value_and_what_is_allowed():
    error = ConfigError("engine.service_ms", -1, "must be > 0")
    assert str(error) == "engine.service_ms=-1 is not allowed; must be > 0"
    assert (error.key, error.value, error.allowed) == ("engine.service_ms", -1, "must be > 0")
    assert isinstance(error, ValueError)  # callers that catch ValueError still do


@pytest.mark.parametrize("sweep_id", ["smoke-1", "a", "Run_2.b", "x" * 128])
def test_a_sweep_id_of_letters_digits_and_dots_is_kept(sweep_id):
    assert checks.check_sweep_id(sweep_id) == sweep_id


@pytest.mark.parametrize("sweep_id", ["", "../up", "a/b", "-lead", ".hidden", "a..b", "x" * 129])
def test_a_sweep_id_that_could_leave_the_store_root_is_refused(sweep_id):
    error = _refused(checks.check_sweep_id, sweep_id)
    assert error.key == "sweep_id" and "(no '..')" in str(error)


def test_did_you_mean_names_the_closest_candidate_or_nothing():
    assert checks.did_you_mean("bert_tny", ["bert_tiny", "opt_tiny"]) == "; did you mean bert_tiny?"
    assert checks.did_you_mean("zzz", ["bert_tiny", "opt_tiny"]) == ""
    assert checks.did_you_mean(5, []) == ""


def test_choice_lists_what_is_allowed_and_suggests_a_near_miss():
    assert checks.choice("pricing", "ec2", ("ec2", "sagemaker")) == "ec2"
    error = _refused(checks.choice, "pricing", "sagmaker", ("ec2", "sagemaker"))
    assert str(error) == (
        "pricing='sagmaker' is not allowed; allowed: ec2, sagemaker; did you mean sagemaker?"
    )
    # a value that is not text gets no suggestion, and the word before the list is the caller's
    error = _refused(checks.choice, "device", 3, ("cpu", "cuda"), "one of")
    assert str(error) == "device=3 is not allowed; one of: cpu, cuda"


def test_int_at_least_refuses_bools_floats_and_values_out_of_range():
    assert checks.int_at_least("threads", 4, 1) == 4
    assert checks.int_at_least("threads", 4, 1, 4) == 4
    for value in (0, True, 2.0, "2"):
        assert "must be an integer >= 1" in str(_refused(checks.int_at_least, "threads", value, 1))
    error = _refused(checks.int_at_least, "threads", 5, 1, 4)
    assert str(error) == "threads=5 is not allowed; must be an integer from 1 to 4"


@pytest.mark.parametrize("value", ["no", "0", 0, 1, None])
def test_a_flag_is_only_a_real_boolean(value):
    assert "must be true or false" in str(_refused(checks.flag, "force", value))
    assert checks.flag("force", False) is False


def test_finite_number_reads_text_within_bounds():
    assert checks.finite_number("sla", "2.5", 0, 10) == 2.5
    for text in ("nan", "inf", "ten", "11", "-1"):
        error = _refused(checks.finite_number, "sla", text, 0, 10)
        assert error.value == text and "must be a number from 0 to 10" in str(error)


def test_positive_and_non_negative_take_finite_numbers_only():
    assert checks.positive("x", 2) == 2.0 and isinstance(checks.positive("x", 2), float)
    assert checks.non_negative("x", 0) == 0.0
    for bad in (0, -1, math.inf, math.nan, True, "1"):
        assert "finite number > 0" in str(_refused(checks.positive, "x", bad))
    for bad in (-0.5, math.inf, False):
        assert "finite number >= 0" in str(_refused(checks.non_negative, "x", bad))


def test_a_share_is_open_at_zero_unless_asked():
    assert checks.share("q", 0.5) == 0.5
    assert "in (0, 1)" in str(_refused(checks.share, "q", 0))
    assert "in (0, 1)" in str(_refused(checks.share, "q", 1))
    assert checks.share("q", 0, low_open=False) == 0.0
    assert "[0, 1)" in str(_refused(checks.share, "q", 1.0, False))
    assert "in (0, 1)" in str(_refused(checks.share, "q", True))


def test_optional_checks_a_set_value_and_passes_none():
    options = {"max_waiting": 3, "workers": None}
    assert checks.optional(checks.int_at_least, "scenario.max_waiting", options, 0) == 3
    assert checks.optional(checks.int_at_least, "scenario.workers", options, 1) is None
    assert checks.optional(checks.int_at_least, "scenario.absent", options, 1) is None
    error = _refused(checks.optional, checks.int_at_least, "scenario.max_waiting", options, 5)
    assert error.key == "scenario.max_waiting"


@dataclasses.dataclass(frozen=True)
class _Options:
    service_ms: float = 1.0
    slots: int = 0
    name: str = "x"
    stages: tuple[int, ...] = ()
    on: bool = False
    url: str | None = None  # defaults to None: its owner checks it


def test_typed_options_make_the_dataclass_and_accept_an_int_for_a_float():
    typed = checks.typed_options("engine", "engine sleep", _Options, {"service_ms": 2, "slots": 3})
    assert typed == _Options(service_ms=2, slots=3)
    listed = checks.typed_options("engine", "engine sleep", _Options, {"stages": [1, 2]})
    assert listed.stages == (1, 2)  # a list where the default is a tuple: made one
    anything = checks.typed_options("engine", "engine sleep", _Options, {"url": 5})
    assert anything.url == 5  # a field defaulting to None is its owner's to check


def test_typed_options_refuse_an_unknown_key_naming_the_known_ones():
    error = _refused(checks.typed_options, "engine", "engine sleep", _Options, {"colour": 1})
    assert error.key == "engine.colour"
    assert str(error).endswith("engine sleep: service_ms, slots, name, stages, on, url")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("service_ms", "fast", "float"),
        ("service_ms", True, "float"),  # a bool is no number here
        ("slots", 1.5, "int"),
        ("slots", False, "int"),
        ("name", 3, "str"),
        ("on", 1, "bool"),
    ],
)
def test_typed_options_refuse_a_value_of_another_type(key, value, expected):
    error = _refused(checks.typed_options, "engine", "engine sleep", _Options, {key: value})
    assert error.key == f"engine.{key}" and str(error).endswith(f"must be {expected}")


def test_the_same_values_give_the_same_options_once_and_equal_ones_of_other_types_do_not():
    first = checks.typed_options("engine", "e", _Options, {"service_ms": 2.0})
    again = checks.typed_options("engine", "e", _Options, {"service_ms": 2.0})
    assert again is first  # made once: a 100,000-cell grid checks each distinct value once
    # 2 == 2.0 as a key, but an int is remembered apart from a float
    other = checks.typed_options("engine", "e", _Options, {"service_ms": 2})
    assert other == first and type(other.service_ms) is int
    # values that cannot be remembered (a list) are still checked every time
    assert checks.typed_options("engine", "e", _Options, {"stages": [3]}).stages == (3,)
