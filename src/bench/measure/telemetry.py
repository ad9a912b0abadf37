"""What the host and the GPU were doing while a cell measured, sampled at a fixed interval.

A thread samples every `INTERVAL_S` and sleeps on an Event in between (a blocking wait, never a
spin: on a 2-core host a spinning sampler would distort the latency it describes). Each sample
reads, where present:
- the host from /proc/stat: CPUs busy (user + nice + system + irq + softirq) and the share of
  CPU time stolen by the hypervisor, since the previous sample; and this process's own CPU
  time (/proc/self/stat), so `host_other_cpus` is what other processes used;
- each GPU the cell uses from NVML (nvidia-ml-py): utilisation (the share of the last sample
  period in which a kernel ran), memory in use, power draw and SM clock;
- the server's own metrics, for an endpoint that has them (bench.measure.server_metrics).
The runner keeps the samples inside the measured window(s) (warmup and loading left out),
summarises them into the row (means and extremes) and stores them beside the request samples.
A host is flagged busy when other processes averaged `BUSY_OTHER_CPUS` CPUs or more, or the
hypervisor stole `BUSY_STEAL_SHARE` of the CPU time: its figures were measured on a shared
machine. Reads cost microseconds and happen outside every request's timed bracket.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import server_metrics
from bench.measure.server_metrics import COUNTERS, GAUGES, ServerMetrics

INTERVAL_S = 0.2
BUSY_OTHER_CPUS = 0.5  # other processes' mean CPU use over the window that flags a busy host
BUSY_STEAL_SHARE = 0.05  # share of CPU time stolen by the hypervisor that flags a busy host
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuTimes:
    """Cumulative CPU time from /proc/stat's first line, in clock ticks."""

    busy: int
    steal: int
    total: int


def parse_proc_stat(text: str) -> CpuTimes:
    """The aggregate `cpu` line: user nice system idle iowait irq softirq steal [guest ...]
    (guest time is already counted in user, so it is not added again)."""
    fields = [int(v) for v in text.split("\n", 1)[0].split()[1:9]]
    fields += [0] * (8 - len(fields))
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq
    return CpuTimes(busy=busy, steal=steal, total=busy + idle + iowait + steal)


def own_cpu_ticks(text: str) -> int:
    """utime + stime from /proc/self/stat (after the command name, which may hold spaces)."""
    rest = text.rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


@dataclass
class Sample:
    t_ns: int  # perf_counter_ns when taken (the clock the load generator's window uses)
    cpus_busy: float | None  # CPUs busy since the previous sample, all processes
    own_cpus: float | None  # CPUs this process used since the previous sample
    steal_share: float | None  # share of CPU time stolen since the previous sample
    gpus: list[tuple[float, float, float, float]] = field(default_factory=list)
    # per GPU: utilisation %, memory used MiB, power W, SM clock MHz
    server: dict[str, float] | None = None  # the server's figures (server_metrics.figures)


class GpuReader:
    """NVML handles for the cell's GPUs; `unavailable` says why there are none."""

    def __init__(self, cuda_indices: list[int]) -> None:
        self.handles: list[Any] = []
        self.unavailable: str | None = None
        if not cuda_indices:
            self.unavailable = "no GPU in this cell"
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self.handles = [self._handle(pynvml, index) for index in cuda_indices]
            self.nvml = pynvml
        except Exception as exc:  # no library, no driver: the row says so, the cell runs
            self.unavailable = f"NVML unavailable: {type(exc).__name__}: {exc}"[:200]

    @staticmethod
    def _handle(pynvml: Any, cuda_index: int) -> Any:
        """NVML counts physical GPUs; CUDA counts visible ones: match them by UUID."""
        try:
            import torch

            uuid = str(torch.cuda.get_device_properties(cuda_index).uuid)
            return pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid.removeprefix('GPU-')}")
        except Exception:
            return pynvml.nvmlDeviceGetHandleByIndex(cuda_index)

    def read(self) -> list[tuple[float, float, float, float]]:
        nvml, out = getattr(self, "nvml", None), []
        for handle in self.handles:
            util = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
            used = nvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
            power = nvml.nvmlDeviceGetPowerUsage(handle) / 1000
            clock = nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)
            out.append((float(util), float(used), float(power), float(clock)))
        return out


class Sampler:
    """Samples in a background thread from start() to stop()."""

    def __init__(
        self, cuda_indices: list[int], interval_s: float = INTERVAL_S, server_url: str | None = None
    ) -> None:
        self.interval_s = interval_s
        self.gpu = GpuReader(cuda_indices)
        self.server = ServerMetrics(server_url)
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-telemetry", daemon=True)
        self._previous: tuple[CpuTimes, int, int] | None = None

    def start(self) -> Sampler:
        self._take()  # the baseline the first interval is measured from
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join()
        return self.samples

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._take()
            except Exception as exc:  # a GPU that stops answering ends the trace, not the cell
                self.gpu.unavailable = f"sampling stopped: {type(exc).__name__}: {exc}"[:200]
                return

    def _take(self) -> None:
        now = time.perf_counter_ns()
        try:
            cpu = parse_proc_stat(Path("/proc/stat").read_text())
            own = own_cpu_ticks(Path("/proc/self/stat").read_text())
        except (OSError, ValueError, IndexError):  # not Linux: GPU figures only
            cpu, own = None, None
        sample = Sample(now, None, None, None, self.gpu.read() if self.gpu.handles else [])
        sample.server = self.server.read()
        if cpu is not None and own is not None and self._previous is not None:
            before, own_before, t_before = self._previous
            seconds = (now - t_before) / 1e9
            total = cpu.total - before.total
            if seconds > 0 and total > 0:
                cpus = os.cpu_count() or 1
                sample.cpus_busy = (cpu.busy - before.busy) / total * cpus
                sample.steal_share = (cpu.steal - before.steal) / total
                sample.own_cpus = (own - own_before) / CLOCK_TICKS / seconds
        if cpu is not None and own is not None:
            self._previous = (cpu, own, now)
        self.samples.append(sample)


def inside(t_ns: int, windows: list[tuple[int, int]]) -> bool:
    """Whether perf_counter_ns time `t_ns` falls inside any measured window [opened, closed]."""
    return any(a <= t_ns <= b for a, b in windows)


def in_windows(samples: list[Sample], windows: list[tuple[int, int]]) -> list[Sample]:
    """The samples taken inside any of the measured windows [opened_ns, closed_ns]."""
    return [s for s in samples if inside(s.t_ns, windows)]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summary(
    samples: list[Sample], gpu_note: str | None, server: ServerMetrics | None = None
) -> dict[str, Any]:
    """The row's telemetry columns from the window's samples."""
    host = [s for s in samples if s.cpus_busy is not None]
    other = [max(0.0, s.cpus_busy - (s.own_cpus or 0.0)) for s in host]  # type: ignore[operator]
    steal = [s.steal_share for s in host if s.steal_share is not None]
    columns: dict[str, Any] = {
        "telemetry_samples": len(samples),
        "host_cpus_busy_mean": _mean([s.cpus_busy for s in host]),  # type: ignore[misc]
        "host_other_cpus_mean": _mean(other),
        "host_other_cpus_max": max(other, default=None),
        "host_steal_share": _mean(steal),
        "client_cpus_mean": _mean([s.own_cpus for s in host if s.own_cpus is not None]),
    }
    reasons = []
    if (mean_other := columns["host_other_cpus_mean"]) is not None and (
        mean_other >= BUSY_OTHER_CPUS
    ):
        reasons.append(f"other processes used {mean_other:.2f} CPUs on average")
    if (stolen := columns["host_steal_share"]) is not None and stolen >= BUSY_STEAL_SHARE:
        reasons.append(f"the hypervisor stole {stolen:.0%} of the CPU time")
    columns["host_busy"] = bool(reasons) if host else None
    columns["host_busy_reason"] = "; ".join(reasons) or None
    gpu = [s.gpus for s in samples if s.gpus]
    columns["gpu_telemetry"] = gpu_note if not gpu else "nvml"
    if gpu:  # over every GPU of the cell and every sample
        flat = [reading for readings in gpu for reading in readings]
        util, used, power, clock = (list(v) for v in zip(*flat, strict=True))
        columns.update(
            gpu_util_pct_mean=_mean(util),
            gpu_util_pct_min=min(util),
            gpu_mem_used_mb_max=max(used),
            gpu_power_w_mean=_mean(power),
            gpu_power_w_max=max(power),
            gpu_sm_clock_mhz_mean=_mean(clock),
            gpu_sm_clock_mhz_min=min(clock),
        )
    if server is not None and server.url:
        readings = [s.server for s in samples if s.server is not None]
        columns.update(server_metrics.summary(readings, server.unavailable, server.url))
    return columns


SERVER_FIELDS = tuple(f"server_{name}" for name in (*GAUGES, *COUNTERS))


def table(samples: list[Sample]) -> Any:
    """The window's samples as a table (one row per sample and GPU; gpu -1: host only)."""
    import pyarrow as pa

    schema = pa.schema(
        [("t_ns", pa.int64()), ("gpu", pa.int16())]
        + [
            (name, pa.float64())
            for name in (
                "cpus_busy", "own_cpus", "steal_share",
                "gpu_util_pct", "gpu_mem_used_mb", "gpu_power_w", "gpu_sm_clock_mhz",
                *SERVER_FIELDS,
            )
        ]
    )  # fmt: skip
    rows: dict[str, list[Any]] = {name: [] for name in schema.names}
    for s in samples:
        readings: list[tuple[Any, ...]] = list(s.gpus) or [(None, None, None, None)]
        for index, reading in enumerate(readings):
            host = (s.t_ns, index if s.gpus else -1, s.cpus_busy, s.own_cpus, s.steal_share)
            server = [(s.server or {}).get(name.removeprefix("server_")) for name in SERVER_FIELDS]
            for key, value in zip(rows, (*host, *reading, *server), strict=True):
                rows[key].append(value)
    from bench.store.arrow import table  # from buffers: a cell never imports pandas

    return table(rows, schema)
