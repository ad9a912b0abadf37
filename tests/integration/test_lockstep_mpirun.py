"""A cell that runs as several MPI ranks, launched for real: `bench run` and a local sweep
(its fork server's cells) start `mpirun -np N` themselves (bench.measure.lockstep), rank 0 measures
and writes one row, the followers repeat its requests and write nothing. The engine is the
`sleep` calibration engine with `engine.mpi_ranks=2` (FasterTransformer's TP path needs GPUs;
its launch is this one). Open MPI's mpirun comes from .ci/run (apt: openmpi-bin); without it
the test is skipped unless BENCH_REQUIRE_MPI=1."""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("mpirun") is None and not os.environ.get("BENCH_REQUIRE_MPI"),
    reason="no mpirun here (apt-get install openmpi-bin)",
)

SLEEP = ["engine=sleep", "engine.service_ms=5", "scenario.warmup_s=0.2", "scenario.ci_target=0"]


def test_bench_run_launches_the_ranks_and_prints_one_row(bench_cli) -> None:
    done = bench_cli(
        "run",
        *SLEEP,
        "engine.mpi_ranks=2",
        "scenario.min_requests=100",
        "scenario.min_duration_s=1",
        "format=json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mpirun -np 2" in done.stderr
    row = json.loads(done.stdout)  # one JSON document: the followers print nothing
    assert row["status"] == "ok"
    assert json.loads(row["engine_info"])["mpi_ranks"] == 2
    # each request waits for the follower's answer: at least the service time, plus a
    # loopback round trip, not more than a few ms
    assert 5.0 <= row["latency_ms_p50"] < 15.0


GRID = """\
# @package _global_
grid:
  name: lockstep
  axes:
    engine.mpi_ranks: [1, 2]
"""


def test_a_local_sweep_runs_group_cells_through_its_fork_server(bench_cli, tmp_path) -> None:
    (tmp_path / "conf" / "grid").mkdir(parents=True)
    (tmp_path / "conf" / "grid" / "lockstep.yaml").write_text(GRID)
    done = bench_cli(
        "--config-dir",
        str(tmp_path / "conf"),
        "sweep",
        "+grid=lockstep",
        *SLEEP,
        "scenario.min_requests=50",
        "scenario.min_duration_s=0.5",
        f"store.root={tmp_path / 'results'}",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (aggregate,) = (tmp_path / "results").glob("*/aggregated.parquet")
    rows = pd.read_parquet(aggregate)
    assert len(rows) == 2 and (rows.status == "ok").all(), rows[["status", "error"]]
    ranks = sorted(json.loads(info).get("mpi_ranks", 1) for info in rows.engine_info)
    assert ranks == [1, 2]
