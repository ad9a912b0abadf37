"""How much memory the device a cell runs on has, and how much of it is in use.

GPU: torch's view of the whole device (total - free, as nvidia-smi counts it: every copy, the
CUDA context and the allocator's cache). CPU, where RAM is the device: the cell process's
anonymous resident memory (RssAnon), against RAM (or the container's cgroup limit). File-backed
pages are left out on purpose: they are page cache the kernel may drop, not memory a loaded
copy holds (the capacity scenario gives every CPU copy weights of its own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MIB = 2**20


def _status_kib(field: str, text: str) -> float | None:
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def process_anon_mb() -> float:
    """This process's anonymous resident memory, MiB."""
    kib = _status_kib("RssAnon", Path("/proc/self/status").read_text())
    if kib is None:
        raise RuntimeError("/proc/self/status has no RssAnon; cannot measure CPU memory here")
    return kib / 1024


def _meminfo_mb(field: str) -> float:
    kib = _status_kib(field, Path("/proc/meminfo").read_text())
    if kib is None:
        raise RuntimeError(f"/proc/meminfo has no {field}")
    return kib / 1024


def cgroup_limit_mb() -> float | None:
    """The container's memory limit (cgroup v2, then v1), when one is set."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text) / MIB
    return None


def host_available_mb() -> float:
    """What the kernel could still hand out: the guard that keeps a CPU cell off the OOM killer."""
    return _meminfo_mb("MemAvailable")


@dataclass(frozen=True)
class DeviceMemory:
    kind: str  # cpu | cuda
    total_mb: float

    def used_mb(self) -> float:
        if self.kind == "cuda":
            import torch

            free, total = torch.cuda.mem_get_info()
            return (total - free) / MIB
        return process_anon_mb()


def memory_of(device: str) -> DeviceMemory:
    """The memory of the device `device` names ("cpu", "cuda", "cuda:0")."""
    if device.startswith("cuda"):
        import torch

        _, total = torch.cuda.mem_get_info()
        return DeviceMemory("cuda", total / MIB)
    total = _meminfo_mb("MemTotal")
    if (limit := cgroup_limit_mb()) is not None:
        total = min(total, limit)
    return DeviceMemory("cpu", total)


# -- what the cell process itself holds (the row's memory columns) ---------------------------


def _own_status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status, MiB; None where /proc is absent."""
    try:
        kib = _status_kib(field, Path("/proc/self/status").read_text())
    except OSError:
        return None
    return kib / 1024 if kib is not None else None


def rss_mb() -> float | None:
    """This process's resident memory now (VmRSS: anonymous and file-backed pages, so a CPU
    model's memory-mapped safetensors weights count), MiB; None where /proc is absent."""
    return _own_status_mb("VmRSS")


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter (VmHWM), so the next peak is this phase's own;
    False where the kernel does not allow it (the peak is then the process's lifetime peak)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float | None:
    """The peak resident memory since the last reset (or since the process started), MiB."""
    if (peak := _own_status_mb("VmHWM")) is not None:
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cuda() -> object | None:
    """torch's cuda module when this process has a CUDA context (never creates one)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch.cuda


def reset_cuda_peaks() -> None:
    """Start every device's allocated/reserved peak afresh (after load: the peaks then say
    what serving needs, not what loading needed)."""
    if (cuda := _cuda()) is not None:
        for index in range(cuda.device_count()):
            cuda.reset_peak_memory_stats(index)


def cuda_memory() -> list[dict[str, float | int]]:
    """Per visible device: torch's allocated and reserved peaks since the reset, and the
    memory in use as the driver counts it (every process and context on the device), MiB."""
    if (cuda := _cuda()) is None:
        return []
    devices = []
    for index in range(cuda.device_count()):
        free, total = cuda.mem_get_info(index)
        devices.append(
            {
                "device": index,
                "allocated_peak_mb": cuda.max_memory_allocated(index) / MIB,
                "reserved_peak_mb": cuda.max_memory_reserved(index) / MIB,
                "driver_used_mb": (total - free) / MIB,
            }
        )
    return devices


# -- one process's memory around a model load (every rank of a tensor-parallel group) -------


class LoadMemory:
    """A process's resident memory around its model load: the footprint it starts from
    (imports, process group; no model), what it holds once loaded, the peak the load reached,
    and, read at the end, the peak from the start of the load on. Each rank of a
    tensor-parallel group keeps one, so the row can say what every rank held, not only the
    measuring one. VmRSS / VmHWM count file-backed pages too: weights still mapped from a
    checkpoint file count as held."""

    FIELDS = ("rss_before_load_mb", "rss_after_load_mb", "load_peak_rss_mb", "peak_rss_mb")

    def __init__(self) -> None:
        self.before_mb: float | None = None
        self.after_mb: float | None = None
        self.load_peak_mb: float | None = None
        self.peak_reset = False

    def start(self) -> None:
        """The load begins: restart the peak, so it is the load's and not an earlier phase's
        (a checkpoint built from config in this process)."""
        self.peak_reset = reset_peak_rss()
        self.before_mb = rss_mb()

    def loaded(self) -> None:
        self.after_mb = rss_mb()
        self.load_peak_mb = peak_rss_mb()

    def figures(self) -> dict[str, float | None]:
        """MiB: before, after, the load's peak, and the peak since the load began (the larger
        of the load's and the current VmHWM: a caller may have reset it after the load)."""
        now = peak_rss_mb()
        peaks = [p for p in (self.load_peak_mb, now) if p is not None]
        return dict(
            zip(
                self.FIELDS,
                (self.before_mb, self.after_mb, self.load_peak_mb, max(peaks) if peaks else None),
                strict=True,
            )
        )
