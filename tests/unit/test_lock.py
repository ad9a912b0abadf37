"""The lock pins what pyproject.toml allows, images pin nothing it excludes, and the
environment the tests run in was installed from the lock."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
LEFT_TO_THE_INSTALL = {"torch", "triton"}  # each install (CPU, an image's CUDA) picks its own
DOCKERFILES = sorted((ROOT / "containers").glob("Dockerfile.*"))


def _lock() -> dict[str, Version]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in [*project["dependencies"], *extras]]


def _image_pins(text: str) -> dict[str, str]:
    """`pkg==version` in pip install lines, and ARG <PKG>_VERSION defaults."""
    pins = {m[0]: m[1] for m in re.findall(r'"?([A-Za-z][\w.-]*)==([\w.]+)"?', text)}
    for arg, version in re.findall(r"^ARG ([A-Z0-9_]+)_VERSION=([\w.]+)", text, re.M):
        pins[arg.lower().replace("_", "-")] = version
    return {canonicalize_name(k): v for k, v in pins.items() if "$" not in v}


def test_every_line_of_the_lock_is_a_pin():
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9][\w.-]*==[\w.+!-]+", line), line


def test_the_lock_pins_every_dependency_within_its_range():
    pins = _lock()
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        if name in LEFT_TO_THE_INSTALL:
            assert name not in pins, f"{name} is left to each install; the lock must not pin it"
            continue
        assert name in pins, f"{name} is a dependency the lock does not pin: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"the lock pins {name}=={pins[name]}, which pyproject.toml's {requirement} excludes"
        )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_pin_nothing_pyproject_or_the_lock_contradicts(dockerfile):
    ranges = {canonicalize_name(r.name): r.specifier for r in _requirements()}
    pins = _lock()
    for name, version in _image_pins(dockerfile.read_text()).items():
        if name in ranges:
            assert ranges[name].contains(version, prereleases=True), (
                f"{dockerfile.name} pins {name}=={version}, which pyproject.toml excludes "
                f"({ranges[name]})"
            )
        if name in pins:
            assert Version(version) == pins[name], (
                f"{dockerfile.name} pins {name}=={version}; the lock has {pins[name]}"
            )


def test_this_environment_was_installed_from_the_lock():
    pins = _lock()
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        if name in LEFT_TO_THE_INSTALL:
            continue
        installed = Version(importlib.metadata.version(name))
        assert installed == pins[name], f"{name} {installed} installed; the lock: {pins[name]}"


def test_a_pin_outside_pyproject_is_caught():
    """The image check itself: the accelerate pin that once made the hf image unbuildable."""
    ranges = {canonicalize_name(r.name): r.specifier for r in _requirements()}
    pins = _image_pins('RUN pip install . "accelerate==1.12.0"\nARG DEEPSPEED_VERSION=0.18.2\n')
    assert pins == {"accelerate": "1.12.0", "deepspeed": "0.18.2"}
    assert not ranges["accelerate"].contains(pins["accelerate"])
