"""Fixtures shared by the FasterTransformer converter and engine tests: the tiny models, saved
once, and their conversions, each done once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiny_ft_models import ARCHS, build


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[object, Path]]:
    """Each tiny model and the checkpoint folder it was saved to."""
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for name in ARCHS:
        model = build(name)
        model.save_pretrained(root / name)
        out[name] = (model, root / name)
    return out


@pytest.fixture(scope="module")
def converted(models, tmp_path_factory: pytest.TempPathFactory):
    """convert(name, tp, dtype) -> the `{tp}-gpu` folder, converting each case once."""
    from bench.engines.fastertransformer.convert import convert as _convert

    root = tmp_path_factory.mktemp("ft")
    done: dict[tuple[str, int, str], Path] = {}

    def get(name: str, tp: int, dtype: str = "fp32") -> Path:
        key = (name, tp, dtype)
        if key not in done:
            done[key] = _convert(models[name][1], root / f"{name}-{dtype}", tp, dtype)
        return done[key]

    return get
