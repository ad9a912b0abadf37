"""A virtual environment with PyTriton (nvidia-pytriton: the NVIDIA Triton Inference Server
binary and its Python backend, which run on a CPU), built once per machine, for the test
that measures a real Triton server over the KServe v2 protocol (tests/support/
triton_models.py serves the models).

PyTriton pins numpy < 2 (bench's lock has 2.x), so it cannot share bench's environment; the
server runs from this one and bench's cell talks to it over loopback. It is built in
`~/.cache/bench/pytriton-<version>` (or $BENCH_TRITON_VENV) with bench's own interpreter, whose
libpython Triton's Python backend stub then loads; a marker file says the build finished.

    python -m tests.support.triton_env     # build it (or say where it is) and print its python
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PYTRITON_VERSION = "0.7.0"  # Triton 2.51.0


def venv_dir() -> Path:
    default = Path.home() / ".cache" / "bench" / f"pytriton-{PYTRITON_VERSION}"
    return Path(os.environ.get("BENCH_TRITON_VENV") or default)


def ensure_triton_python() -> Path:
    """The environment's python, building the environment first where it is not complete."""
    root = venv_dir()
    python, marker = root / "bin" / "python", root / ".bench-ready"
    if marker.exists() and python.exists():
        return python
    root.parent.mkdir(parents=True, exist_ok=True)
    log = root.parent / f"{root.name}.build.log"
    if root.exists():
        shutil.rmtree(root)
    with open(log, "w") as out:
        for command in (
            [sys.executable, "-m", "venv", str(root)],
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             f"nvidia-pytriton=={PYTRITON_VERSION}"],
        ):  # fmt: skip
            out.write(f"$ {' '.join(command)}\n")
            out.flush()
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command[:5])} failed; see {log}")
    marker.write_text(PYTRITON_VERSION)
    return python


if __name__ == "__main__":
    print(ensure_triton_python())
