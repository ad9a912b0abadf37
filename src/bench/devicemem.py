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


def device_memory(device: str) -> DeviceMemory:
    """The memory of the device `device` names ("cpu", "cuda", "cuda:0")."""
    if device.startswith("cuda"):
        import torch

        _, total = torch.cuda.mem_get_info()
        return DeviceMemory("cuda", total / MIB)
    total = _meminfo_mb("MemTotal")
    if (limit := cgroup_limit_mb()) is not None:
        total = min(total, limit)
    return DeviceMemory("cpu", total)
