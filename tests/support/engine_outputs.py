"""Run one engine on one cell's synthetic batch and save what it computed, for comparison.

    python -m tests.support.engine_outputs OUT.npz override [override ...]

Saves `logits` (the model's first output for the batch) and, for generation models, `tokens`
(greedy output ids). Runs in its own process so engines that set up distributed state
(DeepSpeed) or compile caches (torch.compile) do not leak into the test process.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from bench.engines import ENGINES
from bench.plan.grid import plan_from_overrides


def _first_tensor(output: object) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if hasattr(output, "start_logits"):
        return output.start_logits
    return output[0]  # type: ignore[index]


def main(out: str, overrides: list[str]) -> int:
    cell = plan_from_overrides(overrides).cells[0]
    engine = ENGINES[cell.engine.name](cell)
    engine.prepare()
    engine.load()
    info = engine.initialize()
    try:
        batch = engine.make_batch()
        logits = _first_tensor(engine.infer(batch)).float().cpu().numpy()
        saved = {"logits": logits}
        if cell.model.task == "generate":
            tokens = engine.generate(batch, cell.model.new_tokens)
            saved["tokens"] = tokens.cpu().numpy()
        np.savez(out, **saved)
    finally:
        engine.close()
    print(info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2:]))
