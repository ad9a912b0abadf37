"""Seed 004's report as a whole: a thread sweep's report has every plot and the ratio table of
one instance type over another ("G5 over G4dn"), and the ratio option picks the pair. (The
ratio table itself: test_report_decisions.py; the curves: test_report_plots.py.)"""

from __future__ import annotations

import pandas as pd
import pytest

from bench.config.checks import ConfigError
from bench.results.report import build_report
from bench.results.report_decisions import ratio_section
from tests.unit.results.report_rows import G4DN, G5, study_frame, thread_sweep


def test_the_report_of_a_thread_sweep_has_every_plot_and_the_ratio_table():
    frame = thread_sweep()
    built = build_report(frame, "seed004", None, [ratio_section(frame, "cpu-g5", "cpu-g4dn")])
    assert set(built.images) == {
        "bert_tiny-throughput-vs-p99.png",
        "bert_tiny-throughput-vs-p95.png",
        "bert_tiny-vs-batch-size.png",
        "bert_tiny-cost-vs-batch-size.png",
        "load-time-per-engine.png",
    }
    markdown = built.markdown
    assert markdown.index("## cpu-g5 over cpu-g4dn") < markdown.index("## Plots")
    assert "throughput 2.00x, P95 2.00x, cost benefit 2.00x" in markdown
    assert built.html.count("<img") == 5


def test_a_report_without_p95_rows_draws_no_p95_curves():
    frame = thread_sweep().drop(columns=["latency_ms_p95"])
    assert "bert_tiny-throughput-vs-p95.png" not in build_report(frame, "old", None).images


@pytest.mark.parametrize(
    ("given", "expected"),
    [([], None), (["ratio=off"], "off"), (["ratio=a/b"], ("a", "b")), (["x=1"], None)],
)
def test_the_ratio_option_parses(given, expected):
    from bench.cli.parser import ratio_option as _ratio_option

    assert _ratio_option(given) == expected


@pytest.mark.parametrize("bad", ["g5", "g5/", "/g4dn", "g5/g5", "a/b/c"])
def test_a_malformed_ratio_is_one_line_naming_the_form(bad):
    from bench.cli.parser import ratio_option as _ratio_option

    with pytest.raises(ConfigError) as caught:
        _ratio_option([f"ratio={bad}"])
    message = str(caught.value)
    assert "\n" not in message and "INSTANCE_A/INSTANCE_B" in message and bad in message


def test_the_pair_is_automatic_for_two_instance_types_and_checked_when_named():
    from bench.results.sweep_report import ratio_pair as _ratio_pair

    frame = study_frame()
    assert _ratio_pair(None, frame) == (G5, G4DN)  # the dearer over the cheaper
    assert _ratio_pair((G4DN, G5), frame) == (G4DN, G5)
    assert _ratio_pair("off", frame) is None
    three = pd.concat([frame, frame.iloc[:1].assign(instance="p3.2xlarge")])
    assert _ratio_pair(None, three) is None  # which two? ratio=A/B says
    with pytest.raises(ConfigError) as caught:
        _ratio_pair(("g5.4xlarge", "g4dn.xlarge"), frame)
    assert "g4dn.xlarge has no ok rows here (has: g5.4xlarge, g4dn.4xlarge)" in str(caught.value)
