"""synthetic: a distinct prompt per request from a seeded stream of random token ids, input
and output lengths each fixed or drawn (bench.measure.workloads.lengths). `repeat` sends one
prompt every time (the same ids and lengths: what a server's prefix cache answers from memory
after the first request)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.config.schema import CellConfig
from bench.engines.base import Inputs
from bench.measure.workloads.base import LengthOptions, Source, Workload

BLOCK = 256  # lengths drawn this many at a time


@dataclass(frozen=True)
class SyntheticOptions(LengthOptions):
    repeat: bool = False  # every request the same prompt (the first one drawn)


class SyntheticSource(Source):
    def __init__(self, cell: CellConfig, options: SyntheticOptions) -> None:
        super().__init__(cell, options)
        self.input, self.output = Synthetic.lengths(cell, options)
        self.batch = cell.batch_size
        self.lens: list[tuple[int, int]] = []
        self.pinned = options.repeat

    def _lengths(self) -> tuple[int, int]:
        if not self.lens:
            ins = self.input.draw(self.rng, BLOCK).tolist()
            outs = self.output.draw(self.rng, BLOCK).tolist()
            self.lens = list(zip(ins, outs, strict=True))[::-1]
        return self.lens.pop()

    def next(self, client: int, arrival: int) -> Inputs:
        drawn = [self._lengths() for _ in range(self.batch)]
        n_out = drawn[0][1]  # one output length per request (engines take one max_tokens)
        return Inputs(
            prompts=tuple(self.ids(n_in) for n_in, _ in drawn),
            output_lens=(n_out,) * self.batch,
            key=self.count,
        )


class Synthetic(Workload):
    name = "synthetic"
    Options = SyntheticOptions
    source_class = SyntheticSource

    @classmethod
    def varies(cls, options: Any) -> bool:
        """Lengths other than the model's seq_len and new_tokens (content alone may repeat)."""
        fixed = options.input_dist == "fixed" and options.output_dist == "fixed"
        return not (fixed and options.input_mean is None and options.output_mean is None)
