"""Telemetry: /proc parsing, the window's summary, the busy-host flag, the stored table."""

from __future__ import annotations

import sys
import time

import pytest

from bench.measure import telemetry
from bench.measure.telemetry import (
    Sample,
    Sampler,
    in_windows,
    own_cpu_ticks,
    parse_proc_stat,
    summary,
)

STAT = "cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 50 2 25 400 10 1 1 5 3 0\nintr 1 2 3\n"


def test_proc_stat_counts_busy_steal_and_total_without_guest_twice():
    times = parse_proc_stat(STAT)
    assert times.busy == 100 + 5 + 50 + 3 + 2
    assert times.steal == 10
    assert times.total == times.busy + 800 + 20 + 10  # guest (7) is already inside user


def test_own_cpu_ticks_survives_a_command_name_with_spaces_and_parentheses():
    fields = ["S"] + ["0"] * 10 + ["123", "45"] + ["0"] * 30
    text = "4242 (python (my) job) " + " ".join(fields)
    assert own_cpu_ticks(text) == 168


def sample(t: int, busy: float, own: float, steal: float = 0.0, gpus=()) -> Sample:
    return Sample(t, busy, own, steal, list(gpus))


def test_a_quiet_window_is_not_busy_and_a_neighbour_or_the_hypervisor_makes_it_busy():
    quiet = summary([sample(1, 1.0, 0.9), sample(2, 1.1, 1.0)], "no GPU in this cell")
    assert quiet["host_busy"] is False and quiet["host_busy_reason"] is None
    assert quiet["host_other_cpus_mean"] == pytest.approx(0.1)
    assert quiet["telemetry_samples"] == 2 and quiet["gpu_telemetry"] == "no GPU in this cell"
    neighbour = summary([sample(1, 2.0, 1.0), sample(2, 1.9, 1.0)], None)
    assert neighbour["host_busy"] and "0.95 CPUs" in neighbour["host_busy_reason"]
    stolen = summary([sample(1, 1.0, 1.0, steal=0.2)], None)
    assert stolen["host_busy"] and "stole 20%" in stolen["host_busy_reason"]
    # the cell's own CPU above the host's (sampling skew) never counts as negative load
    assert summary([sample(1, 0.5, 0.9)], None)["host_other_cpus_mean"] == 0


def test_gpu_readings_summarise_over_every_gpu_and_sample():
    gpus_a = [(90.0, 1000.0, 300.0, 1980.0), (50.0, 2000.0, 200.0, 1500.0)]
    gpus_b = [(70.0, 1500.0, 250.0, 1755.0), (30.0, 2500.0, 150.0, 1410.0)]
    row = summary([sample(1, 1, 1, gpus=gpus_a), sample(2, 1, 1, gpus=gpus_b)], None)
    assert row["gpu_telemetry"] == "nvml"
    assert row["gpu_util_pct_mean"] == pytest.approx(60) and row["gpu_util_pct_min"] == 30
    assert row["gpu_mem_used_mb_max"] == 2500 and row["gpu_power_w_max"] == 300
    assert row["gpu_sm_clock_mhz_min"] == 1410
    assert row["gpu_power_w_mean"] == pytest.approx(225)


def test_only_samples_inside_a_measured_window_are_kept():
    samples = [sample(t, 1, 1) for t in (5, 10, 15, 20, 25, 30)]
    kept = in_windows(samples, [(10, 15), (25, 40)])
    assert [s.t_ns for s in kept] == [10, 15, 25, 30]


def test_the_stored_table_has_a_row_per_sample_and_gpu_with_typed_columns():
    two_gpus = [(1.0, 2.0, 3.0, 4.0), (5.0, 6.0, 7.0, 8.0)]
    table = telemetry.table([sample(1, 1.0, 0.5), sample(2, 1.0, 0.5, gpus=two_gpus)])
    assert table.num_rows == 3
    assert table.column("gpu").to_pylist() == [-1, 0, 1]
    assert table.column("gpu_sm_clock_mhz").to_pylist() == [None, 4.0, 8.0]
    assert str(table.schema.field("cpus_busy").type) == "double"
    assert telemetry.table([]).num_rows == 0


def test_without_nvml_the_reader_says_why_and_the_sampler_still_samples_the_host(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    sampler = Sampler([0], interval_s=0.01).start()
    # wait for samples by count, not for a time a busy host may not give the sampler's thread
    deadline = time.monotonic() + 30
    while len(sampler.samples) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    samples = sampler.stop()
    assert sampler.gpu.unavailable.startswith("NVML unavailable: ")
    assert len(samples) >= 3 and all(s.gpus == [] for s in samples)
    assert all(s.cpus_busy is not None and s.cpus_busy >= 0 for s in samples[1:])
    assert Sampler([], interval_s=0.01).gpu.unavailable == "no GPU in this cell"
