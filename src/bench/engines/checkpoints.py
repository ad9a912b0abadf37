"""Model checkpoints: a local folder given in config, or one built once from an architecture.

With no network, a model is a real transformers architecture built from its config with random
weights (timing equals pretrained weights of the same shape), saved once as safetensors under
`models_dir`, so every cell's load is a real read from disk. `model.checkpoint` may instead name
a local HF checkpoint folder, or an s3:// prefix holding one (downloaded once, in parallel
parts, and timed as download_s).

An engine may keep its own form of a checkpoint beside it (DeepSpeed's per-rank shards):
`derived_folder` names it after the checkpoint's weights and the form's spec, and
`publish_folder` writes it once, so every later cell reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config.schema import ModelConfig

WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json")
DOWNLOAD_PART_BYTES = 16 * 2**20  # ranged GETs of 16 MiB ...
DOWNLOAD_THREADS = 8  # ... eight at a time


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


@dataclass
class Checkpoint:
    folder: Path  # local folder with config.json + safetensors
    build_s: float | None = None  # seconds spent building it from config, when it was
    download_s: float | None = None  # seconds spent copying it from s3://, when it was


def publish_folder(
    folder: Path,
    fill: Callable[[Path], Path | None],
    complete: Callable[[Path], bool] = _is_complete,
) -> float:
    """Fill a private temp folder beside `folder` and rename it (or the folder `fill` returns,
    inside it) into place, so a reader never sees a half-written one. Concurrent processes may
    race: the loser discards its copy when the winner's is `complete`. Returns the seconds
    taken."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        written = fill(tmp) or tmp
        try:
            os.rename(written, folder)
        except OSError:  # another process finished first
            if not complete(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return time.perf_counter() - started


def weight_files(folder: Path) -> list[Path]:
    """The checkpoint's safetensors weight files, in the order its index lists them."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        names = dict.fromkeys(json.loads(index.read_text())["weight_map"].values())
        return [folder / name for name in names]
    return sorted(folder.glob("*.safetensors"))


def derived_folder(checkpoint: Path, models_dir: str, kind: str, spec: dict[str, Any]) -> Path:
    """Where a form of `checkpoint` made once and then reused lives (an engine's per-rank
    shards, a loader's index): under models_dir, named by the checkpoint's folder and `kind`
    plus a digest of the checkpoint's weight files (path, size, modification time) and
    `spec`, so a rebuilt checkpoint or another spec (TP degree, dtype, library version) gets a
    folder of its own instead of stale files."""
    checkpoint = checkpoint.expanduser().resolve()
    files = [
        (str(path), path.stat().st_size, path.stat().st_mtime_ns)
        for path in weight_files(checkpoint)
    ]
    key = json.dumps({"checkpoint": str(checkpoint), "files": files, **spec}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(models_dir).expanduser() / f"{checkpoint.name}.{kind}-{digest}"


def download_s3_folder(uri: str, target: Path) -> None:
    """Copy every object under s3://bucket/prefix/ into target; large files in parallel parts."""
    import boto3
    from boto3.s3.transfer import TransferConfig

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.rstrip("/") + "/"
    client = boto3.client("s3")
    transfer = TransferConfig(
        multipart_threshold=DOWNLOAD_PART_BYTES,
        multipart_chunksize=DOWNLOAD_PART_BYTES,
        max_concurrency=DOWNLOAD_THREADS,
    )
    keys = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    ]
    if not keys:
        raise FileNotFoundError(f"model.checkpoint={uri!r}: no objects under that prefix")
    for key in keys:
        local = target / key[len(prefix) :]
        local.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(local), Config=transfer)


# A Hugging Face Hub repo id: `name` or `owner/name`, not a path that exists here.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
HUB_FILES = ["config.json", "*.safetensors", "*.safetensors.index.json"]


def is_hub_id(source: str) -> bool:
    return bool(_HUB_ID.match(source)) and not Path(source).expanduser().exists()


class HubUnavailable(RuntimeError):
    """A hub id as model.checkpoint, and the Hub cannot be reached (or has no such repo)."""


def _from_hub(repo_id: str, root: Path) -> Checkpoint:
    """The repo's config and safetensors weights, fetched once into models_dir (download_s);
    one clear line when the network, the repo or its safetensors are not there."""
    folder = root / f"hub-{repo_id.replace('/', '--')}"
    if _is_complete(folder):
        return Checkpoint(folder)
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise HubUnavailable(f"model.checkpoint={repo_id!r}: huggingface_hub missing") from exc

    def fetch(tmp: Path) -> None:
        snapshot_download(repo_id, local_dir=tmp, allow_patterns=HUB_FILES)

    try:
        seconds = publish_folder(folder, fetch)
    except Exception as exc:  # offline, no such repo, gated: one line, the cause named
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        # shortened at a word, marked: a cut mid-sentence reads as the whole message
        cause = textwrap.shorten(cause, 200, placeholder=" [...]")
        raise HubUnavailable(
            f"model.checkpoint={repo_id!r}: not a local folder, and fetching it from the "
            f"Hugging Face Hub failed ({type(exc).__name__}: {cause}); give a local "
            "checkpoint folder or an s3:// prefix"
        ) from exc
    if not _is_complete(folder):
        raise HubUnavailable(f"model.checkpoint={repo_id!r}: the repo has no safetensors weights")
    return Checkpoint(folder, download_s=seconds)


def ensure_checkpoint(model: ModelConfig, models_dir: str, seed: int) -> Checkpoint:
    """The model's checkpoint on local disk: a given folder, an s3:// copy (downloaded once
    into models_dir), or one built once from the architecture.

    Concurrent cells may race to build or download the same model: each works in a private
    temp folder and renames; the loser discards its copy.
    """
    root = Path(models_dir).expanduser()
    source = model.checkpoint
    if source and source.startswith("s3://"):
        digest = hashlib.sha256(source.encode()).hexdigest()[:12]
        folder = root / f"s3-{digest}"
        if _is_complete(folder):
            return Checkpoint(folder)
        seconds = publish_folder(folder, lambda tmp: download_s3_folder(source, tmp))
        if not _is_complete(folder):
            raise FileNotFoundError(f"model.checkpoint={source!r}: no config.json + safetensors")
        return Checkpoint(folder, download_s=seconds)
    if source and is_hub_id(source):
        return _from_hub(source, root)
    if source:
        folder = Path(source).expanduser()
        if not _is_complete(folder):
            raise FileNotFoundError(
                f"model.checkpoint={source!r}: no config.json + safetensors weights there"
            )
        return Checkpoint(folder)
    folder = root / checkpoint_key(model, seed)
    if _is_complete(folder):
        return Checkpoint(folder)
    seconds = publish_folder(folder, lambda tmp: build_from_config(model, tmp, seed))
    return Checkpoint(folder, build_s=seconds)
