"""bench.results.report_plots: rate, latency and cost axes from zero, seed 004's curves
(throughput against P95 per client-thread count, against batch size), and a throughput in the
model's own unit. The figures are kept open (the `figures` fixture) and read back."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.results import report_plots
from bench.results.report_plots import instances_by_price, throughput_unit
from tests.unit.results.report_rows import report_frame, study_frame, thread_sweep


def test_rate_latency_and_cost_axes_start_at_zero(figures):
    frame = report_frame()
    assert frame["inferences_per_s"].min() > 900  # autoscaling alone would start near 900
    report_plots.plot_throughput_vs_p99(frame, "bert_base", 40.0)
    report_plots.plot_throughput_vs_p95(frame, "bert_base")
    report_plots.plot_vs_batch(frame, "bert_base")
    report_plots.plot_cost_vs_batch(frame, "bert_base")
    report_plots.plot_load_time(frame)
    p99, p95, pair, cost, load = figures
    for axes in (p99.axes[0], *(a for a in p95.axes if a.get_visible())):
        assert axes.get_xlim()[0] == 0 and axes.get_ylim()[0] == 0  # latency and throughput
        assert axes.get_ylim()[1] > frame["inferences_per_s"].max()  # the top still fits
    for axes in (*pair.axes, cost.axes[0], load.axes[0]):
        assert axes.get_ylim()[0] == 0
    assert pair.axes[0].get_xscale() == "log"  # batch size doubles: its axis stays log


def test_ramp_axes_start_at_zero(figures):
    import json

    stages = [
        {"concurrency": c, "errors": 0, "p50_ms": 50.0 + c, "p99_ms": 60.0 + c,
         "requests_per_s": 500.0 + c}
        for c in (1, 2, 4)
    ]  # fmt: skip
    ramp = report_frame().iloc[:1].assign(stages_json=json.dumps(stages), sla_p99_ms=80.0)
    report_plots.plot_ramp(ramp, "bert_base")
    (figure,) = figures
    assert [axes.get_ylim()[0] for axes in figure.axes] == [0, 0]


def test_throughput_is_in_the_models_unit():
    frame = study_frame()
    assert throughput_unit(frame[frame["model"] == "bert_base"]) == "sentences/s"
    assert throughput_unit(frame[frame["model"] == "resnet50"]) == "images/s"
    assert throughput_unit(frame) == "inferences/s"  # two tasks: no single unit
    assert throughput_unit(frame.drop(columns=["task"])) == "inferences/s"


def test_the_p95_curves_are_a_panel_per_instance_and_precision_a_curve_per_batch(figures):
    frame = thread_sweep()
    report_plots.plot_throughput_vs_p95(frame, "bert_tiny")
    (figure,) = figures
    panels = [axes for axes in figure.axes if axes.get_visible()]
    assert sorted(axes.get_title() for axes in panels) == sorted(
        f"{i} {p}" for i in ("cpu-g5", "cpu-g4dn") for p in ("fp32", "amp_bf16")
    )
    for axes in panels:
        instance, precision = axes.get_title().split()
        lines = {line.get_label(): line for line in axes.get_lines()}
        assert set(lines) == {"b1", "b8"}
        here = frame[(frame["instance"] == instance) & (frame["precision"] == precision)]
        for batch in (1, 8):
            curve = here[here["batch_size"] == batch].sort_values("threads")
            assert list(lines[f"b{batch}"].get_xdata()) == list(curve["latency_ms_p95"])
        labels = sorted(text.get_text() for text in axes.texts)
        assert labels == sorted(f"t{t}" for t in (1, 2, 3, 4) for _ in (1, 8))
    assert panels[0].get_ylabel() == "throughput (sentences/s)"


def test_latency_throughput_and_cost_against_batch_size(figures):
    frame = thread_sweep()
    report_plots.plot_vs_batch(frame, "bert_tiny")
    report_plots.plot_cost_vs_batch(frame, "bert_tiny")
    (pair, cost) = figures
    throughput, latency = pair.axes
    assert "P95" in latency.get_ylabel() and "sentences/s" in throughput.get_ylabel()
    for axes in (throughput, latency, cost.axes[0]):
        assert {line.get_label() for line in axes.get_lines()} == {
            f"{i} {p}" for i in ("cpu-g5", "cpu-g4dn") for p in ("fp32", "amp_bf16")
        }
    # every point the most-throughput thread count: here all equal, so the first kept (t4)
    line = next(li for li in latency.get_lines() if li.get_label() == "cpu-g5 fp32")
    assert list(line.get_ydata()) == [0.5 * 4, 4.0 * 4]


def test_instances_are_drawn_dearest_first():
    frame = study_frame()
    assert instances_by_price(frame) == ["g5.4xlarge", "g4dn.4xlarge"]
    cheaper = frame.assign(
        price_per_hour=frame["price_per_hour"].where(frame["instance"] != "g5.4xlarge", 0.5)
    )
    assert instances_by_price(cheaper) == ["g4dn.4xlarge", "g5.4xlarge"]
    unpriced = frame.drop(columns=["price_per_hour"])
    assert instances_by_price(unpriced) == ["g4dn.4xlarge", "g5.4xlarge"]  # in name order


def test_a_plot_is_a_png():
    png = report_plots.plot_load_time(report_frame())
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


@pytest.mark.parametrize("task", ["generate", "seq2seq"])
def test_a_generation_models_throughput_is_in_sequences(task):
    assert throughput_unit(pd.DataFrame({"task": [task, None]})) == "sequences/s"
