"""host_facts(): host, CPU, GPU (via a fake nvidia-smi on PATH), CUDA and image facts."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.measure.host_facts import (
    GPU_KEYS,
    NVIDIA_SMI_QUERY,
    cuda_version,
    gpu_facts,
    host_facts,
    parse_nvidia_smi,
    parse_torch_cuda,
    physical_cores,
)
from bench.row.schema import COLUMN_NAMES


@pytest.fixture(autouse=True)
def _clear_caches() -> Iterator[None]:
    gpu_facts.cache_clear()
    cuda_version.cache_clear()
    yield
    gpu_facts.cache_clear()
    cuda_version.cache_clear()


def fake_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """Put an executable `nvidia-smi` running `script` (sh) first on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir()
    smi = folder / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\n{script}\n")
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")


TWO_GPUS = """\
NVIDIA H100 80GB HBM3, 550.54.15, 1980, 1980, 700.00
NVIDIA H100 80GB HBM3, 550.54.15, 345, 1980, 700.00
"""


def test_two_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_smi(tmp_path, monkeypatch, f"cat <<'EOF'\n{TWO_GPUS}EOF")
    assert gpu_facts() == {
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "gpu_count": 2,
        "gpu_driver": "550.54.15",
        "gpu_sm_clock_mhz": 1980.0,
        "gpu_max_sm_clock_mhz": 1980.0,
        "gpu_power_limit_w": 700.0,
    }
    facts = host_facts()
    assert facts["gpu_count"] == 2
    assert facts["gpu_name"] == "NVIDIA H100 80GB HBM3"


def test_fake_receives_the_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = tmp_path / "args"
    fake_smi(tmp_path, monkeypatch, f'echo "$@" > {args}\necho "A10G, 535.1, 210, 1710, 300"')
    assert gpu_facts()["gpu_count"] == 1
    assert args.read_text().split() == [
        f"--query-gpu={NVIDIA_SMI_QUERY}",
        "--format=csv,noheader,nounits",
    ]


def test_not_available_fields_are_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_smi(tmp_path, monkeypatch, "echo 'Tesla T4, 535.1, [N/A], [Not Supported], [N/A]'")
    assert gpu_facts() == {
        "gpu_name": "Tesla T4",
        "gpu_count": 1,
        "gpu_driver": "535.1",
        "gpu_sm_clock_mhz": None,
        "gpu_max_sm_clock_mhz": None,
        "gpu_power_limit_w": None,
    }


@pytest.mark.parametrize(
    "script",
    [
        "echo 'NVIDIA-SMI has failed because it could not communicate' >&2; exit 1",
        "echo 'No devices were found'; exit 6",
        "exit 0",  # no GPUs listed
        "echo 'H100, 550, fast, 1980, 700'",  # not a number
        "echo 'H100, 550'",  # too few fields
    ],
)
def test_failure_gives_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    fake_smi(tmp_path, monkeypatch, script)
    assert gpu_facts() == dict.fromkeys(GPU_KEYS)
    assert all(host_facts()[key] is None for key in GPU_KEYS)


def test_timeout_gives_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_smi(tmp_path, monkeypatch, "exec sleep 5")
    monkeypatch.setattr("bench.measure.host_facts.NVIDIA_SMI_TIMEOUT_S", 0.2)
    assert gpu_facts() == dict.fromkeys(GPU_KEYS)


def test_absent_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert gpu_facts() == dict.fromkeys(GPU_KEYS)


def test_result_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = tmp_path / "calls"
    fake_smi(tmp_path, monkeypatch, f"echo x >> {counter}\necho 'A10G, 535, 210, 1710, 300'")
    host_facts()
    host_facts()
    assert counter.read_text().count("x") == 1


def test_parse_keeps_a_comma_in_the_name() -> None:
    facts = parse_nvidia_smi("Odd, GPU, 1.2, 100, 200, 300.5\n")
    assert facts["gpu_name"] == "Odd, GPU"
    assert facts["gpu_power_limit_w"] == 300.5


# /proc/cpuinfo: 2 sockets x 2 cores x 2 threads = 8 logical CPUs, 4 physical cores.
CPUINFO = "\n\n".join(
    f"processor\t: {n}\nmodel name\t: Intel(R) Xeon(R)\n"
    f"physical id\t: {n // 4}\ncore id\t\t: {n % 2}\nflags\t\t: fpu sse\n"
    for n in range(8)
)
ARM_CPUINFO = "\n\n".join(f"processor\t: {n}\nBogoMIPS\t: 50.00\n" for n in range(4))


def test_physical_cores() -> None:
    assert physical_cores(CPUINFO) == 4
    assert physical_cores(ARM_CPUINFO) is None
    assert physical_cores("") is None


def test_physical_cores_falls_back_to_cpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bench.measure.host_facts._cpuinfo", lambda: ARM_CPUINFO)
    assert host_facts()["cpu_physical_cores"] == os.cpu_count()


def test_image_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_IMAGE", "123.dkr.ecr.us-east-1.amazonaws.com/bench-hf:abc")
    monkeypatch.setenv("BENCH_IMAGE_DIGEST", "sha256:" + "0" * 64)
    facts = host_facts()
    assert facts["image"] == "123.dkr.ecr.us-east-1.amazonaws.com/bench-hf:abc"
    assert facts["image_digest"] == "sha256:" + "0" * 64
    monkeypatch.delenv("BENCH_IMAGE")
    monkeypatch.setenv("BENCH_IMAGE_DIGEST", "")
    facts = host_facts()
    assert facts["image"] is None
    assert facts["image_digest"] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("__version__ = '2.9.1+cu128'\ndebug = False\ncuda = '12.8'\nhip = None\n", "12.8"),
        ("from typing import Optional\ncuda: Optional[str] = '12.6'\n", "12.6"),
        ("from typing import Optional\ncuda: Optional[str] = None\nhip = None\n", None),
        ("__version__ = '2.9.1'\n", None),
        ("cuda = some_call()\n", None),
    ],
)
def test_parse_torch_cuda(text: str, expected: str | None) -> None:
    assert parse_torch_cuda(text) == expected


def test_cuda_version_does_not_import_torch() -> None:
    loaded = "torch" in sys.modules
    cuda_version()
    assert ("torch" in sys.modules) == loaded


def test_host_facts_keys_are_row_columns() -> None:
    facts = host_facts()
    assert set(facts) <= COLUMN_NAMES
    for key in (
        *GPU_KEYS,
        "cpu_physical_cores",
        "cpu_affinity",
        "os_kernel",
        "image",
        "image_digest",
        "cuda_version",
    ):
        assert key in facts, key
    assert isinstance(facts["cpu_physical_cores"], int)
    assert facts["os_kernel"]
    if hasattr(os, "sched_getaffinity"):
        assert facts["cpu_affinity"] == len(os.sched_getaffinity(0))
