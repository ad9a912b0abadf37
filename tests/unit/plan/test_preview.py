"""bench.plan.preview: `bench plan`'s report (per cell its decision, per instance type the
sweep's own hours and dollars), its summary and table as text, and `bench fit`'s rows, which
never offer what `plan` would refuse."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bench.measure.scenarios import SCENARIOS
from bench.plan import preview
from bench.plan.feasibility import FitRow, decide
from bench.plan.grid import plan_from_overrides
from bench.plan.history import CellOverhead
from bench.plan.manifest import Plan
from bench.plan.memory_estimate import given_parameters
from bench.plan.preview import fit_rows

OVERHEAD = CellOverhead(10.0, "given for the test")
NEURON = "inf2.xlarge has AWS Neuron accelerators"


@pytest.fixture(scope="module")
def plan() -> Plan:
    """Six sleep cells: two threads on each of three instance types, one of which (Neuron)
    no engine runs; a dotted axis with two values."""
    return plan_from_overrides(
        [
            "engine=sleep",
            "grid.axes.instance=[local-cpu,inf2.xlarge,g5.xlarge]",
            "grid.axes.threads=[1,2]",
            "++grid.axes={engine.service_ms:[1.0,2.0]}",
        ]
    )


@pytest.fixture(scope="module")
def report(plan: Plan) -> dict:
    return preview.plan_report(plan, OVERHEAD)


def test_the_report_gives_each_cell_its_axes_and_decision(plan, report):
    assert len(report["cells"]) == len(plan.cells) == 12
    assert report["varied"] == ["engine.service_ms"]
    first = report["cells"][0]
    assert first["cell_id"] == plan.cells[0].cell_id and first["engine.service_ms"] == 1.0
    assert first["decision"] == "run" and first["reason"] == ""
    neuron = [c for c in report["cells"] if c["instance"] == "inf2.xlarge"]
    assert {c["decision"] for c in neuron} == {"unsupported"}
    assert all(c["reason"].startswith(NEURON) for c in neuron)
    assert report["decisions"] == {"run": 8, "unsupported": 4}  # in the order they print


def test_only_cells_that_run_cost_hours_and_dollars(plan, report):
    assert set(report["per_instance"]) == {"local-cpu", "g5.xlarge"}
    g5 = [c for c in plan.cells if c.instance.type == "g5.xlarge"]
    least = sum(OVERHEAD.seconds + SCENARIOS[c.scenario.name].seconds(c.scenario)[0] for c in g5)
    most = sum(OVERHEAD.seconds + SCENARIOS[c.scenario.name].seconds(c.scenario)[1] for c in g5)
    entry = report["per_instance"]["g5.xlarge"]
    assert entry["cells"] == 4
    assert entry["hours"] == round(least / 3600, 3) and entry["hours_max"] == round(most / 3600, 3)
    assert entry["usd"] == round(least / 3600 * g5[0].price_per_hour, 2)
    assert report["hours_total"] >= entry["hours"] and report["usd_total_max"] >= entry["usd_max"]
    assert (report["cell_overhead_s"], report["cell_overhead_source"]) == (
        10.0,
        "given for the test",
    )


def test_the_summary_is_a_screenful_with_the_first_reasons(report, monkeypatch):
    monkeypatch.setattr(preview, "SUMMARY_REASONS", 3)  # fewer than the 4 unsupported cells
    lines = preview.plan_summary(report).splitlines()
    assert lines[0].endswith(": 12 cells of grid adhoc, executor local")
    assert "  instance: local-cpu, inf2.xlarge, g5.xlarge" in lines
    assert "  engine.service_ms: 1.0, 2.0" in lines
    assert "decisions: run 8, unsupported 4" in lines
    reasons = [line for line in lines if line.startswith("unsupported: ")]
    assert len(reasons) == preview.SUMMARY_REASONS
    assert "... and 1 more: cells=true lists them all" in lines
    assert lines[-1].startswith("total: $") and " instance-minutes" in lines[-1]


def test_the_cell_table_has_a_line_per_cell_then_every_reason(report):
    lines = preview.cell_table(report).splitlines()
    assert lines[0].split()[:2] == ["index", "model"] and "engine.service_ms" in lines[0]
    assert len(lines) == 1 + 12 + 4
    assert all(line.startswith("unsupported: ") for line in lines[13:])


def test_format_plan_gives_json_the_summary_or_both(report):
    assert json.loads(preview.format_plan(report, "json")) == json.loads(json.dumps(report))
    summary = preview.format_plan(report, "text")
    assert summary.endswith("cells=true; all of it as JSON: format=json")
    both = preview.format_plan(report, "text", cells=True)
    assert both.startswith(preview.plan_summary(report)) and "index" in both


def test_a_table_is_right_aligned_under_its_headings_with_blanks_for_nothing():
    rows = [{"a": 1, "bb": None}, {"a": 12345, "bb": "x"}]
    assert preview._table(rows, ["a", "bb"]).splitlines() == [
        "    a  bb",
        "    1    ",
        "12345   x",
    ]
    assert preview._table([], ["a"]) == "(none)"


def test_an_axis_with_many_values_is_named_up_to_a_limit():
    cells = [{"threads": t} for t in range(1, 12)] + [{"threads": None}]
    line = preview._values_line("threads", cells)
    assert line == "  threads: 1, 2, 3, 4, 5, 6, 7, 8 and 3 more"


@pytest.mark.parametrize("engine", ["hf", "accelerate", "deepspeed"])
def test_fit_offers_nothing_plan_would_call_unsupported(catalog, engine):
    cell = plan_from_overrides(["model=gpt_neox_20b", "precision=fp16", f"engine={engine}"]).cells[
        0
    ]
    rows = fit_rows(cell, list(catalog.values()), 0.2, (1, 2, 4, 8))
    assert rows
    for row in rows:
        planned = dataclasses.replace(
            cell, instance=catalog[row.instance], tp_degree=row.partitions
        )
        outcome, reason = decide(planned)
        assert outcome != "unsupported", (row.instance, row.partitions, reason)
    if engine == "hf":  # one device only
        assert {row.partitions for row in rows} == {1}
    else:
        assert max(row.partitions for row in rows) > 1


def test_fit_a_bare_lbme_gives_the_guides_candidates(catalog):
    """Seed 000: "if the LBME is 30 GB": one GPU of p4d/p4de, or 2-way on p3.8xlarge and
    g5.12xlarge."""
    params = given_parameters(None, 30, "fp16")
    assert params == 15_000_000_000
    cell = plan_from_overrides(["precision=fp16", "engine=accelerate"]).cells[0]
    rows = {
        (r.instance, r.partitions): r
        for r in fit_rows(cell, list(catalog.values()), 0.2, (1, 2, 4, 8), params)
    }
    assert rows[("p4d.24xlarge", 1)].lbme_gb == 30.0
    assert rows[("p4d.24xlarge", 1)].lmme_gb == pytest.approx(1.15 * 30)
    assert rows[("p4d.24xlarge", 1)].fit == rows[("p4de.24xlarge", 1)].fit == "fits"
    assert rows[("g5.12xlarge", 2)].fit == "fits"
    assert rows[("p3.8xlarge", 2)].fit in ("fits", "borderline")
    assert rows[("g5.12xlarge", 1)].fit == "no"


def test_fit_rows_print_as_json_or_a_table_under_a_header(catalog):
    cell = plan_from_overrides(["precision=fp16", "engine=accelerate"]).cells[0]
    rows = fit_rows(cell, [catalog["g5.12xlarge"]], 0.2, (1, 2), given_parameters(None, 30, "fp16"))
    parsed = json.loads(preview.format_fit(rows, "json", "ignored"))
    assert [(r["instance"], r["partitions"]) for r in parsed] == [
        (r.instance, r.partitions) for r in rows
    ]
    text = preview.format_fit(rows, "text", "fit for 30 GB").splitlines()
    assert text[0] == "fit for 30 GB"
    assert text[1].split() == list(FitRow.__dataclass_fields__)
    assert len(text) == 2 + len(rows)
