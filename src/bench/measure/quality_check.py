"""A cell's output check (`quality`): does the engine compute what the eager fp32 model does?

`quality` is a cell key: `check` (always), `off` (never), `auto` (the default: check cells
whose engine transforms the model, `Engine.transforms_model`: DeepSpeed's kernels and sharding,
FasterTransformer, torch.compile; and every precision but fp32: fp16 / bf16 casts, int8).

After the measured window, outside every timed bracket and after the memory peaks are read,
the engine computes its cell's own batch once more (`Engine.outputs`: the first forward's
logits, and the greedy new tokens of a generation model; a tensor-parallel group's ranks do it
together). Once the engine is closed, the eager fp32 reference of the same checkpoint and the
same batch is computed in the cell's process (transformers eager on the cell's device), or
read from its cache under models_dir (`references/`, keyed by the model's config, the seed
and the batch size), and the two are compared (bench.measure.quality):

- generation models: greedy token agreement over every new token of every sequence;
  `agrees` only when every token matches (`quality_first_mismatch`: the earliest token index
  that does not);
- every model: the first forward's largest absolute logit difference and their cosine
  similarity; an encoder or image model `agrees` when the cosine is at least COSINE_MIN.

Columns: `quality` agrees | differs | unsupported (asked, but the check could not run: why in
`quality_reason`) | null (not asked). The check never fails a cell.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.config.schema import CellConfig
from bench.engines.base import device_kind
from bench.measure.quality import logits_difference, token_agreement

# An encoder's or image model's logits agree with eager fp32 at this cosine similarity or
# above (fp16 and bf16 casts of BERT stay above 0.9999; noise of 10 % of the logits' spread
# falls to ~0.995)
COSINE_MIN = 0.999
# The eager fp32 reference is computed where the cell ran only when its weights take at most
# this share of the memory free there (a model too big for that is checked on a larger host)
REFERENCE_MEMORY_SHARE = 0.5
CACHE_VERSION = 1  # bump when what a reference holds changes


def asked(cell: CellConfig, engine_class: Any) -> bool:
    """Whether `cell`'s outputs are checked (quality=check, or auto on a transforming cell)."""
    if cell.quality == "off":
        return False
    if cell.quality == "check":
        return True
    return bool(engine_class.transforms_model) or cell.precision != "fp32"


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().float().cpu()
    return np.asarray(value)


def candidate_outputs(engine: Any, cell: CellConfig) -> dict[str, np.ndarray] | str:
    """The engine's outputs on its cell's batch, or why it has none to compare."""
    if engine.remote:
        return f"engine {engine.name} serves a model bench did not load: no reference to hold it to"
    new_tokens = cell.model.new_tokens if cell.model.task in ("generate", "seq2seq") else 0
    try:
        got = engine.outputs(engine.make_batch(), new_tokens)
        found = {name: _numpy(value) for name, value in got.items() if value is not None}
        return found or f"engine {engine.name} computes no model outputs"
    except NotImplementedError as exc:
        return str(exc) or f"engine {engine.name} gives no outputs to compare"
    except Exception as exc:  # the measurement stands; the check says why it could not run
        return f"the engine's outputs failed: {type(exc).__name__}: {exc}"[:500]


def _cache_path(cell: CellConfig) -> Path:
    identity = {
        "model": cell.model.__dict__,
        "seed": cell.seed,
        "batch_size": cell.batch_size,
        "version": CACHE_VERSION,
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Path(cell.models_dir).expanduser() / "references" / f"{cell.model.name}-{key}.npz"


def _room_reason(cell: CellConfig, params: int | None) -> str | None:
    """Why the eager fp32 reference cannot be computed here (None when it can)."""
    if not params:
        return None
    need_mb = params * 4 / 2**20
    if device_kind(cell) == "cuda":  # device=auto on a GPU instance runs there too
        import torch

        free_mb = torch.cuda.mem_get_info()[0] / 2**20 if torch.cuda.is_available() else 0.0
        where = "GPU"
    else:
        import psutil

        free_mb = psutil.virtual_memory().available / 2**20
        where = "host"
    if need_mb > REFERENCE_MEMORY_SHARE * free_mb:
        return (
            f"the eager fp32 reference needs {need_mb:,.0f} MiB; the {where} has {free_mb:,.0f} "
            f"MiB free (at most {REFERENCE_MEMORY_SHARE:.0%} of it is used)"
        )
    return None


def reference_outputs(cell: CellConfig) -> tuple[dict[str, np.ndarray], str]:
    """The eager fp32 outputs for `cell`'s batch, and whether they were `computed` or
    `cached`. Written once per model config, seed and batch size (atomically: a rename)."""
    from bench.measure.quality import eager_reference

    path = _cache_path(cell)
    if path.exists():
        with np.load(path) as saved:
            return {name: saved[name] for name in saved.files}, "cached"
    outputs = eager_reference(cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{time.monotonic_ns()}.partial.npz")
    np.savez(partial, **outputs)
    partial.replace(path)
    return outputs, "computed"


def compare(reference: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, Any]:
    """The quality columns from the two sets of outputs."""
    columns: dict[str, Any] = {}
    problems: list[str] = []
    # an engine that only generates (FasterTransformer's GPT) has no logits to compare
    if "logits" in got and reference["logits"].shape == got["logits"].shape:
        difference = logits_difference(reference["logits"], got["logits"])
        columns.update(quality_max_abs_diff=difference.max_abs, quality_cosine=difference.cosine)
    elif "logits" in got:
        problems.append(
            f"logits shaped {got['logits'].shape}, the reference's {reference['logits'].shape}"
        )
    if "tokens" in reference:
        if "tokens" not in got:
            return {"quality": "unsupported", "quality_reason": "the engine generated no tokens"}
        tokens = got["tokens"]
        tokens = tokens[:, 0, :] if tokens.ndim == 3 else tokens  # (batch, beam, ids)
        n = reference["tokens"].shape[1]
        agreement = token_agreement(reference["tokens"], tokens[:, -n:], first_n=n)
        columns.update(
            quality_tokens_compared=agreement.compared,
            quality_token_agreement=agreement.share,
            quality_first_mismatch=agreement.first_mismatch[1]
            if agreement.first_mismatch
            else None,
        )
        verdict = "agrees" if agreement.exact else "differs"
        if not agreement.exact:
            sequence, index = agreement.first_mismatch or (0, 0)
            problems.insert(
                0,
                f"{agreement.compared - agreement.matched} of {agreement.compared} greedy tokens "
                f"differ, the first at token {index} of sequence {sequence}",
            )
    elif "quality_cosine" in columns:
        verdict = "agrees" if columns["quality_cosine"] >= COSINE_MIN else "differs"
        if verdict == "differs":
            problems.insert(0, f"logits cosine {columns['quality_cosine']:.6f} < {COSINE_MIN}")
    else:
        return {"quality": "unsupported", "quality_reason": "; ".join(problems)}
    return {**columns, "quality": verdict, "quality_reason": "; ".join(problems) or None}


def check(cell: CellConfig, got: dict[str, np.ndarray] | str, params: int | None) -> dict[str, Any]:
    """The row's quality columns for the engine's outputs `got` (or why it has none).
    Never raises: a check that cannot run says why."""
    started = time.perf_counter()
    if isinstance(got, str):
        return {"quality": "unsupported", "quality_reason": got}
    try:
        if reason := _room_reason(cell, params):
            return {"quality": "unsupported", "quality_reason": reason}
        reference, source = reference_outputs(cell)
        columns = compare(reference, got)
    except Exception as exc:  # the check says why; the measurement stands
        reason = f"{type(exc).__name__}: {exc}"[:500]
        return {"quality": "unsupported", "quality_reason": reason}
    columns.update(quality_reference=source, quality_check_s=time.perf_counter() - started)
    return columns
