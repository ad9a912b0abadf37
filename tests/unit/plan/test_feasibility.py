"""Memory fit before paying: infeasible cells and `fit` rows, with the guide's example."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from bench.config.schema import packed_replicas
from bench.plan.feasibility import decide, fit_table, host_has_cuda, infeasible_reason
from bench.plan.grid import plan_from_overrides
from tests.conftest import REPO


@pytest.fixture(scope="module")
def neox_rows(catalog):
    cell = plan_from_overrides(["model=gpt_neox_20b", "precision=fp16"]).cells[0]
    rows = fit_table(cell.model, "fp16", "hf", 1, list(catalog.values()), margin=0.2)
    return {(r.instance, r.partitions): r for r in rows}


def test_neox_20b_fits_one_copy_per_80gb_gpu_not_per_40gb(neox_rows):
    assert neox_rows[("p4de.24xlarge", 1)].fit == "fits"
    assert neox_rows[("p4de.24xlarge", 1)].replicas == 8
    assert neox_rows[("p4d.24xlarge", 1)].fit == "no"
    assert neox_rows[("p4d.24xlarge", 1)].rmme_per_gpu_gb > neox_rows[("p4d.24xlarge", 1)].gpu_gb


def test_neox_20b_two_way_on_g5_12xlarge_is_worth_trying(neox_rows):
    row = neox_rows[("g5.12xlarge", 2)]
    assert row.fit in ("fits", "borderline") and row.replicas == 2
    assert row.usd_per_replica_hour == pytest.approx(5.672 / 2)
    assert neox_rows[("g5.xlarge", 1)].fit == "no"


def test_fit_is_cheapest_first_within_a_fit(neox_rows):
    rows = sorted(neox_rows.values(), key=lambda r: {"fits": 0, "borderline": 1, "no": 2}[r.fit])
    fits = [r.usd_per_replica_hour for r in rows if r.fit == "fits"]
    priced = [usd for usd in fits if usd is not None]
    assert fits == sorted(priced) + [None] * (len(fits) - len(priced))  # unpriced types last


def test_infeasible_cells_say_why_with_numbers(catalog):
    big = plan_from_overrides(["model=gpt_neox_20b", "precision=fp16", "instance=g5.xlarge"]).cells[
        0
    ]
    reason = infeasible_reason(big)
    assert reason and "GB per GPU" in reason and "A10G" in reason
    bert = plan_from_overrides(["model=bert_base", "precision=fp16", "instance=g5.xlarge"]).cells[0]
    assert infeasible_reason(bert) is None
    v100 = dataclasses.replace(bert, instance=catalog["p3.2xlarge"], precision="bf16")
    assert "compute capability 7.0" in infeasible_reason(v100)
    t4 = dataclasses.replace(bert, instance=catalog["g4dn.xlarge"], precision="bf16")
    assert infeasible_reason(t4) is None  # 7.5 is native
    tp = dataclasses.replace(bert, tp_degree=2)  # the engine's capability says no, not memory
    assert infeasible_reason(tp) is None and decide(tp).outcome == "unsupported"
    cpu = plan_from_overrides(["model=gpt_neox_20b"]).cells[0]
    assert infeasible_reason(cpu) is None  # nothing to check on a CPU instance


def test_packed_replicas(catalog):
    assert packed_replicas(catalog["g5.12xlarge"], 2) == 2
    assert packed_replicas(catalog["p4de.24xlarge"], 1) == 8
    assert packed_replicas(catalog["g5.12xlarge"], 3) == 1
    assert packed_replicas(catalog["local-cpu"], 1) == 1


def test_plan_and_fit_verbs():
    def run(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "bench", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    # planned for the scheduler that runs it (on this CPU host, executor=local refuses it)
    report = json.loads(run("plan", "+grid=bert_g5", "executor=aws_batch", "format=json"))
    assert len(report["cells"]) == 240
    assert {c["decision"] for c in report["cells"]} == {"run"}
    assert set(report["per_instance"]) == {
        "g5.xlarge",
        "g5.2xlarge",
        "g5.4xlarge",
        "g5.12xlarge",
        "g5.24xlarge",
        "g5.48xlarge",
    }
    assert report["usd_total"] > 0
    table = run("fit", "model=gpt_neox_20b", "precision=fp16")
    assert "p4de.24xlarge" in table and "borderline" in table


@pytest.mark.skipif(host_has_cuda(), reason="this host has a CUDA device")
@pytest.mark.parametrize("verb", ["sweep", "plan"])
def test_a_gpu_grid_on_a_host_without_one_is_one_line_and_writes_nothing(
    verb: str, tmp_path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", verb, "+grid=bert_g5", f"store.root={tmp_path / 'r'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    line = proc.stderr
    assert "240 of 240 cells run on NVIDIA GPUs" in line and "A10G" in line
    for way in ("executor=aws_batch", "executor=slurm", "grid.axes.instance=[local-cpu]"):
        assert way in line
    assert not (tmp_path / "r").exists()


def _seed002_cells():
    from bench.plan.feasibility import decide

    plan = plan_from_overrides(["+grid=seed002_lmi"])
    return {(c.model.name, c.engine.name, c.precision): (c, decide(c)) for c in plan.cells}


def test_seed002_configurations_fit_or_are_borderline_never_infeasible():
    cells = _seed002_cells()
    for engine in ("deepspeed", "accelerate"):
        cell, (outcome, reason) = cells[("opt_30b", engine, "fp16")]
        assert (cell.tp_degree, cell.instance.type, cell.batch_size) == (4, "g5.24xlarge", 4)
        assert outcome in ("run", "borderline"), reason
    bloom, _ = cells[("bloom_176b", "deepspeed", "int8")]
    assert (bloom.tp_degree, bloom.instance.type) == (8, "p4d.24xlarge")
    assert infeasible_reason(bloom) is None  # the memory fits (34.4 GB against 42.5 usable)


def test_batch_adds_the_kv_cache_not_copies_of_the_weights():
    from bench.plan.feasibility import cell_estimate

    base = ["model=gpt_neox_20b", "precision=fp16", "instance=p4de.24xlarge"]
    one, eight = (
        cell_estimate(plan_from_overrides([*base, f"batch_size={b}"]).cells[0]) for b in (1, 8)
    )
    # 2 x 44 layers x 6144 x 1024 tokens x 2 bytes = 1.107 GB per sequence; 7 more sequences
    assert eight.per_sequence_gb == pytest.approx(1.107, abs=0.01)
    assert eight.rmme_per_gpu_gb - one.rmme_per_gpu_gb == pytest.approx(7 * 1.107, abs=0.05)
    assert eight.lmme_gb == one.lmme_gb  # weights are not multiplied by the batch
    assert eight.rmme_literal_per_gpu_gb == pytest.approx(8 * one.rmme_literal_per_gpu_gb)


def test_fit_cli_takes_params_short_form():
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "fit", "params=15e9", "precision=fp16", "format=json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert rows and all(r["lbme_gb"] == 30.0 for r in rows)
