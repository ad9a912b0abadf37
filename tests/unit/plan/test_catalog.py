"""The 2026 catalog: families, usable GPU memory, EC2 and SageMaker price lists, Neuron
instances honestly unsupported, int8 on older GPUs a warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.config.checks import ConfigError
from bench.executors.base import crash_row
from bench.plan.feasibility import (
    GB_PER_GIB,
    cell_warnings,
    decide,
    gpu_capacity_gb,
    infeasible_reason,
)
from bench.plan.grid import plan_from_overrides
from bench.row.status import Status
from tests.conftest import REPO

FAMILIES_2026 = {
    "g6.xlarge": "L4",
    "g6e.xlarge": "L40S",
    "p5e.48xlarge": "H200",
    "p5en.48xlarge": "H200",
    "p6-b200.48xlarge": "B200",
    "inf2.xlarge": "Inferentia2",
    "trn1.2xlarge": "Trainium",
}


def _cell(*overrides: str):
    return plan_from_overrides(list(overrides)).cells[0]


def test_the_2026_families_are_listed_with_what_a_buyer_compares(catalog):
    for type_, gpu in FAMILIES_2026.items():
        spec = catalog[type_]
        assert spec.gpu_model == gpu and spec.gpus >= 1 and spec.gpu_memory_gib > 0
        # a price with its date, or none with the reason
        assert (spec.usd_per_hour is not None and spec.price_date) or spec.price_note
    for spec in catalog.values():
        if spec.gpus and spec.accelerator is None:  # every NVIDIA type: usable below nominal
            assert 0 < spec.gpu_memory_usable_gib <= spec.gpu_memory_gib
            assert spec.compute_capability is not None


def test_estimates_are_checked_against_usable_memory_not_nominal(catalog):
    a10g = catalog["g5.xlarge"]
    assert gpu_capacity_gb(a10g) == pytest.approx(24.15, abs=0.01)  # nominal would be 25.77
    assert gpu_capacity_gb(catalog["g4dn.xlarge"]) == pytest.approx(16.1, abs=0.01)
    assert gpu_capacity_gb(a10g) < a10g.gpu_memory_gib * GB_PER_GIB
    reason = infeasible_reason(_cell("model=gpt_neox_20b", "precision=fp16", "instance=g5.xlarge"))
    assert reason and "24.1 GB usable" in reason


def test_neuron_instances_are_unsupported_with_the_reason():
    for type_ in ("inf2.xlarge", "trn1.2xlarge"):
        outcome, reason = decide(_cell("model=bert_tiny", f"instance={type_}"))
        assert outcome == "unsupported" and "Neuron" in reason


def test_sagemaker_pricing_costs_the_cell_at_the_ml_rate_and_says_so(catalog):
    ec2 = _cell("instance=g5.xlarge")
    sagemaker = _cell("instance=g5.xlarge", "pricing=sagemaker")
    assert (ec2.pricing, ec2.price_per_hour) == ("ec2", catalog["g5.xlarge"].usd_per_hour)
    assert sagemaker.pricing == "sagemaker"
    assert sagemaker.price_per_hour == catalog["g5.xlarge"].sagemaker_usd_per_hour
    assert "SageMaker" in sagemaker.price_source and "ml.g5.xlarge" in sagemaker.price_source
    assert sagemaker.cell_id == ec2.cell_id  # the price is not what a cell measures
    override = _cell("instance=g5.xlarge", "pricing=sagemaker", "price_per_hour=2.5")
    assert (override.pricing, override.price_per_hour) == ("override", 2.5)
    row = crash_row(sagemaker, "a1", Status.FAILED, "X", "boom")
    assert row["pricing"] == "sagemaker" and row["price_per_hour"] == sagemaker.price_per_hour


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["instance=trn1.2xlarge", "pricing=sagemaker"], "pricing="),  # no ml.trn1 rate
        (["instance=p5e.48xlarge"], "price_per_hour="),  # no on-demand list price
        (["pricing=spot"], "pricing="),
    ],
)
def test_a_missing_price_is_one_line_naming_the_key(overrides, key, tmp_path):
    with pytest.raises(ConfigError) as raised:
        plan_from_overrides(overrides)
    assert str(raised.value).startswith(key)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "plan", *overrides, f"store.root={tmp_path}/r"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert key in proc.stderr and not (tmp_path / "r").exists()


def test_an_unpriced_type_runs_with_a_price_given():
    cell = _cell("instance=p5e.48xlarge", "price_per_hour=60")
    assert (cell.price_per_hour, cell.pricing) == (60.0, "override")


def test_int8_below_compute_capability_7_5_is_a_warning_not_infeasible():
    cell = _cell("model=gpt_neox_20b", "precision=int8", "instance=p3.8xlarge", "tp_degree=4")
    assert infeasible_reason(cell) is None  # the planner lets it run (no engine does int8 on
    assert any("no int8 tensor cores" in w for w in cell_warnings(cell))  # CUDA yet: item 4)
    row = crash_row(cell, "a1", Status.FAILED, "OutOfMemoryError", "CUDA out of memory")
    assert "no int8 tensor cores" in row["warnings"]
    # bf16 stays refused where it is not native
    bf16 = _cell("model=gpt_neox_20b", "precision=bf16", "instance=p3.8xlarge", "tp_degree=4")
    assert "not native" in (infeasible_reason(bf16) or "")


def test_a_borderline_cell_that_fails_says_so_in_its_row():
    cell = _cell(
        "model=opt_30b", "engine=deepspeed", "precision=fp16", "instance=g5.24xlarge",
        "tp_degree=4", "batch_size=4",
    )  # fmt: skip
    outcome, reason = decide(cell)
    assert outcome == "borderline" and "usable" in reason
    failed = crash_row(cell, "a1", Status.TIMEOUT, "Timeout", "ran past executor.timeout_s")
    assert "over the cautious estimate" in failed["warnings"]
    assert crash_row(cell, "a1", Status.INFEASIBLE, "Infeasible", "x").get("warnings") is None
    on_cpu = _cell("model=bert_tiny", "instance=g5.xlarge", "device=cpu")
    assert crash_row(on_cpu, "a1", Status.FAILED, "X", "y")["warnings"] is None


def test_int8_on_gpu_engines_and_where_each_refuses_it():
    from bench.engines import ENGINES

    def reason(engine: str, *overrides: str) -> str | None:
        cell = _cell("model=opt_tiny", f"engine={engine}", "precision=int8", *overrides)
        return ENGINES[engine].unsupported_reason(cell)

    assert reason("accelerate", "instance=g5.12xlarge", "tp_degree=2") is None  # bitsandbytes
    assert "on CUDA" in reason("accelerate")  # CPU: engine=hf quantises dynamically
    # the plan lets it through: the job's own DeepSpeed decides (the next test)
    assert reason("deepspeed", "instance=g5.12xlarge", "tp_degree=2") is None
    assert "kernel-injected" in reason("deepspeed")  # CPU
    no_kernels = reason(
        "deepspeed", "instance=g5.xlarge", "engine.kernel_inject='false'"
    )  # AutoTP has no int8 path
    assert "kernel-injected" in no_kernels
    # seed 002's BLOOM-176B int8 TP8 on p4d: the memory fits; the plan says what the job's
    # DeepSpeed will say (its int8 kernels are gone), and the grid's fp16 block on p4de runs
    bloom = [c for c in plan_from_overrides(["+grid=seed002_lmi"]).cells if c.precision == "int8"]
    assert bloom and all(decide(c)[0] in ("run", "borderline") for c in bloom)
    deepspeed_int8 = [decide(c) for c in bloom if c.engine.name == "deepspeed"]
    assert deepspeed_int8 and "no int8 inference kernels" in deepspeed_int8[0].reason
    substitute = [
        c
        for c in plan_from_overrides(["+grid=seed002_lmi"]).cells
        if (c.model.name, c.engine.name, c.precision) == ("bloom_176b", "deepspeed", "fp16")
    ]
    assert [c.instance.type for c in substitute] == ["p4de.24xlarge"]
    assert decide(substitute[0]).outcome == "run"


def test_the_deepspeed_release_named_is_the_one_the_lock_pins():
    from bench.engines.deepspeed import IMAGE_DEEPSPEED

    lock = (Path(__file__).resolve().parents[3] / "requirements.lock").read_text()
    assert f"deepspeed=={IMAGE_DEEPSPEED}\n" in lock


def test_deepspeed_int8_is_unsupported_where_the_installed_release_refuses_the_dtype():
    """The plan cannot know the job's DeepSpeed; the job checks before loading anything (the
    pinned 0.19.8 refuses torch.int8 on CUDA, seen on an H200, and on CPU)."""
    from bench.engines.base import Unsupported
    from bench.engines.deepspeed import refuse_int8_if_dropped

    with pytest.raises(Unsupported, match=r"not int8 .* bitsandbytes"):
        refuse_int8_if_dropped()


def test_accelerate_budgets_the_device_s_own_memory_when_the_instance_has_no_gpu(monkeypatch):
    """device=cuda on an instance the catalog gives no GPU (local-cpu): a zero budget would map
    every layer to the CPU, which bitsandbytes refuses (seen on an H200)."""
    import torch

    from bench.engines import ENGINES
    from bench.engines.accelerate import GPU_HEADROOM

    class Properties:
        total_memory = 80 * 2**30

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Properties())
    local = ENGINES["accelerate"](_cell("engine=accelerate", "device=cuda"))
    assert local.gpu_budget_gib(0) == pytest.approx(80 * GPU_HEADROOM)
    g5 = ENGINES["accelerate"](_cell("engine=accelerate", "instance=g5.xlarge"))
    assert g5.gpu_budget_gib(0) == pytest.approx(22.49 * GPU_HEADROOM)
    fixed = ENGINES["accelerate"](
        _cell("engine=accelerate", "device=cuda", "engine.max_gpu_memory_gib=3")
    )
    assert fixed.gpu_budget_gib(0) == 3


@pytest.mark.parametrize(
    ("value", "readable"),
    [
        ("9.0a", "9.0"),
        ("8.0;9.0a;10.0f+PTX", "8.0;9.0;10.0+PTX"),
        ("8.6 9.0a", "8.6;9.0"),
        ("8.0;9.0+PTX", None),  # DeepSpeed reads it as it is
        ("", None),
        ("hopper", None),  # nothing to map: left for DeepSpeed to refuse in its own words
    ],
)
def test_deepspeed_gets_a_torch_cuda_arch_list_its_builder_can_parse(value, readable):
    """DeepSpeed's JIT builder int()s each minor version: 9.0a stopped its kernel build on an
    H200 image ("invalid literal for int() with base 10: '0a'")."""
    from bench.engines.deepspeed import arch_list_for_deepspeed

    assert arch_list_for_deepspeed(value) == readable
