"""Whether an engine's outputs agree with the eager fp32 model's on the same inputs.

An engine that transforms the model (DeepSpeed's sharding or kernels, FasterTransformer,
int8, torch.compile, fp16 casts) may change what it computes; these functions say by how much,
against transformers eager in fp32 on the same checkpoint and the same batch:

- `token_agreement`: generation models, the greedy token ids of the first N new tokens of
  every sequence, position by position (after the first disagreement a sequence's later
  tokens follow a different prefix, so `first_mismatch` is the telling figure);
- `logits_difference`: the first forward's logits (or any output tensor), largest absolute
  difference and cosine similarity;
- `eager_reference`: the reference itself, computed for a cell (its checkpoint, its batch);
  bench.measure.quality_check runs the check in a cell and writes its columns.

The comparisons are pure functions over arrays (numpy, or anything numpy can read: torch
tensors on the CPU), so a check can compare outputs made in different processes: a
tensor-parallel cell's ranks cannot also hold the whole eager model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TokenAgreement:
    """Token ids compared position by position over the first N tokens of each sequence."""

    sequences: int  # sequences compared
    tokens: int  # tokens compared per sequence (N)
    matched: int  # positions where both produced the same id
    first_mismatch: tuple[int, int] | None  # (sequence, token index) of the earliest
    # disagreement (smallest token index, then sequence); None when all agree

    @property
    def compared(self) -> int:
        return self.sequences * self.tokens

    @property
    def share(self) -> float:
        """Share of compared positions that agree (1.0 when nothing was compared)."""
        return self.matched / self.compared if self.compared else 1.0

    @property
    def exact(self) -> bool:
        return self.matched == self.compared


def _ids(values: Any) -> np.ndarray:
    array = np.asarray(values.cpu() if hasattr(values, "cpu") else values)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"token ids must be (sequences, tokens); got shape {array.shape}")
    return array


def token_agreement(reference: Any, candidate: Any, first_n: int | None = None) -> TokenAgreement:
    """Compare greedy token ids of the same prompts, shaped (sequences, tokens): the new
    tokens only, or whole sequences when both carry the same prompt ahead of them. The first
    `first_n` tokens of each sequence are compared (all of the shorter when None); a
    candidate with fewer sequences or tokens than asked for counts the missing ones as
    disagreements, so a truncated output never passes."""
    ref, got = _ids(reference), _ids(candidate)
    n = first_n if first_n is not None else min(ref.shape[1], got.shape[1])
    if n > ref.shape[1]:
        raise ValueError(f"the reference has {ref.shape[1]} tokens per sequence, not {n}")
    sequences = ref.shape[0]
    same = np.zeros((sequences, n), dtype=bool)
    rows, cols = min(sequences, got.shape[0]), min(n, got.shape[1])
    same[:rows, :cols] = ref[:rows, :cols] == got[:rows, :cols]
    wrong = np.argwhere(~same.T)  # (token, sequence): the earliest token index first
    first = (int(wrong[0][1]), int(wrong[0][0])) if len(wrong) else None
    return TokenAgreement(sequences, n, int(same.sum()), first)


@dataclass(frozen=True)
class LogitsDifference:
    max_abs: float  # largest absolute difference over every element
    cosine: float  # cosine similarity of the two, flattened

    def within(self, atol: float) -> bool:
        return self.max_abs <= atol


def logits_difference(reference: Any, candidate: Any) -> LogitsDifference:
    """How far an output tensor (logits, hidden states) is from the reference's, computed in
    float64; the shapes must match."""
    ref = np.asarray(reference.float().cpu() if hasattr(reference, "cpu") else reference)
    got = np.asarray(candidate.float().cpu() if hasattr(candidate, "cpu") else candidate)
    if ref.shape != got.shape:
        raise ValueError(f"shapes differ: reference {ref.shape}, candidate {got.shape}")
    a, b = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    # at most 1: rounding lifts identical vectors' cosine to 1.0000000000000002
    cosine = min(1.0, float(a @ b / norms)) if norms else float(np.array_equal(a, b))
    return LogitsDifference(float(np.abs(a - b).max()) if a.size else 0.0, cosine)


def eager_reference(cell: Any) -> dict[str, np.ndarray]:
    """The eager fp32 model's outputs for `cell`'s own batch (Engine.outputs: "logits", and
    "tokens", the greedy new token ids of a generation model, as many as the cell generates).
    The cell's checkpoint is loaded whole, in fp32, by transformers eager on the cell's
    device (engine hf, tp_degree 1), in this process: run it where the whole model fits,
    apart from the ranks of a tensor-parallel cell. The batch is the cell's (seeded by the
    cell), so it is the one the engine under test made."""
    from bench.config.schema import EngineConfig
    from bench.engines.hf import HFEngine

    reference = dataclasses.replace(
        cell, engine=EngineConfig("hf", {}), precision="fp32", tp_degree=1
    )
    engine = HFEngine(reference)
    engine.import_libraries()
    engine.prepare()
    engine.load()
    try:
        generates = cell.model.task in ("generate", "seq2seq")
        count = cell.model.new_tokens if generates else 0
        outputs = engine.outputs(engine.make_batch(), count)
        found = {"logits": outputs["logits"].float().cpu().numpy()}
        if "tokens" in outputs:
            found["tokens"] = outputs["tokens"][:, -count:].cpu().numpy()
        return found
    finally:
        engine.close()
