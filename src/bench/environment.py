"""Facts about where a cell ran: versions, host, CPU. Read without importing torch."""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import bench


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
            cwd=Path(bench.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_facts() -> dict[str, object]:
    """Row columns describing the host and the software versions."""
    return {
        "hostname": socket.gethostname(),
        "cpu_name": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python_version": platform.python_version(),
        "torch_version": _version("torch"),
        "transformers_version": _version("transformers"),
        "bench_version": bench.__version__,
        "git_sha": git_sha(),
    }
