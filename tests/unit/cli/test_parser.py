"""The command line's grammar: the verbs, the flags that go anywhere, and each verb's own
key=value options taken out of the overrides (checked, with the rest left for Hydra)."""

from __future__ import annotations

import pytest

from bench.cli.help_text import VERB_EXAMPLES, VERBS_HELP
from bench.cli.parser import (
    HANDLERS,
    _global_flags,
    _verb_options,
    parse_command_line,
    ratio_option,
)
from bench.config.checks import ConfigError, UsageError


def test_every_verb_has_a_handler_a_line_of_help_and_examples() -> None:
    assert set(HANDLERS) == set(VERBS_HELP) == set(VERB_EXAMPLES)


@pytest.mark.parametrize(
    ("argv", "rest", "dirs", "cfg"),
    [
        (["plan", "--cfg", "job"], ["plan"], [], "job"),
        (["--cfg=job", "plan"], ["plan"], [], "job"),
        (["plan", "--config-dir", "a", "--config-dir=b"], ["plan"], ["a", "b"], None),
    ],
)
def test_the_global_flags_go_anywhere(argv, rest, dirs, cfg) -> None:
    assert _global_flags(argv) == (rest, dirs, cfg)


@pytest.mark.parametrize(
    ("argv", "error"),
    [(["plan", "--cfg"], UsageError), (["plan", "--cfg", "all"], ConfigError)],
)
def test_a_global_flag_without_a_good_value_is_refused(argv, error) -> None:
    with pytest.raises(error):
        _global_flags(argv)


def test_overrides_may_come_before_or_after_a_verbs_flags() -> None:
    for argv in (
        ["collect", "s1", "--strict", "store.root=/x"],
        ["collect", "s1", "store.root=/x", "--strict"],
    ):
        args = parse_command_line(argv)
        assert (args.strict, args.overrides, args.export) == (True, ["store.root=/x"], "table")


def test_a_stray_flag_is_argparses_error(capsys) -> None:
    with pytest.raises(SystemExit):
        parse_command_line(["plan", "--nope"])
    assert "unrecognized arguments: --nope" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "attribute", "value", "left"),
    [
        (["plan", "cells=true", "engine=sleep"], "cells", True, ["engine=sleep"]),
        (["plan", "engine=sleep"], "cells", False, ["engine=sleep"]),
        (["run", "traceback=TRUE"], "traceback", True, []),
        (["collect", "s", "format=csv", "format=json"], "export", "json", []),
        (["fit", "params=15e9", "precision=fp16"], "overrides", None, None),
        (["capacity", "s", "rate=200", "sla.p99_ms=50"], "rate", 200.0, ["sla.p99_ms=50"]),
        (["capacity", "s", "rate=2"], "peak_to_mean", 1.0, []),
        (["compare", "a", "b", "threshold=0.1"], "threshold", 0.1, []),
        (["compare", "a", "b"], "noise", 0.01, []),
        (["compare", "a", "b", "host_check=off"], "host_check", False, []),
        (["report", "s", "compare=base", "rate=5"], "compare_to", "base", []),
        (["report", "s", "ratio=a/b"], "ratio", ("a", "b"), []),
        (["report", "s", "ratio=off"], "ratio", "off", []),
        (["report", "s"], "rate", None, []),
    ],
)
def test_a_verbs_own_options_leave_the_rest_for_hydra(argv, attribute, value, left) -> None:
    args = parse_command_line(argv)
    if argv[0] == "fit":  # the short keys are the fit section's
        assert args.overrides == ["fit.params=15e9", "precision=fp16"]
        return
    assert getattr(args, attribute) == value
    assert args.overrides == left


def test_compare_reads_an_option_in_news_place_as_an_option() -> None:
    args = parse_command_line(["compare", "s", "ab=engine.service_ms", "format=json"])
    assert (args.base, args.new, args.ab, args.host_check) == ("s", None, "engine.service_ms", True)
    assert args.overrides == ["format=json"]
    uri = "s3://b/p/s2/aggregated.parquet"
    assert parse_command_line(["compare", "s", uri]).new == uri


@pytest.mark.parametrize(
    ("argv", "key"),
    [
        (["plan", "cells=maybe"], "cells"),
        (["run", "traceback=1"], "traceback"),
        (["collect", "s", "format=xml"], "format"),
        (["collect", "../s"], "sweep_id"),
        (["capacity", "s"], "rate"),
        (["capacity", "s", "rate=0"], "rate"),
        (["capacity", "s", "rate=5", "peak_to_mean=0.5"], "peak_to_mean"),
        (["compare", "a", "b", "threshold=2"], "threshold"),
        (["compare", "a", "b", "ab=x"], "ab"),
        (["compare", "a", "ab="], "ab"),
        (["compare", "a", "b", "host_check=maybe"], "host_check"),
        (["report", "s", "ratio=g5"], "ratio"),
        (["report", "s", "noise=-1"], "noise"),
    ],
)
def test_a_bad_own_option_is_one_line_naming_its_key(argv, key) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_command_line(argv)
    assert key in str(caught.value) and "\n" not in str(caught.value)


def test_compare_needs_two_sweeps_or_an_ab_axis() -> None:
    with pytest.raises(UsageError, match="compare takes BASE NEW"):
        parse_command_line(["compare", "a", "store.root=/x"])


def test_the_numeric_options_keep_their_defaults_and_ranges() -> None:
    ranges = {"x": (0.5, 0.0, 1.0), "y": (None, 1.0, 2.0)}
    assert _verb_options(["y=1.5", "z=3"], ranges) == ({"x": 0.5, "y": 1.5}, ["z=3"])
    for bad in ("x=2", "x=nan", "x=inf", "y=abc"):
        with pytest.raises(ConfigError):
            _verb_options([bad], ranges)


@pytest.mark.parametrize(
    ("given", "expected"),
    [([], None), (["ratio=off"], "off"), (["ratio=a/b", "ratio=c/d"], ("c", "d"))],
)
def test_the_last_ratio_given_counts(given, expected) -> None:
    assert ratio_option(given) == expected
