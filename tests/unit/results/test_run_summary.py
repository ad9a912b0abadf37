"""bench.results.run_summary: `bench run`'s short table of one row, its headline figures in
aligned columns, a line for each thing that qualifies them, and one line for a row that is not
ok. (The verb's own output around it: tests/unit/cli/test_run_verbs.py.)"""

from __future__ import annotations

from bench.results.run_summary import failure_line, run_summary

OK_ROW = {
    "status": "ok",
    "cell_id": "bert_tiny-hf-fp32-b1",
    "n": 1200,
    "latency_ms_p50": 2.3456789,
    "latency_ms_p99": 4.0,
    "latency_ms_p99_lo": 3.5,
    "latency_ms_p99_hi": 4.75,
    "inferences_per_s": 421.0,
    "load_s": 0.8,
    "usd_per_million_inferences": 0.1266,
    "stability": "stable",
    "stability_reason": "no drift",
}


def test_an_ok_row_is_its_headline_figures_in_aligned_columns():
    lines = run_summary(OK_ROW).splitlines()
    assert lines[0] == "cell bert_tiny-hf-fp32-b1"
    assert lines[1].split() == [
        "status", "n", "p50_ms", "p99_ms", "p99", "95%", "CI", "inf/s", "load_s", "$/M",
        "inf", "stability",
    ]  # fmt: skip
    assert lines[2].split() == [
        "ok",
        "1200",
        "2.346",
        "4",
        "3.5-4.75",
        "421",
        "0.8",
        "0.1266",
        "stable",
    ]
    # each value ends under the end of its heading
    assert lines[1].index("p50_ms") + len("p50_ms") == lines[2].index("2.346") + len("2.346")
    assert len(lines) == 3  # a stable row's reason only says it was: not shown


def test_what_qualifies_the_figures_is_a_line_each():
    row = OK_ROW | {
        "stability": "drifting",
        "stability_reason": "P50 rose 12 %\nin the second half",
        "percentile_flags": "p99: n<1000",
        "host_busy_reason": "2 other processes",
        "warnings": "borderline memory",
    }
    assert run_summary(row).splitlines()[3:] == [
        "  percentile flags: p99: n<1000",
        "  stability: P50 rose 12 % in the second half",
        "  host busy: 2 other processes",
        "  planner warnings: borderline memory",
    ]


def test_generation_figures_join_the_table_when_the_row_has_them():
    header = run_summary(OK_ROW | {"ttft_ms_p99": 12.0, "tpot_ms_p99": 3.0}).splitlines()[1]
    assert header.split()[-2:] == ["ttft_p99_ms", "tpot_p99_ms"]
    assert "ttft_p99_ms" not in run_summary(OK_ROW)


def test_an_interval_end_too_few_requests_cannot_give_is_a_question_mark():
    open_above = OK_ROW | {"latency_ms_p99_hi": None}
    assert "3.5-?" in run_summary(open_above).splitlines()[2]
    neither = OK_ROW | {"latency_ms_p99_lo": None, "latency_ms_p99_hi": None}
    assert "-?" not in run_summary(neither) and "?-" not in run_summary(neither)


def test_a_row_that_is_not_ok_is_one_line_with_its_error_on_it():
    row = {
        "status": "failed",
        "cell_id": "c1",
        "error_class": "OutOfMemoryError",
        "error": "CUDA out of memory.\n  Tried to allocate 2 GiB",
    }
    assert run_summary(row) == failure_line(row)
    assert (
        failure_line(row)
        == "failed: c1: OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB"
    )
    assert failure_line({"status": "timeout", "cell_id": "c2"}) == "timeout: c2: no error recorded"
