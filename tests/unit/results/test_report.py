"""The report: recommendation under an SLA, Pareto front, self-contained HTML with plots."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.results.document import to_markdown
from bench.results.report import build_report, pareto_front, recommend, repeat_spread


def _frame() -> pd.DataFrame:
    rows = []
    # (instance, precision, batch, p99 ms, inferences/s, $/M)
    for instance, precision, batch, p99, ips, usd in [
        ("g5.4xlarge", "fp32", 1, 6.0, 160.0, 2.8),
        ("g5.4xlarge", "fp32", 32, 44.0, 723.0, 0.62),
        ("g5.4xlarge", "fp16", 32, 37.0, 870.0, 0.52),
        ("g4dn.4xlarge", "fp32", 32, 208.0, 154.0, 2.17),
        ("g4dn.4xlarge", "fp16", 8, 23.0, 350.0, 0.96),
    ]:
        rows.append(
            {
                "model": "bert_base",
                "engine": "hf",
                "instance": instance,
                "precision": precision,
                "batch_size": batch,
                "threads": 1,
                "tp_degree": 1,
                "status": "ok",
                "latency_ms_p50": p99 * 0.8,
                "latency_ms_p95": p99 * 0.9,
                "latency_ms_p99": p99,
                "n": 1000,
                "inferences_per_s": ips,
                "usd_per_million_inferences": usd,
                "load_s": 2.0,
                "init_s": 0.1,
            }
        )
    rows.append({**rows[0], "status": "failed", "usd_per_million_inferences": None})
    return pd.DataFrame(rows)


def test_recommendation_is_the_cheapest_meeting_the_sla():
    best = recommend(_frame(), p99_ms=40.0)
    assert len(best) == 1
    assert best.iloc[0]["instance"] == "g5.4xlarge" and best.iloc[0]["precision"] == "fp16"
    tight = recommend(_frame(), p99_ms=10.0)
    assert tight.iloc[0]["batch_size"] == 1
    assert recommend(_frame(), p99_ms=1.0).empty
    assert recommend(_frame(), None).iloc[0]["usd_per_million_inferences"] == 0.52


def test_a_row_whose_outputs_differ_from_eager_is_never_recommended():
    frame = _frame().assign(quality=[None, None, "differs", None, "agrees", None])
    best = recommend(frame, p99_ms=40.0)  # the cheapest row meeting it computes otherwise
    assert best.iloc[0]["instance"] == "g4dn.4xlarge" and best.iloc[0]["precision"] == "fp16"


def test_pareto_front_drops_dominated_configurations():
    front = pareto_front(_frame())
    kept = set(zip(front.instance, front.precision, front.batch_size, strict=True))
    assert kept == {
        ("g5.4xlarge", "fp32", 1),
        ("g4dn.4xlarge", "fp16", 8),
        ("g5.4xlarge", "fp16", 32),
    }
    assert list(front.latency_ms_p99) == sorted(front.latency_ms_p99)


def test_report_is_self_contained_with_plots():
    report = build_report(_frame(), "s1", p99_ms=40.0)
    assert set(report.images) == {
        "bert_base-throughput-vs-p99.png",
        "bert_base-throughput-vs-p95.png",
        "bert_base-vs-batch-size.png",
        "bert_base-cost-vs-batch-size.png",
        "load-time-per-engine.png",
    }
    for data in report.images.values():
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert report.html.count("data:image/png;base64,") == 5
    assert "P99 &lt;= 40 ms" in report.html and "<table>" in report.html
    assert "## Recommendation (P99 <= 40 ms)" in report.markdown
    assert "(bert_base-vs-batch-size.png)" in report.markdown


@pytest.mark.parametrize("p99", [None, 40.0])
def test_report_with_only_failed_rows(p99):
    frame = _frame().assign(status="failed")
    report = build_report(frame, "s2", p99)
    assert report.images == {} and report.recommendations.empty


def test_the_sla_is_judged_on_the_upper_end_of_the_p99_interval():
    """fp16 b32 has P99 37 ms but an interval reaching 41 ms: under a 40 ms SLA it is not
    safe to recommend; with no interval (too few samples) the estimate decides."""
    frame = _frame()
    fp16 = (frame["precision"] == "fp16") & (frame["batch_size"] == 32)
    frame["latency_ms_p99_hi"] = frame["latency_ms_p99"] * 1.05
    frame.loc[fp16 & (frame["instance"] == "g5.4xlarge"), "latency_ms_p99_hi"] = 41.0
    best = recommend(frame, p99_ms=40.0)
    assert not (best["precision"].eq("fp16") & best["batch_size"].eq(32)).any()
    frame["latency_ms_p99_hi"] = None
    assert recommend(frame, p99_ms=40.0).iloc[0]["precision"] == "fp16"


def test_repeats_are_summarised_by_their_spread():
    frame = _frame()
    assert repeat_spread(frame.assign(config_id=None)).empty
    twice = pd.concat([frame.iloc[:1], frame.iloc[:1]], ignore_index=True)
    twice["config_id"] = "c1"
    twice.loc[1, "inferences_per_s"] = twice.loc[0, "inferences_per_s"] * 1.2
    others = frame.iloc[1:].assign(config_id=[f"once{i}" for i in range(len(frame) - 1)])
    spread = repeat_spread(pd.concat([twice, others]))
    assert list(spread["config_id"]) == ["c1"] and spread.iloc[0]["repeats"] == 2
    assert spread.iloc[0]["throughput_spread"] == pytest.approx(0.2 / 1.1)
    assert "## Repeats" in build_report(twice, "s3", None).markdown


def test_ramp_rows_get_a_latency_and_throughput_vs_concurrency_plot():
    stages = [
        {
            "concurrency": c,
            "n": 100,
            "errors": e,
            "p50_ms": p,
            "p99_ms": p * 1.1,
            "requests_per_s": r,
            "meets_sla": p * 1.1 <= 15,
        }
        for c, e, p, r in [(1, 0, 10, 98), (2, 0, 10, 196), (4, 0, 10, 390), (8, 3, 20, 391)]
    ]
    frame = _frame().assign(scenario="latency", stages_json=None, sla_p99_ms=None)
    frame.loc[0, ["scenario", "stages_json", "sla_p99_ms"]] = ["ramp", json.dumps(stages), 15.0]
    report = build_report(frame, "s4", None)
    assert report.images["bert_base-ramp.png"].startswith(b"\x89PNG")
    assert sum(name.endswith("-ramp.png") for name in report.images) == 1


def test_an_unbounded_or_unstable_row_is_never_the_recommendation_while_a_sure_one_meets():
    """Only the cheapest row meets a 40 ms SLA on its point estimate, and its P99 interval is
    open (too few requests): the bounded, stable, dearer row that meets it is recommended."""
    frame = _frame().assign(stability="stable")
    frame["latency_ms_p99_hi"] = frame["latency_ms_p99"] * 1.05
    cheap = (frame["precision"] == "fp16") & (frame["batch_size"] == 32)
    frame.loc[cheap, "latency_ms_p99_hi"] = None  # n too small to bound P99 from above
    best = recommend(frame, p99_ms=40.0).iloc[0]
    assert (best["precision"], best["batch_size"]) == ("fp16", 8)  # 23 ms, bounded 24.15
    assert best["standing"] == "recommended"
    frame.loc[cheap, "latency_ms_p99_hi"] = 38.0  # bounded now, but drifting
    frame.loc[cheap, "stability"] = "drifting"
    assert recommend(frame, p99_ms=40.0).iloc[0]["batch_size"] == 8
    # with nothing sure, the cheapest estimate is offered, marked with why
    frame["stability"] = "insufficient"
    weak = recommend(frame, p99_ms=40.0).iloc[0]
    assert weak["standing"].startswith("provisional") and "insufficient" in weak["standing"]


def test_when_nothing_meets_the_sla_the_nearest_miss_is_named_with_the_gap():
    from bench.results.report import nearest_misses

    frame = _frame().assign(stability="stable")
    frame["latency_ms_p99_hi"] = frame["latency_ms_p99"] * 1.1
    assert recommend(frame, p99_ms=5.0).empty
    miss = nearest_misses(frame, p99_ms=5.0).iloc[0]
    assert miss["batch_size"] == 1 and miss["misses_by_ms"] == pytest.approx(6.6 - 5.0)
    assert miss["misses_by"] == "+32%"
    report = build_report(frame, "s3", p99_ms=5.0)
    assert "nearest miss" in report.markdown and "+32%" in report.markdown


def test_the_fleet_section_names_the_cheapest_fleet_and_plots_the_bill():
    import numpy as np

    from bench.results.capacity import plan_fleet
    from bench.results.report_decisions import fleet_section

    rows = _frame().assign(
        cell_id=lambda f: [f"c{i}" for i in range(len(f))],
        price_per_hour=lambda f: [1.6 if i.startswith("g5") else 1.2 for i in f["instance"]],
        replicas_per_instance=1,
    )
    latencies = {
        cell: np.full(200, p99 / 1000 * 0.9)
        for cell, p99 in zip(rows["cell_id"], rows["latency_ms_p99"], strict=True)
    }
    fleet = plan_fleet(rows, latencies, rate=2000, p99_ms=100)
    section = fleet_section(fleet, 2000, 1.0, 100)
    text = to_markdown(section.blocks)
    assert "## Fleet for 2000 inferences/s (P99 <= 100 ms)" in text
    best = fleet.iloc[0]
    assert f"${best['usd_per_month']:,.2f} per month" in text
    assert "no fleet meets it" in text  # the 208 ms row cannot meet 100 ms
    assert "fleet-cost.png" in section.images
    # and in the report, before the plots, with its image inlined in the HTML
    report = build_report(_frame(), "s1", 100.0, [section])
    assert report.markdown.index("## Fleet") < report.markdown.index("## Plots")
    assert "fleet-cost.png" in report.images and report.html.count("<img") == len(report.images)


def _generation_frame() -> pd.DataFrame:
    """Two generation rows (one fast to first token, one cheap) beside an encoder row."""
    rows = _frame().iloc[:1].assign(stability="stable", latency_ms_p99_hi=7.0)
    gen = []
    for batch, ttft, tpot, usd in [(1, 20.0, 8.0, 3.0), (8, 90.0, 9.0, 0.5)]:
        gen.append(
            {
                **rows.iloc[0].to_dict(),
                "model": "opt_125m",
                "batch_size": batch,
                "latency_ms_p99": 300.0,
                "latency_ms_p99_hi": 320.0,
                "ttft_ms_p99": ttft,
                "tpot_ms_p99": tpot,
                "usd_per_million_inferences": usd,
                "usd_per_million_output_tokens": usd * 1e6 / 32 / 1e6,
            }
        )
    return pd.concat([rows, pd.DataFrame(gen)], ignore_index=True)


def test_ttft_and_tpot_targets_hold_generation_rows_only():
    from bench.results.report import Sla

    frame = _generation_frame()
    cheapest = recommend(frame, Sla(p99_ms=400.0))
    assert set(cheapest.model) == {"bert_base", "opt_125m"}
    assert cheapest.set_index("model").loc["opt_125m", "batch_size"] == 8
    fast_first_token = recommend(frame, Sla(p99_ms=400.0, ttft_ms=50.0)).set_index("model")
    assert fast_first_token.loc["opt_125m", "batch_size"] == 1  # b8's 90 ms TTFT misses
    assert "bert_base" in fast_first_token.index  # an encoder has no TTFT to hold it to
    assert "opt_125m" not in recommend(frame, Sla(tpot_ms=5.0)).model.tolist()
    # the tables show TTFT, TPOT and $/M output tokens once a row generated tokens
    assert {"ttft_ms_p99", "tpot_ms_p99", "usd_per_million_output_tokens"} <= set(cheapest)
    assert "ttft_ms_p99" not in recommend(_frame(), 40.0).columns
    report = build_report(frame, "g1", Sla(p99_ms=400.0, ttft_ms=50.0))
    assert "## Recommendation (P99 <= 400 ms, P99 TTFT <= 50 ms)" in report.markdown
    assert "usd_per_million_output_tokens" in report.markdown


def test_the_throughput_plot_marks_the_recommended_row_even_off_the_best_thread_line():
    """The plot draws the best thread count per batch size; the star is drawn at the
    recommended row wherever it is, with the SLA line (the image is checked to differ)."""
    from bench.results.report import plot_throughput_vs_p99

    frame = _frame().iloc[:5].assign(stability="stable", latency_ms_p99_hi=None)
    slower = frame.iloc[[1]].assign(threads=2, inferences_per_s=600.0, latency_ms_p99=30.0)
    both = pd.concat([frame, slower], ignore_index=True)
    chosen = recommend(both, 40.0)
    plain = plot_throughput_vs_p99(both, "bert_base")
    marked = plot_throughput_vs_p99(both, "bert_base", 40.0, chosen)
    assert plain[:8] == marked[:8] == b"\x89PNG\r\n\x1a\n" and plain != marked
