"""`bench compare`: a sweep against itself and against a known 10% slowdown (sleep engine)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli

# 40 ms a request: a 10% slowdown (4 ms) stands above the scheduling jitter of a busy CI host
# even in the P99 (at 10 ms, a loaded host's tail hid it in one cell of two)
SLEEP_GRID = [
    "engine=sleep",
    "scenario.min_requests=1000",
    "scenario.min_duration_s=1",
    "scenario.max_duration_s=15",
    "grid.axes.threads=[4,8]",
]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("compare")
    for sweep_id, service_ms in (("base", 40), ("slower", 44)):
        proc = run_cli(
            ["sweep", *SLEEP_GRID, f"engine.service_ms={service_ms}", f"sweep_id={sweep_id}"],
            work,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    return work


def test_a_sweep_against_itself_has_no_significant_change(sweeps: Path) -> None:
    proc = run_cli(["compare", "base", "base", "format=json"], sweeps)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 2 * 5  # two cells x P50, P90, P99, throughput, $/M
    assert {r["verdict"] for r in rows} == {"no significant change"}


def test_a_known_10_percent_slowdown_is_slower_and_fails_the_gate(sweeps: Path) -> None:
    # the host check (exit 3 when the two sweeps' hosts were unequally loaded) is its own
    # tests' business: this one holds the verdicts
    proc = run_cli(["compare", "base", "slower", "threshold=0.05", "host_check=off"], sweeps)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "configs differ in: engine.options.service_ms" in proc.stdout
    table = pd.read_parquet(sweeps / "results" / "slower" / "compared" / "base.parquet")
    p50 = table[table["metric"] == "latency_ms_p50"]
    assert len(p50) == 2 and (p50["verdict"] == "slower").all(), p50
    assert p50["change"].between(0.07, 0.12).all()  # 44 / 40 less the fixed overhead
    # A P99 from one window of ~1000 requests rests on ~10 of them: on a busy CI host one
    # cell's tail moved by more than 4 ms between the two sweeps and its interval held no
    # change. Unresolved is an honest answer there; the wrong direction never is.
    p99 = table[table["metric"] == "latency_ms_p99"]
    assert len(p99) == 2 and p99["verdict"].isin(["slower", "no significant change"]).all(), p99
    assert (p99["verdict"] == "slower").any() or (p99["change_hi"] > 0.05).all(), p99
    assert table["regression"].any()
    # the same comparison by URI, and with a threshold the slowdown does not pass
    uri = str(sweeps / "results" / "slower" / "aggregated.parquet")
    lenient = run_cli(["compare", "base", uri, "threshold=0.5", "host_check=off"], sweeps)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["base", "nope"], "sweep="),
        (["base", "base", "threshold=2"], "threshold="),
        (["../outside", "base"], "sweep_id="),  # never a path out of the store
    ],
)
def test_bad_compare_input_is_one_line(sweeps: Path, args: list[str], key: str) -> None:
    proc = run_cli(["compare", *args], sweeps)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert key in proc.stderr


def test_capacity_sizes_a_fleet_from_the_measured_latencies(sweeps: Path) -> None:
    proc = run_cli(["capacity", "base", "rate=600", "sla.p99_ms=120", "format=json"], sweeps)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 2
    for row in rows:  # 600/s at ~40 ms: at least 24 busy slots, `threads` per replica
        assert row["replicas"] * row["threads"] >= 24 and row["instances"] == row["replicas"]
        assert row["usd_per_month"] == pytest.approx(row["usd_per_hour"] * 730, rel=1e-6)
    text = run_cli(["capacity", "base", "rate=600", "sla.p99_ms=120"], sweeps).stdout
    assert "M/G/c" in text and "cheapest:" in text and "per month" in text
    missing = run_cli(["capacity", "base", "sla.p99_ms=40"], sweeps)
    assert missing.returncode == 2 and "rate=" in missing.stderr


def test_the_report_carries_the_comparison_and_the_fleet(sweeps: Path) -> None:
    proc = run_cli(
        ["report", "slower", "sla.p99_ms=120", "compare=base", "threshold=0.05", "rate=600"],
        sweeps,
    )
    assert proc.returncode == 0, proc.stderr
    assert "## Compared with base" in proc.stdout and "regression(s)" in proc.stdout
    assert "## Fleet for 600 inferences/s (P99 <= 120 ms)" in proc.stdout
    folder = sweeps / "results" / "slower" / "report"
    assert (folder / "compared-with-base.png").stat().st_size > 0
    assert (folder / "fleet-cost.png").stat().st_size > 0
    bad = run_cli(["report", "slower", "rate=600"], sweeps)  # a fleet needs its SLA
    assert bad.returncode == 2 and "sla.p99_ms" in bad.stderr
