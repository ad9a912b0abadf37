"""The cell process's CPU thread policy: intra-op threads per client, OpenMP wait policy."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.measure import threads


@pytest.mark.parametrize(
    ("cpus", "expected"), [([0], "0"), ([0, 1], "0-1"), ([0, 1, 2, 5], "0-2,5"), ([3, 7], "3,7")]
)
def test_cpu_list_uses_the_taskset_notation(cpus, expected):
    assert threads.cpu_list(cpus) == expected


@pytest.mark.parametrize(
    ("clients", "cpus", "expected"), [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 16, 8), (3, 16, 5)]
)
def test_clients_share_the_cpus(clients, cpus, expected):
    assert threads.default_intra_op_threads(clients, cpus) == expected


def test_the_policy_records_what_is_in_force(monkeypatch):
    cpus = len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    policy = threads.plan_policy(client_threads=2, torch_threads=None)
    assert policy.omp_wait_policy == "ACTIVE"  # the user's choice is kept
    assert policy.cpu_affinity_list == threads.cpu_list(sorted(os.sched_getaffinity(0)))
    assert 1 <= policy.intra_op_threads <= max(1, cpus // 2)
    assert 0 <= policy.cpus_busy_at_start <= cpus
    monkeypatch.delenv("OMP_WAIT_POLICY")
    pinned = threads.plan_policy(client_threads=2, torch_threads=3)
    assert pinned.intra_op_threads == 3 and pinned.cpus_busy_at_start is None
    assert pinned.omp_wait_policy == threads.DEFAULT_WAIT_POLICY


def test_busy_cpus_sees_other_processes_spinning():
    """A spinning process on every usable CPU: busy_cpus counts them, and the default
    policy then gives a client a single intra-op thread (no team on cores in use)."""
    cpus = sorted(os.sched_getaffinity(0))
    code = "import time\nend = time.time() + 10\nwhile time.time() < end: pass"
    loops = [subprocess.Popen([sys.executable, "-c", code]) for _ in cpus]
    try:
        time.sleep(0.3)
        assert threads.busy_cpus(cpus) >= len(cpus) - 0.5
        assert threads.plan_policy(client_threads=1, torch_threads=None).intra_op_threads == 1
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def test_torch_threads_apply_to_client_threads_too():
    """torch.set_num_threads on the main thread holds in threads started afterwards: the
    clients' parallel regions get the policy's team size."""
    import threading

    import torch

    before = torch.get_num_threads()
    try:
        threads.apply_torch_threads(threads.ThreadPolicy(1, threads.DEFAULT_WAIT_POLICY, "0"))
        seen: list[int] = []
        worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        worker.start()
        worker.join()
        assert seen == [1]
    finally:
        torch.set_num_threads(before)
