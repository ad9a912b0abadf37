"""Facts about where a cell ran: versions, host, CPU, GPU, image. Read without importing torch.

`host_facts()` goes into every row, failure rows included (the local executor builds those in
the parent process, which never imports torch), so nothing here may raise or import torch: a
fact that cannot be read is None. The engine's own `describe()` overlays its torch-based GPU
facts on top afterwards.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import platform
import re
import shutil
import socket
import subprocess
from importlib import metadata
from pathlib import Path

from bench.version import VERSION

GPU_KEYS = (
    "gpu_name",
    "gpu_count",
    "gpu_driver",
    "gpu_sm_clock_mhz",
    "gpu_max_sm_clock_mhz",
    "gpu_power_limit_w",
)
# One CSV line per GPU, in this order. `enforced.power.limit` rather than `power.limit`: it is
# the ceiling the driver actually applies after every limiter, which is what throttles a run.
NVIDIA_SMI_QUERY = "name,driver_version,clocks.sm,clocks.max.sm,enforced.power.limit"
NVIDIA_SMI_TIMEOUT_S = 10.0

_CUDA_LINE = re.compile(r"^cuda\s*(?::[^=]*)?=\s*(?P<value>.+?)\s*$", re.MULTILINE)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def git_sha() -> str | None:
    """The harness's commit: $BENCH_GIT_SHA (set in containers), else the checkout's HEAD."""
    if sha := os.environ.get("BENCH_GIT_SHA"):
        return sha
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parents[1],  # the package's folder
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except (OSError, ValueError):
        return ""


def cpu_name() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def physical_cores(cpuinfo: str) -> int | None:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo text, or None without them.

    Logical CPUs double-count SMT siblings, which share a core's execution units, so CPU-bound
    engines scale with physical cores. Many VMs and ARM kernels omit the two fields.
    """
    cores: set[tuple[str, str]] = set()
    for block in cpuinfo.split("\n\n"):
        fields = {
            key.strip(): value.strip()
            for key, sep, value in (line.partition(":") for line in block.splitlines())
            if sep
        }
        if "physical id" in fields and "core id" in fields:
            cores.add((fields["physical id"], fields["core id"]))
    return len(cores) or None


def cpu_affinity() -> int | None:
    """CPUs this process may run on: a container's cpuset or `taskset` makes it < cpu_count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return None


def _smi_value(text: str) -> str | None:
    """A CSV field, or None for nvidia-smi's "[N/A]", "[Not Supported]", "N/A" and blanks."""
    text = text.strip()
    return None if not text or text.startswith("[") or text == "N/A" else text


def _smi_float(text: str) -> float | None:
    value = _smi_value(text)
    return None if value is None else float(value)


def parse_nvidia_smi(output: str) -> dict[str, object]:
    """GPU facts from `--query-gpu=NVIDIA_SMI_QUERY --format=csv,noheader,nounits` output.

    Name and driver come from the first GPU, clocks and power limit from GPU 0 (the first
    line). Raises ValueError on malformed output or when no GPU is listed.
    """
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise ValueError("nvidia-smi listed no GPUs")
    # rsplit: the name is the only field that could hold a comma.
    first = lines[0].rsplit(",", 4)
    if len(first) != 5:
        raise ValueError(f"unexpected nvidia-smi line: {lines[0]!r}")
    name, driver, sm_clock, max_sm_clock, power_limit = first
    return {
        "gpu_name": _smi_value(name),
        "gpu_count": len(lines),
        "gpu_driver": _smi_value(driver),
        "gpu_sm_clock_mhz": _smi_float(sm_clock),
        "gpu_max_sm_clock_mhz": _smi_float(max_sm_clock),
        "gpu_power_limit_w": _smi_float(power_limit),
    }


@functools.cache
def gpu_facts() -> dict[str, object]:
    """GPU facts from nvidia-smi, all None when it is absent or fails.

    Read once per process (each cell runs in its own process). nvidia-smi sees every GPU in
    the container, not just those in $CUDA_VISIBLE_DEVICES; the engine's torch-based facts
    replace gpu_name and gpu_count when it reports them. Callers must not mutate the result.
    """
    unknown: dict[str, object] = dict.fromkeys(GPU_KEYS)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return unknown
    try:
        out = subprocess.run(
            [smi, f"--query-gpu={NVIDIA_SMI_QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
        if out.returncode != 0:
            return unknown
        return parse_nvidia_smi(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):  # ValueError: bad output
        return unknown


def parse_torch_cuda(version_py: str) -> str | None:
    """The `cuda = '12.8'` value in torch/version.py text; None for CPU builds or no match."""
    match = _CUDA_LINE.search(version_py)
    if match is None:
        return None
    try:
        value = ast.literal_eval(match["value"])
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, str) else None


@functools.cache
def cuda_version() -> str | None:
    """CUDA runtime torch was built for, read from torch/version.py without importing torch.

    Importing torch takes seconds and initialises CUDA libraries; rows for cells that never
    loaded an engine must not pay for it.
    """
    try:
        spec = importlib.util.find_spec("torch")
        if spec is None or not spec.submodule_search_locations:
            return None
        for folder in spec.submodule_search_locations:
            path = Path(folder) / "version.py"
            if path.is_file():
                return parse_torch_cuda(path.read_text())
    except (ImportError, ValueError, OSError):
        return None
    return None


# Files container engines create inside every container they run: podman, and docker (which
# AWS Batch's ECS agent drives).
CONTAINER_MARKERS = (Path("/run/.containerenv"), Path("/.dockerenv"))


def in_container() -> bool:
    """Whether this process runs in a container (podman's or docker's marker file is there)."""
    return any(marker.exists() for marker in CONTAINER_MARKERS)


def image_pins() -> str | None:
    """The image's installed versions, `name==version` space-separated, from the file bench's
    images write at build time ($BENCH_IMAGE_PINS); None outside them or when unreadable."""
    path = os.environ.get("BENCH_IMAGE_PINS")
    if not path:
        return None
    try:
        pins = Path(path).read_text().split()
    except OSError:
        return None
    return " ".join(sorted(pins, key=str.lower)) or None


def host_facts() -> dict[str, object]:
    """Row columns describing the host, the software versions, the GPUs and the image."""
    cpuinfo = _cpuinfo()
    return {
        "hostname": socket.gethostname(),
        "cpu_name": cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_physical_cores": physical_cores(cpuinfo) or os.cpu_count(),
        "cpu_affinity": cpu_affinity(),
        "os_kernel": f"{platform.system()} {platform.release()}".strip() or None,
        "python_version": platform.python_version(),
        "torch_version": _version("torch"),
        "transformers_version": _version("transformers"),
        "cuda_version": cuda_version(),
        "bench_version": VERSION,
        "git_sha": git_sha(),
        "image": os.environ.get("BENCH_IMAGE") or None,
        "image_digest": os.environ.get("BENCH_IMAGE_DIGEST") or None,
        "in_container": in_container(),
        "image_pins": image_pins(),
        **gpu_facts(),
    }
