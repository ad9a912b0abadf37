"""Build bench's images on a machine with podman and no registry: a local CPU base, then the
images on it.

    python containers/build_local.py [hf] [deepspeed] [--tag cpu] [--builder podman]

1. The base: `localhost/bench-base:bookworm`, a minimal Debian with python3 (mmdebstrap, then
   `podman import`), made once and reused while the image exists.
2. Each image: `podman build --format docker --network host` with `BASE_IMAGE` pointing at
   that base, so the Dockerfile installs torch's CPU build (`TORCH`) itself; tagged
   `localhost/bench-NAME:TAG`.

pip inside the build reaches the package registries as pip on this host does: the host's pip
configuration (`pip config list`: files and PIP_* variables) is written to one file mounted at
/etc/pip.conf for the build, and every local path it names (CA bundle, wheel folders, file://
indexes) is mounted read-only at the same path. Nothing of it stays in the image.

Prints each step with its time; exits non-zero with the builder's last lines on failure.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = "localhost/bench-base:bookworm"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
IMAGES = ("hf", "deepspeed")
# Build arguments an image needs on the CPU base besides BASE_IMAGE and TORCH.
CPU_ARGS = {"deepspeed": {"DS_ACCELERATOR": "cpu"}}


def log(message: str) -> None:
    print(f"build_local: {message}", file=sys.stderr, flush=True)


def run(command: list[str], **kwargs) -> None:
    log("$ " + shlex.join(command))
    subprocess.run(command, check=True, **kwargs)


def image_exists(builder: str, image: str) -> bool:
    found = subprocess.run([builder, "image", "exists", image], capture_output=True, check=False)
    return found.returncode == 0


def make_base(builder: str) -> None:
    """A minimal Debian bookworm (python 3.11, as the CPU torch wheel wants) as a local image."""
    if image_exists(builder, BASE):
        log(f"base {BASE}: present, reused")
        return
    if not shutil.which("mmdebstrap"):
        raise SystemExit("build_local: mmdebstrap not found (apt-get install mmdebstrap)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        rootfs = Path(scratch) / "rootfs.tar"
        run(
            [
                *("mmdebstrap", "--quiet", "--variant=minbase", f"--include={BASE_PACKAGES}"),
                *("bookworm", str(rootfs)),
            ]
        )
        run([builder, "import", str(rootfs), BASE], stdout=subprocess.DEVNULL)
    log(f"base {BASE}: made in {time.monotonic() - started:.0f} s")


def pip_settings() -> dict[str, str]:
    """The host pip's effective settings, `key -> value` (files first, PIP_* variables win)."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    settings: dict[str, str] = {}
    from_env: dict[str, str] = {}
    for line in listed.splitlines():
        match = re.fullmatch(r"(:env:|[\w-]+)\.([\w-]+)='(.*)'", line.strip())
        if match:
            section, key, value = match.groups()
            (from_env if section == ":env:" else settings)[key] = value
    return {**settings, **from_env}


def local_paths(settings: dict[str, str]) -> list[Path]:
    """Existing local files and folders the settings name: plain paths, and for file:// index
    URLs the folder above (a local index's pages link to files beside its `simple/`)."""
    found = set()
    for value in settings.values():
        for word in value.split():
            path = Path(word.removeprefix("file://"))
            if path.is_absolute() and path.exists():
                found.add(path.parent if word.startswith("file://") else path)
    # A folder covers everything under it: mount each tree once.
    return [p for p in sorted(found) if not any(q in p.parents for q in found)]


def pip_mounts(scratch: Path) -> list[str]:
    """`--volume` arguments giving the build the host's pip configuration, read-only."""
    settings = pip_settings()
    config = scratch / "pip.conf"
    config.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    volumes = [f"{config}:/etc/pip.conf:ro"]
    volumes += [f"{path}:{path}:ro" for path in local_paths(settings)]
    return [arg for volume in volumes for arg in ("--volume", volume)]


def git_sha() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def build(builder: str, name: str, tag: str, torch: str) -> str:
    image = f"localhost/bench-{name}:{tag}"
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        run(
            # docker format: OCI image config has no SHELL or HEALTHCHECK, which podman would
            # then drop (and pipefail with it); registries such as ECR take either.
            [builder, "build", "--format", "docker", "--network", "host"]
            + pip_mounts(Path(scratch))
            + ["--build-arg", f"BASE_IMAGE={BASE}", "--build-arg", f"TORCH={torch}"]
            + ["--build-arg", f"BENCH_GIT_SHA={git_sha()}"]
            + [a for k, v in CPU_ARGS.get(name, {}).items() for a in ("--build-arg", f"{k}={v}")]
            + ["-f", str(REPO / "containers" / f"Dockerfile.{name}"), "-t", image, str(REPO)],
            stdout=sys.stderr,
        )
    size = subprocess.run(
        [builder, "image", "inspect", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    log(f"{image}: built in {time.monotonic() - started:.0f} s, {int(size) / 2**20:.0f} MiB")
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help=f"any of {', '.join(IMAGES)} (default: all)")
    parser.add_argument("--tag", default="cpu", help="tag of the built images (default: cpu)")
    parser.add_argument("--builder", default=os.environ.get("BENCH_BUILDER", "podman"))
    parser.add_argument(
        "--torch", default="torch==2.13.0", help="what pip installs for torch on the CPU base"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.images if name not in IMAGES]
    if unknown:
        log(f"image {unknown[0]!r} is not one of {', '.join(IMAGES)}")
        return 2
    if not shutil.which(args.builder):
        log(f"{args.builder} not found (apt-get install podman runc mmdebstrap)")
        return 2
    try:
        make_base(args.builder)
        for name in args.images or IMAGES:
            print(build(args.builder, name, args.tag, args.torch), flush=True)
    except subprocess.CalledProcessError as error:
        log(f"failed: {shlex.join(map(str, error.cmd))} exited with {error.returncode}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
