"""The noise guard: a comparison whose two sides ran on different or differently loaded hosts
exits 3 ("re-run") with one line saying why, never 1; the exit codes through the CLI."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.cli import main
from bench.results.compare_host import check_host
from tests.unit.results.compare_rows import run_row, runs, write_aggregate

BASE_P50S = [40.0, 40.2, 39.9]
SAME_P50S = [40.1, 39.9, 40.0]
SLOWER_P50S = [44.0, 44.2, 43.9]


def _frame(host: dict[str, Any] | None = None, p50s: list[float] = BASE_P50S) -> pd.DataFrame:
    return pd.DataFrame(runs("s", p50s, host=host))


def test_alike_hosts_pass_and_busy_alike_is_not_noisy() -> None:
    assert not check_host(_frame(), _frame()).rerun
    busy = {"host_other_cpus_mean": 1.0, "host_busy": True}  # a busy loop on both sides
    check = check_host(_frame(busy), _frame({**busy, "host_other_cpus_mean": 1.3}))
    assert not check.rerun and "other processes 1.00 vs 1.30 CPUs" in check.line()


@pytest.mark.parametrize(
    ("host", "said"),
    [
        ({"cpu_name": "AMD EPYC 7R13"}, "mismatched host: cpu_name"),
        ({"cpu_affinity": 1}, "mismatched host: cpu_affinity 2 (BASE) vs 1 (NEW)"),
        ({"host_other_cpus_mean": 0.6}, "noisy host: other processes used 0.05 CPUs (BASE)"),
        ({"host_steal_share": 0.08}, "noisy host: the hypervisor stole 0.0% (BASE) vs 8.0%"),
    ],
)
def test_a_host_difference_is_a_rerun(host: dict[str, Any], said: str) -> None:
    check = check_host(_frame(), _frame(host))
    assert check.rerun and said in check.line()
    assert check.line().startswith("host: re-run (exit 3): ") and "\n" not in check.line()


def test_rows_without_telemetry_fall_back_to_the_load_before_loading() -> None:
    before = {"host_other_cpus_mean": None, "cpus_busy_at_start": 0.0}
    after = {"host_other_cpus_mean": None, "cpus_busy_at_start": 1.0}
    assert check_host(_frame(before), _frame(after)).rerun
    bare = {"host_other_cpus_mean": None, "cpu_name": None, "cpu_count": None}
    assert not check_host(_frame(bare), _frame()).rerun  # unknown is not a difference


def _compare(
    tmp_path: Path,
    base: list[dict[str, Any]],
    new: list[dict[str, Any]] | None,
    *words: str,
) -> int:
    root = tmp_path / "results"
    write_aggregate(root, "base", base)
    if new is not None:
        write_aggregate(root, "new", new)
    args = ["compare", "base", *(["new"] if new is not None else []), *words]
    return main([*args, f"store.root={root}"])


def test_exit_0_when_nothing_regressed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = _compare(tmp_path, runs("base", BASE_P50S), runs("new", SAME_P50S))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "host: alike on both sides" in out and "no regression beyond 5%" in out
    table = pd.read_parquet(tmp_path / "results" / "new" / "compared" / "base.parquet")
    assert {"resolvable_change", "interval_over", "runs_base", "host_check"} <= set(table)
    assert (table["host_check"] == "ok").all()


def test_exit_1_on_a_regression(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = _compare(tmp_path, runs("base", BASE_P50S), runs("new", SLOWER_P50S))
    assert code == 1, capsys.readouterr().out


def test_exit_3_not_1_when_the_regression_was_measured_on_another_host(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    other = {"cpu_name": "AMD EPYC 7R13"}
    code = _compare(tmp_path, runs("base", BASE_P50S), runs("new", SLOWER_P50S, host=other))
    out = capsys.readouterr().out
    assert code == 3, out
    lines = [line for line in out.splitlines() if line.startswith("host: re-run (exit 3)")]
    assert len(lines) == 1 and "cpu_name Intel(R) Xeon(R) Processor (BASE) vs AMD" in lines[0]
    assert "not a verdict on this host (exit 3: re-run)" in out
    # the guard off (a deliberate comparison of two machines): the regression stands
    assert _compare(tmp_path, runs("base", BASE_P50S), None, "new", "host_check=off") == 1


def test_exit_3_when_one_side_ran_beside_a_busy_neighbour(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    loaded = {"host_other_cpus_mean": 1.0, "host_busy": True}
    code = _compare(tmp_path, runs("base", BASE_P50S), runs("new", SAME_P50S, host=loaded))
    out = capsys.readouterr().out
    assert code == 3 and "noisy host: other processes used 0.05 CPUs (BASE) vs 1.00" in out


def test_one_run_per_side_says_its_interval_is_within_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = _compare(tmp_path, [run_row("base", 40.0)], [run_row("new", 40.1)], "format=json")
    captured = capsys.readouterr()
    assert code == 0
    rows = pd.read_json(io.StringIO(captured.out))  # stdout stays JSON; the notes: stderr
    assert set(rows["interval_over"]) == {"requests"} and set(rows["runs_base"]) == {1}
    assert "intervals are within one run only" in captured.err
    assert "3.0 x at repeats=3" in captured.err and "host: alike" in captured.err


def test_one_interleaved_sweep_is_compared_by_its_ab_axis(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rows = [
        run_row("base", p50, repeat=k, service_ms=ms, axes={"engine.service_ms": ms}, index=i)
        for i, (k, ms, p50) in enumerate(
            [(0, 40, 40.0), (0, 44, 44.0), (1, 40, 40.2), (1, 44, 44.1), (2, 40, 39.9)]
        )
    ]
    rows.append(
        run_row("base", 43.9, repeat=2, service_ms=44, axes={"engine.service_ms": 44}, index=5)
    )
    assert _compare(tmp_path, rows, None, "ab=engine.service_ms") == 1
    out = capsys.readouterr().out
    assert "configs differ in: engine.options.service_ms" in out
    saved = tmp_path / "results" / "base" / "compared" / "ab-engine.service_ms.parquet"
    assert pd.read_parquet(saved)["runs_new"].eq(3).all()


@pytest.mark.parametrize(
    ("words", "said"),
    [
        (("new", "ab=engine.service_ms"), "ab="),  # ab splits one sweep, not two
        (("ab=seed",), "not a grid axis"),
        (("new", "host_check=maybe"), "host_check="),
        ((), "compare takes BASE NEW, or one A/B sweep"),
    ],
)
def test_bad_compare_words_exit_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, words: tuple[str, ...], said: str
) -> None:
    rows = runs("base", BASE_P50S, axes={"engine.service_ms": 40})
    write_aggregate(tmp_path / "results", "new", runs("new", SAME_P50S))
    assert _compare(tmp_path, rows, None, *words) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err, err
