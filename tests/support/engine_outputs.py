"""Run one engine on one cell's synthetic batch and save what it computed, for comparison.

    python -m tests.support.engine_outputs OUT.npz override [override ...]

Saves `logits` (the model's first output for the batch) and, for generation models, `tokens`
(greedy output ids). Runs in its own process so engines that set up distributed state
(DeepSpeed) or compile caches (torch.compile) do not leak into the test process.
"""

from __future__ import annotations

import sys

import numpy as np

from bench.engines import ENGINES
from bench.plan.grid import plan_from_overrides


def main(out: str, overrides: list[str]) -> int:
    cell = plan_from_overrides(overrides).cells[0]
    engine = ENGINES[cell.engine.name](cell)
    engine.prepare()
    engine.load()
    info = engine.initialize()
    try:
        new_tokens = cell.model.new_tokens if cell.model.task == "generate" else 0
        found = engine.outputs(engine.make_batch(), new_tokens)
        floats = {k: v.float() if v.is_floating_point() else v for k, v in found.items()}
        np.savez(out, **{name: value.cpu().numpy() for name, value in floats.items()})
    finally:
        engine.close()
    print(info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2:]))
