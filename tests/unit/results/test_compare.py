"""bench.results.compare: matched configurations of two sweeps, metric by metric, with an
interval over runs (repeats) or within one run (its requests' samples from the store, its
row's throughput interval); verdicts beyond noise, regressions beyond the threshold, the
config keys that differ, and the text `bench compare` prints."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bench.results.compare import (
    Z95,
    _verdict,
    compare,
    comparison_text,
    config_differences,
    latency_change,
    rate_change,
    sample_latencies,
)
from bench.store import LocalStore, SweepPaths
from tests.unit.results.compare_rows import run_row, runs

NO_CHANGE = "no significant change"
WORDS = ("slower", "faster")


def test_compare_over_runs_gives_intervals_verdicts_and_resolvable_change() -> None:
    base = pd.DataFrame(runs("a", [40.0, 40.3, 39.8]) + runs("a", [40.1, 40.0, 40.2], threads=8))
    new = pd.DataFrame(runs("b", [44.1, 43.9, 44.2]) + runs("b", [40.2, 39.9, 40.1], threads=8))
    result = compare(None, base, None, new)  # type: ignore[arg-type]  # runs: no samples read
    table = result.table.set_index(["threads", "metric"])
    slow = table.loc[(4, "latency_ms_p50")]
    assert slow["verdict"] == "slower" and slow["regression"] and slow["interval_over"] == "runs"
    assert slow["runs_base"] == 3 and slow["runs_new"] == 3 and slow["n_base"] == 3000
    assert slow["base"] == pytest.approx((40.0 * 40.3 * 39.8) ** (1 / 3))
    assert 0.01 <= slow["resolvable_change"] < 0.05
    same = table.loc[(8, "latency_ms_p50")]
    assert same["verdict"] == NO_CHANGE and not same["regression"]
    assert table.loc[(4, "inferences_per_s"), "verdict"] == "slower"
    assert table.loc[(4, "usd_per_million_inferences"), "verdict"] == "dearer"
    assert result.exit_code == 1
    assert any("intervals over runs" in note and "3 vs 3" in note for note in result.notes)


def test_runs_that_cannot_resolve_the_threshold_say_so() -> None:
    base = pd.DataFrame(runs("a", [40.0, 46.0, 36.0]))
    new = pd.DataFrame(runs("b", [44.0, 37.0, 47.0]))
    result = compare(None, base, None, new, threshold=0.05)  # type: ignore[arg-type]
    p50 = result.table.set_index("metric").loc["latency_ms_p50"]
    assert p50["verdict"] == NO_CHANGE and p50["resolvable_change"] > 0.2
    assert any("cannot resolve a 5% change" in note for note in result.notes)
    assert result.exit_code == 0


def test_a_latency_from_too_few_requests_in_any_run_is_insufficient() -> None:
    rows = runs("a", [40.0, 40.1, 40.2])
    rows[1] = run_row("a", 40.1, repeat=1, n=50)  # P99 needs 100 requests in every run
    result = compare(None, pd.DataFrame(rows), None, pd.DataFrame(runs("b", [40.0, 40.2, 40.1])))  # type: ignore[arg-type]
    verdicts = result.table.set_index("metric")["verdict"]
    assert verdicts["latency_ms_p99"] == "insufficient data"
    assert verdicts["latency_ms_p50"] == NO_CHANGE


def test_compare_intervals_hold_no_change_and_find_a_known_shift():
    rng = np.random.default_rng(1)
    # serially dependent latencies: an AR(1) around 5 ms
    noise = np.zeros(3000)
    for i in range(1, noise.size):
        noise[i] = 0.8 * noise[i - 1] + rng.normal(0, 0.1)
    base = 5e6 * np.exp(noise)
    same = latency_change(base, base.copy(), 0.5)
    assert same[0] == 0 and same[1] <= 0 <= same[2]
    shifted = latency_change(base, base * 1.1, 0.99)
    assert shifted[1] > 0 and shifted[0] == pytest.approx(0.1, abs=1e-9)
    assert latency_change(base[:50], base[:50], 0.99) is None  # P99 needs 100 requests


def test_config_differences_name_the_dotted_keys_that_differ_and_skip_bookkeeping():
    base = {"engine": {"name": "hf", "options": {"attn": "sdpa"}}, "threads": 4, "sweep_id": "a"}
    new = {"engine": {"name": "hf", "options": {"attn": "eager", "cache": True}}, "threads": 4}
    new |= {"sweep_id": "b", "cell_id": "x", "axes": {"threads": 4}}
    assert config_differences(json.dumps(base), json.dumps(new)) == [
        "engine.options.attn",
        "engine.options.cache",
    ]
    assert config_differences(None, json.dumps({"seed": 1})) == ["seed"]
    assert config_differences(json.dumps(base), json.dumps(base)) == []


def test_a_rates_change_combines_both_rows_intervals_on_the_log_scale():
    base = pd.Series({"rate": 100.0, "rate_lo": 90.0, "rate_hi": 110.0})
    new = pd.Series({"rate": 110.0, "rate_lo": 99.0, "rate_hi": 121.0})
    point, low, high = rate_change(base, new, "rate")
    assert point == pytest.approx(0.1)
    half = Z95 * math.sqrt(
        ((math.log(110) - math.log(90)) / (2 * Z95)) ** 2
        + ((math.log(121) - math.log(99)) / (2 * Z95)) ** 2
    )
    assert (low, high) == pytest.approx((1.1 * math.exp(-half) - 1, 1.1 * math.exp(half) - 1))
    assert low < 0.1 < high
    for missing in ("rate_lo", "rate_hi"):
        assert rate_change(base.drop(missing), new, "rate") is None
    assert rate_change(base, new.replace(99.0, 0.0), "rate") is None


@pytest.mark.parametrize(
    ("change", "verdict"),
    [
        ((0.10, 0.05, 0.15), "slower"),
        ((-0.10, -0.15, -0.05), "faster"),
        ((0.10, -0.01, 0.2), NO_CHANGE),  # the interval holds no change
        ((0.005, 0.001, 0.009), NO_CHANGE),  # significant, but under the 1 % noise floor
        (None, "insufficient data"),
    ],
)
def test_a_verdict_needs_an_interval_past_zero_and_a_change_past_the_noise(change, verdict):
    assert _verdict(change, WORDS, 0.01) == verdict


def test_sample_latencies_are_ok_first_stage_requests_in_send_order():
    table = pa.table(
        {
            "sent_ns": [30, 10, 20, 40, 50],
            "scheduled_ns": [25, 10, 5, 40, 50],
            "latency_ns": [300, 100, 200, 400, 500],
            "ok": [True, True, True, False, True],
            "stage": [0, 0, 0, 0, 1],
        }
    )
    assert sample_latencies(table).tolist() == [100, 200, 300]
    # the service time: each less its wait from the scheduled arrival to its send
    assert sample_latencies(table, service=True).tolist() == [100, 185, 295]


def _with_samples(store: LocalStore, row: dict, latencies_ms: np.ndarray) -> dict:
    """`row` with a samples file of these latencies (sent 1 ms apart) in the store."""
    path = SweepPaths(row["sweep_id"]).samples(row["cell_id"], row["attempt_id"])
    sent = np.arange(latencies_ms.size, dtype=np.int64) * 1_000_000
    latency = (latencies_ms * 1e6).astype(np.int64)
    store.write_table(
        path, pa.table({"sent_ns": sent, "latency_ns": latency, "stage": [0] * sent.size})
    )
    return row


def test_one_run_a_side_is_compared_on_its_requests_read_from_the_store(tmp_path):
    store = LocalStore(str(tmp_path))
    rng = np.random.default_rng(5)
    base_ms = 40 * np.exp(rng.normal(0, 0.05, 2000))
    new_ms = 1.2 * 40 * np.exp(rng.normal(0, 0.05, 2000))
    base = _with_samples(store, run_row("a", 40.0, n=2000), base_ms)
    new = _with_samples(store, run_row("b", 48.0, n=2000), new_ms)
    result = compare(store, pd.DataFrame([base]), store, pd.DataFrame([new]))
    table = result.table.set_index("metric")
    p50 = table.loc["latency_ms_p50"]
    assert p50["verdict"] == "slower" and p50["regression"] and p50["interval_over"] == "requests"
    assert p50["change_lo"] < 0.2 < p50["change_hi"] and (p50["n_base"], p50["n_new"]) == (
        2000,
        2000,
    )
    assert table.loc["inferences_per_s", "verdict"] == "slower"  # 4 / 48 ms against 4 / 40 ms
    assert result.exit_code == 1
    assert any("one run per side for 1 configuration(s)" in note for note in result.notes)


def test_unmatched_configurations_are_named_and_failed_rows_never_compared():
    base = pd.DataFrame(runs("a", [40.0, 40.1]) + runs("a", [40.0, 40.2], threads=2))
    failed = run_row("b", 400.0, threads=2) | {"status": "failed"}
    new = pd.DataFrame([*runs("b", [40.1, 40.0]), failed, *runs("b", [40.0, 40.1], threads=16)])
    result = compare(None, base, None, new)  # type: ignore[arg-type]
    assert result.only_base == ["sleep-t2-s40"] and result.only_new == ["sleep-t16-s40"]
    assert set(result.table["threads"]) == {4} and result.exit_code == 0


def test_the_text_lists_each_metric_what_differs_and_the_gates_line():
    base = pd.DataFrame(runs("a", [40.0, 40.3, 39.8]))
    new = pd.DataFrame(runs("b", [44.1, 43.9, 44.2], service_ms=40.0))
    new["config_json"] = new["config_json"].str.replace('"seed": 0', '"seed": 7')
    result = compare(None, base, None, new)  # type: ignore[arg-type]
    text = comparison_text(result, 0.05)
    assert "latency_ms_p50" in text and "3v3" in text and "slower" in text
    assert "configs differ in: seed" in text
    assert text.splitlines()[-1].endswith("regression(s) beyond 5% with 95% confidence")
    nothing = compare(None, base, None, pd.DataFrame(runs("b", [40.0], threads=2)))  # type: ignore[arg-type]
    assert comparison_text(nothing, 0.05).startswith("no cells of BASE and NEW match (model, ")
