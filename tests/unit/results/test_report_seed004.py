"""Seed 004's report: throughput-vs-P95 curves over client threads, throughput, latency and cost
against batch size, and the ratio table of one instance type over another ("G5 over G4dn"),
checked on the study's own table and on synthetic thread sweeps."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from bench.config.checks import ConfigError
from bench.results import report_plots
from bench.results.document import to_markdown
from bench.results.report import build_report
from bench.results.report_decisions import instance_ratios, instance_types, ratio_section
from bench.results.report_plots import throughput_unit

G5, G4DN = "g5.4xlarge", "g4dn.4xlarge"
PRICES = {G5: 1.624, G4DN: 1.204}  # the catalog's on-demand $/h

# The study's summary table: model, batch, precision, then throughput (inferences/s), latency
# (ms) and $ per million inferences for G5 and G4dn, and its "cost benefit (G5 over G4dn)".
STUDY = [
    ("bert_base", 32, "fp32", 723, 154, 44, 208, 0.6, 2.2, 3.7),
    ("bert_base", 32, "amp_fp16", 870, 410, 37, 79, 0.5, 0.8, 1.6),
    ("bert_base", 16, "fp32", 651, 158, 25, 102, 0.7, 2.1, 3.0),
    ("bert_base", 16, "amp_fp16", 762, 376, 21, 43, 0.6, 0.9, 1.5),
    ("bert_base", 8, "fp32", 642, 142, 13, 57, 0.7, 2.3, 3.3),
    ("bert_base", 8, "amp_fp16", 681, 350, 12, 23, 0.7, 1.0, 1.4),
    ("bert_base", 1, "fp32", 160, 116, 6, 9, 2.8, 2.9, 1.0),
    ("bert_base", 1, "amp_fp16", 137, 102, 7, 10, 3.3, 3.3, 1.0),
    ("resnet50", 32, "fp32", 941, 397, 34, 82, 0.5, 0.8, 1.6),
    ("resnet50", 32, "amp_fp16", 1533, 851, 21, 38, 0.3, 0.4, 1.3),
    ("resnet50", 16, "fp32", 888, 384, 18, 42, 0.5, 0.9, 1.8),
    ("resnet50", 16, "amp_fp16", 1474, 819, 11, 20, 0.3, 0.4, 1.3),
    ("resnet50", 8, "fp32", 805, 340, 10, 24, 0.6, 1.0, 1.7),
    ("resnet50", 8, "amp_fp16", 1419, 772, 6, 10, 0.3, 0.4, 1.3),
    ("resnet50", 1, "fp32", 202, 164, 5, 6, 2.2, 2.0, 0.9),
    ("resnet50", 1, "amp_fp16", 196, 180, 5, 6, 2.3, 1.9, 0.8),
]
TASKS = {"bert_base": "encode", "resnet50": "classify_image"}


def _row(model: str, instance: str, precision: str, batch: int, threads: int, **figures: Any):
    p95 = figures.pop("p95")
    return {
        "model": model,
        "task": TASKS.get(model, "encode"),
        "engine": "hf",
        "instance": instance,
        "precision": precision,
        "batch_size": batch,
        "threads": threads,
        "tp_degree": 1,
        "status": "ok",
        "price_per_hour": PRICES.get(instance, 0.192),
        "latency_ms_p50": p95 * 0.8,
        "latency_ms_p95": p95,
        "latency_ms_p99": p95 * 1.1,
        "n": 1000,
        "load_s": 1.0,
        "init_s": 0.0,
        **figures,
    }


def study_frame() -> pd.DataFrame:
    """The study's table as one client's rows, and a second client beside each (twice the
    throughput at twice the latency: what a saturated device does)."""
    rows = []
    for model, batch, precision, *figures in STUDY:
        tp_g5, tp_g4, p95_g5, p95_g4, usd_g5, usd_g4, _ = figures
        for instance, tp, p95, usd in ((G5, tp_g5, p95_g5, usd_g5), (G4DN, tp_g4, p95_g4, usd_g4)):
            for threads in (1, 2):
                rows.append(
                    _row(
                        model, instance, precision, batch, threads,
                        p95=p95 * threads, inferences_per_s=tp * (1 + 0.1 * (threads - 1)),
                        usd_per_million_inferences=usd / (1 + 0.1 * (threads - 1)),
                    )
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_the_ratio_table_reproduces_the_studys_cost_benefit_column():
    table = instance_ratios(study_frame(), G5, G4DN)
    assert len(table) == len(STUDY) and set(table["threads"]) == {1}  # the fewest: one client
    keyed = table.set_index(["model", "batch_size", "precision"])
    for model, batch, precision, tp_g5, tp_g4, p95_g5, p95_g4, _, _, benefit in STUDY:
        row = keyed.loc[(model, batch, precision)]
        assert round(row["cost_benefit_x"], 1) == benefit, (model, batch, precision)
        assert row["throughput_x"] == pytest.approx(tp_g5 / tp_g4)
        assert row["p95_x"] == pytest.approx(p95_g4 / p95_g5)  # above 1: G5's P95 is lower
        assert (row["throughput_a"], row["p95_ms_b"]) == (tp_g5, p95_g4)
    assert set(table.loc[table["model"] == "bert_base", "unit"]) == {"sentences/s"}
    assert set(table.loc[table["model"] == "resnet50", "unit"]) == {"images/s"}
    two = instance_ratios(study_frame(), G5, G4DN, threads=2)
    assert set(two["threads"]) == {2} and len(two) == len(STUDY)


def test_the_ratio_table_the_other_way_round_inverts_every_ratio():
    ahead, behind = (
        instance_ratios(study_frame(), G5, G4DN),
        instance_ratios(study_frame(), G4DN, G5),
    )
    for column in ("throughput_x", "p95_x", "cost_benefit_x"):
        assert (ahead[column] * behind[column]).round(9).eq(1.0).all()


def test_repeats_are_their_median_and_failed_rows_are_left_out():
    frame = study_frame()
    first = frame.iloc[[0]]
    again = first.assign(inferences_per_s=first["inferences_per_s"] * 3)
    failed = first.assign(status="failed", inferences_per_s=1.0)
    table = instance_ratios(pd.concat([frame, again, failed]), G5, G4DN)
    row = table.set_index(["model", "batch_size", "precision"]).loc[("bert_base", 32, "fp32")]
    assert row["throughput_a"] == pytest.approx(723 * 2)  # median of 723 and 2169


def test_instance_types_are_dearest_first():
    frame = study_frame()
    assert instance_types(frame) == [G5, G4DN]
    cheap = frame.assign(price_per_hour=frame["price_per_hour"].where(frame["instance"] != G5, 0.5))
    assert instance_types(cheap) == [G4DN, G5]
    assert instance_types(frame.assign(status="failed")) == []


def test_the_ratio_section_says_the_range_and_shows_both_sides():
    text = to_markdown(ratio_section(study_frame(), G5, G4DN).blocks)
    assert f"## {G5} over {G4DN}" in text
    assert f"| throughput {G5} | throughput {G4DN} | throughput x |" in text
    assert f"| $/M {G5} | $/M {G4DN} | cost benefit x |" in text
    assert "3.67x" in text  # BERT b32 fp32: $2.2 / $0.6, the study's "3.7X"
    assert "cost benefit 0.83x to 3.67x" in text and "at 1 client thread(s)" in text
    nothing = ratio_section(study_frame(), G5, "p3.2xlarge")
    assert "No configuration ran ok on both" in to_markdown(nothing.blocks)


def test_throughput_is_in_the_models_unit():
    frame = study_frame()
    assert throughput_unit(frame[frame["model"] == "bert_base"]) == "sentences/s"
    assert throughput_unit(frame[frame["model"] == "resnet50"]) == "images/s"
    assert throughput_unit(frame) == "inferences/s"  # two tasks: no single unit
    assert throughput_unit(frame.drop(columns=["task"])) == "inferences/s"


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The matplotlib figures the plots make, kept open instead of turned into PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    made: list[Any] = []
    monkeypatch.setattr(report_plots, "figure_png", lambda figure: made.append(figure) or b"")
    yield made
    import matplotlib.pyplot as plt

    plt.close("all")


def _thread_sweep() -> pd.DataFrame:
    """bert_tiny on two instances, two precisions, batch 1/8, threads 1-4."""
    rows = []
    for instance, speed in (("cpu-g5", 2.0), ("cpu-g4dn", 1.0)):
        for precision in ("fp32", "amp_bf16"):
            for batch in (1, 8):
                for threads in (1, 2, 3, 4):
                    service = batch / speed
                    rows.append(
                        _row(
                            "bert_tiny", instance, precision, batch, threads,
                            p95=service * threads, inferences_per_s=1000 * speed * batch**0.5,
                            usd_per_million_inferences=1 / speed,
                        )
                    )  # fmt: skip
    return pd.DataFrame(rows)


def test_the_p95_curves_are_a_panel_per_instance_and_precision_a_curve_per_batch(figures):
    frame = _thread_sweep()
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
    frame = _thread_sweep()
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


def test_the_report_of_a_thread_sweep_has_every_plot_and_the_ratio_table():
    frame = _thread_sweep()
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
    frame = _thread_sweep().drop(columns=["latency_ms_p95"])
    assert "bert_tiny-throughput-vs-p95.png" not in build_report(frame, "old", None).images


@pytest.mark.parametrize(
    ("given", "expected"),
    [([], None), (["ratio=off"], "off"), (["ratio=a/b"], ("a", "b")), (["x=1"], None)],
)
def test_the_ratio_option_parses(given, expected):
    from bench.cli import _ratio_option

    assert _ratio_option(given) == expected


@pytest.mark.parametrize("bad", ["g5", "g5/", "/g4dn", "g5/g5", "a/b/c"])
def test_a_malformed_ratio_is_one_line_naming_the_form(bad):
    from bench.cli import _ratio_option

    with pytest.raises(ConfigError) as caught:
        _ratio_option([f"ratio={bad}"])
    message = str(caught.value)
    assert "\n" not in message and "INSTANCE_A/INSTANCE_B" in message and bad in message


def test_the_pair_is_automatic_for_two_instance_types_and_checked_when_named():
    from bench.cli import _ratio_pair

    frame = study_frame()
    assert _ratio_pair(None, frame) == (G5, G4DN)  # the dearer over the cheaper
    assert _ratio_pair((G4DN, G5), frame) == (G4DN, G5)
    assert _ratio_pair("off", frame) is None
    three = pd.concat([frame, frame.iloc[:1].assign(instance="p3.2xlarge")])
    assert _ratio_pair(None, three) is None  # which two? ratio=A/B says
    with pytest.raises(ConfigError) as caught:
        _ratio_pair(("g5.4xlarge", "g4dn.xlarge"), frame)
    assert "g4dn.xlarge has no ok rows here (has: g5.4xlarge, g4dn.4xlarge)" in str(caught.value)
