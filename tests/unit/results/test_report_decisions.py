"""bench.results.report_decisions: the comparison with a base sweep (its table, verdicts and
plot), the fleet section's answer, and seed 004's ratio table of one instance type over
another, checked on the study's own table."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.results.compare import Comparison
from bench.results.document import to_markdown
from bench.results.report_decisions import (
    comparison_section,
    fleet_section,
    instance_ratios,
    instance_types,
    ratio_section,
)
from tests.unit.results.report_rows import G4DN, G5, STUDY, study_frame


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


def _comparison(changes: dict[int, float]) -> Comparison:
    records = []
    for batch, change in changes.items():
        for metric in ("latency_ms_p50", "latency_ms_p99", "inferences_per_s"):
            worse = change if metric != "inferences_per_s" else -change
            verdict = "slower" if worse > 0.02 else "no significant change"
            records.append(
                {
                    "model": "bert_base", "engine": "hf", "precision": "fp32",
                    "batch_size": batch, "threads": 1, "instance": "g5.xlarge",
                    "metric": metric, "change": worse, "change_lo": worse - 0.01,
                    "change_hi": worse + 0.01, "verdict": verdict,
                    "regression": verdict == "slower" and worse > 0.05, "config_differs": "",
                }
            )  # fmt: skip
    return Comparison(pd.DataFrame(records), only_base=["gone"])


def test_the_comparison_section_says_regressions_per_cell_and_draws_them():
    section = comparison_section(_comparison({1: 0.10, 8: 0.0}), "base", threshold=0.05)
    text = to_markdown(section.blocks)
    assert "## Compared with base" in text and "**2 regression(s)**" in text  # P50 and P99
    assert "+10.0% (slower)" in text and "+0.0% (no significant change)" in text
    assert "without a match: gone" in text
    (name, png) = next(iter(section.images.items()))
    alt = "The relative change of P50, P99 and throughput per matched configuration against base"
    assert f"![{alt}, each with its 95% interval.]({name})" in text  # words, not the file name
    assert png.startswith(b"\x89PNG")


def test_a_comparison_that_matched_nothing_says_so_and_draws_nothing():
    section = comparison_section(Comparison(pd.DataFrame()), "base", threshold=0.05)
    assert to_markdown(section.blocks).endswith(
        "No cell of this sweep matches one of the base sweep.\n"
    )
    assert section.images == {}


def test_configs_that_differ_are_named_and_no_regression_is_said_plainly():
    records = _comparison({1: 0.0}).table.assign(config_differs="engine.options.attn")
    text = to_markdown(comparison_section(Comparison(records), "b", threshold=0.05).blocks)
    assert "No regression beyond 5% with 95% confidence." in text
    assert "Configs differ in: engine.options.attn." in text


def _fleet(usd: list[float | None], spot: list[float | None]) -> pd.DataFrame:
    rows = []
    for n, (bill, spot_bill) in enumerate(zip(usd, spot, strict=True)):
        rows.append(
            {
                "model": "bert_base", "engine": "hf", "precision": "fp16", "batch_size": 8,
                "threads": 1, "instance": f"g5.{n + 1}xlarge", "service_p99_ms": 20.0,
                "replica_rate_per_s": 100.0, "replicas": 4, "instances": n + 2,
                "usd_per_month": bill, "spot_usd_per_month": spot_bill, "note": "",
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def test_the_fleet_section_answers_with_the_cheapest_and_hides_an_empty_spot_column():
    section = fleet_section(_fleet([1460.0, 2920.0], [None, None]), 400.0, 1.5, 50.0)
    text = to_markdown(section.blocks)
    assert "## Fleet for 400 inferences/s x peak_to_mean 1.5 (P99 <= 50 ms)" in text
    assert (
        "Cheapest: **bert_base fp16 b8 t1 g5.1xlarge**, 2 instance(s), $1,460.00 per month" in text
    )
    assert "spot_usd_per_month" not in text and set(section.images) == {"fleet-cost.png"}


def test_a_fleet_nobody_can_size_has_no_plot_and_says_why():
    unmet = fleet_section(_fleet([None], [None]), 400.0, 1.0, 5.0)
    assert "No configuration meets the SLA at any fleet size." in to_markdown(unmet.blocks)
    assert unmet.images == {}
    empty = fleet_section(pd.DataFrame(), 400.0, 1.0, 5.0)
    assert "No ok cell with at least 100 measured requests." in to_markdown(empty.blocks)
