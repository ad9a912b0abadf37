"""shared_prefix: `prefixes` prompts of `prefix_len` random ids, each shared by a group of
requests that add a distinct suffix (input_* lengths): the prefix-cache / KV-reuse workload.
Requests take the prefixes in turn, so each group gets every prefixes-th request."""

from __future__ import annotations

from dataclasses import dataclass

from bench.config.checks import int_at_least
from bench.config.schema import CellConfig
from bench.engines.base import Inputs
from bench.measure.workloads.base import LengthOptions, Source, Workload


@dataclass(frozen=True)
class SharedPrefixOptions(LengthOptions):
    prefixes: int = 8  # distinct shared prefixes (P)
    prefix_len: int = 256  # tokens in each (Lp); input_* is the suffix each request adds
    input_mean: int | None = 32  # the suffix's (null: the model's seq_len)


class SharedPrefixSource(Source):
    def __init__(self, cell: CellConfig, options: SharedPrefixOptions) -> None:
        super().__init__(cell, options)
        self.input, self.output = SharedPrefix.lengths(cell, options)
        self.shared = [self.ids(options.prefix_len) for _ in range(options.prefixes)]

    def next(self, client: int, arrival: int) -> Inputs:
        n_out = int(self.output.draw(self.rng, 1)[0])
        prompts = []
        for k in range(self.cell.batch_size):
            prefix = self.shared[(self.count * self.cell.batch_size + k) % len(self.shared)]
            prompts.append(prefix + self.ids(int(self.input.draw(self.rng, 1)[0])))
        return Inputs(tuple(prompts), (n_out,) * len(prompts), key=self.count)


class SharedPrefix(Workload):
    name = "shared_prefix"
    Options = SharedPrefixOptions
    source_class = SharedPrefixSource

    @classmethod
    def validate(cls, options: SharedPrefixOptions) -> None:
        super().validate(options)
        int_at_least("workload.prefixes", options.prefixes, 1)
        int_at_least("workload.prefix_len", options.prefix_len, 1)
