"""Model checkpoints: a local folder given in config, or one built once from an architecture.

With no network, a model is a real transformers architecture built from its config with random
weights (timing equals pretrained weights of the same shape), saved once as safetensors under
`models_dir`, so every cell's load is a real read from disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.config import ModelConfig

WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json")


def auto_class(name: str) -> Any:
    import transformers

    return getattr(transformers, name)  # name is one of config.AUTO_CLASSES, checked earlier


def checkpoint_key(model: ModelConfig, seed: int) -> str:
    """Folder name for a built checkpoint: changes whenever the architecture does."""
    spec = {"auto_class": model.auto_class, "architecture": model.architecture, "seed": seed}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"{model.name}-{digest}"


def _is_complete(folder: Path) -> bool:
    has_weights = any((folder / name).exists() for name in WEIGHTS_FILES)
    return (folder / "config.json").exists() and has_weights


def build_from_config(model: ModelConfig, folder: Path, seed: int) -> None:
    """Build the architecture with random weights and save it as safetensors into `folder`."""
    import torch
    import transformers

    arch = dict(model.architecture)
    config = transformers.AutoConfig.for_model(arch.pop("model_type"), **arch)
    torch.manual_seed(seed)
    built = auto_class(model.auto_class).from_config(config)
    built.save_pretrained(folder, safe_serialization=True)


def ensure_checkpoint(model: ModelConfig, models_dir: str, seed: int) -> tuple[Path, float | None]:
    """Path of the model's checkpoint, building it first if needed.

    Returns (folder, seconds spent building or None when it was already there). Concurrent
    cells may race to build the same model: each builds in a private temp folder and renames;
    the loser discards its copy.
    """
    if model.checkpoint:
        folder = Path(model.checkpoint).expanduser()
        if not _is_complete(folder):
            raise FileNotFoundError(
                f"model.checkpoint={model.checkpoint!r}: no config.json + safetensors weights there"
            )
        return folder, None
    root = Path(models_dir).expanduser()
    folder = root / checkpoint_key(model, seed)
    if _is_complete(folder):
        return folder, None
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
    try:
        build_from_config(model, tmp, seed)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished first
            if not _is_complete(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, time.perf_counter() - started
