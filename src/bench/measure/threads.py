"""CPU thread hygiene for a cell process: how many intra-op threads torch gets, and how idle
OpenMP workers wait. The row records what was in force (torch_threads, omp_wait_policy,
cpu_affinity_list, cpus_busy_at_start).

Every client thread that calls a torch model runs its operators' parallel regions on an
OpenMP team of torch's intra-op threads, and each region ends at a barrier where the team
waits for its slowest member. The harness used to leave torch's default team (every CPU) to
every client, so two clients on two cores ran four threads that took turns at each other's
barriers, and a team formed on cores other processes were using waited at every barrier for a
thread the scheduler had not run (tiny BERT, batch 1, beside a busy loop per core: 7.6 ms at
P50 with a team of two against 3.7 ms with one thread and 2.3 ms on the quiet machine). So:

- intra-op threads = the CPUs free at the cell's start // client threads (at least 1),
  unless `torch_threads` is set. The clients' teams together never ask for more cores than
  there are, and a team is never formed on cores another process is busy on. "Free" is
  measured over 0.2 s from /proc/stat before anything loads; the row keeps how many CPUs
  were busy then (a warning sign for every figure in the row).
- the OpenMP wait policy is libgomp's default (a short spin, then sleep), unless the user
  set OMP_WAIT_POLICY. PASSIVE was measured and rejected: sleeping at once makes every
  parallel region pay a wake-up, which doubled a team's latency on a quiet machine (2.3 ->
  5.3 ms at batch 1, 5.4 -> 10.3 ms at batch 4). With teams only on free cores, the short
  spin costs nothing another thread needs. libgomp reads the variable once, when torch loads
  it, so the row reports what was in the environment at that moment.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

WAIT_POLICY_VARIABLE = "OMP_WAIT_POLICY"
DEFAULT_WAIT_POLICY = "default (spin, then sleep)"
BUSY_SAMPLE_S = 0.2  # how long the CPUs' idle time is sampled before the cell loads
BUSY_SLACK = 0.25  # a CPU idle for 75% of the sample counts as free (background noise)


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (a container or `taskset` narrows them)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return list(range(os.cpu_count() or 1))


def cpu_list(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5" (the notation of taskset and /sys)."""
    spans: list[str] = []
    start = previous = None
    for cpu in [*cpus, None]:
        if start is not None and (cpu is None or cpu != previous + 1):
            spans.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if cpu is not None and start is None:
            start = cpu
        previous = cpu
    return ",".join(spans)


def _cpu_times(cpus: list[int]) -> tuple[float, float] | None:
    """(idle, total) jiffies summed over `cpus`, from /proc/stat; None where it is absent."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{c}" for c in cpus}
    idle = total = 0.0
    for line in lines:
        name, *fields = line.split()
        if name in wanted:
            values = [float(v) for v in fields[:8]]
            idle += values[3] + values[4]  # idle + iowait
            total += sum(values)
    return (idle, total) if total else None


def busy_cpus(cpus: list[int], seconds: float = BUSY_SAMPLE_S) -> float:
    """How many of `cpus` other processes kept busy over the next `seconds` (this process
    sleeps meanwhile); 0 where /proc/stat cannot tell."""
    before = _cpu_times(cpus)
    time.sleep(seconds)
    after = _cpu_times(cpus)
    if before is None or after is None or after[1] <= before[1]:
        return 0.0
    idle_share = (after[0] - before[0]) / (after[1] - before[1])
    return max(0.0, (1 - idle_share) * len(cpus))


def default_intra_op_threads(client_threads: int, free_cpus: int) -> int:
    """Intra-op threads per client so that all clients' teams together fit the free CPUs."""
    return max(1, free_cpus // max(1, client_threads))


@dataclass(frozen=True)
class ThreadPolicy:
    intra_op_threads: int  # torch.set_num_threads
    omp_wait_policy: str  # what libgomp read when torch was loaded
    cpu_affinity_list: str  # e.g. "0-1"
    cpus_busy_at_start: float | None = None  # CPUs other processes used before loading


def wait_policy() -> str:
    """The OpenMP wait policy torch's runtime reads (or read) from the environment."""
    value = os.environ.get(WAIT_POLICY_VARIABLE)
    if value is None or not value.strip():
        return DEFAULT_WAIT_POLICY
    return value


def plan_policy(client_threads: int, torch_threads: int | None) -> ThreadPolicy:
    """The policy for a cell with `client_threads` clients (before torch is imported)."""
    cpus = usable_cpus()
    busy = busy_cpus(cpus) if torch_threads is None else None
    free = len(cpus) if busy is None else max(1, math.floor(len(cpus) - busy + BUSY_SLACK))
    return ThreadPolicy(
        intra_op_threads=torch_threads or default_intra_op_threads(client_threads, free),
        omp_wait_policy=wait_policy(),
        cpu_affinity_list=cpu_list(cpus),
        cpus_busy_at_start=round(busy, 2) if busy is not None else None,
    )


def apply_torch_threads(policy: ThreadPolicy) -> None:
    """Give torch the policy's intra-op thread count, where the engine imported torch. torch
    applies it to every thread that later enters a parallel region, client threads too."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(policy.intra_op_threads)
