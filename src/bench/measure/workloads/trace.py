"""trace: replay a timestamped request trace. JSONL, one request a line: `timestamp` (ms),
`input_length`, `output_length` and optionally `hash_ids` (the fields of the public Mooncake
traces; `input_tokens` / `output_tokens` and Azure's `ContextTokens` / `GeneratedTokens` are
read too). Arrivals come at the trace's times divided by `speedup`, from the first; latency
runs from the scheduled time as in any open loop. Each hash id stands for a block of
`block_size` tokens, the same ids wherever it recurs, so requests that share hash ids share
that prefix (the KV reuse the trace records); the rest of a prompt is random ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.config.checks import int_at_least, positive
from bench.config.schema import CellConfig
from bench.engines.base import Inputs
from bench.measure.workloads.base import FIRST_ID, Source, Workload
from bench.measure.workloads.files import check_path, read_lines

ALIASES = {
    "timestamp": ("timestamp", "TIMESTAMP", "time_ms"),
    "input": ("input_length", "input_tokens", "ContextTokens"),
    "output": ("output_length", "output_tokens", "GeneratedTokens"),
}


@dataclass(frozen=True)
class TraceOptions:
    path: str = ""  # a local file or s3://bucket/key (JSONL)
    speedup: float = 1.0  # replay this many times faster than recorded
    block_size: int = 512  # tokens one hash id stands for (Mooncake's blocks)
    limit: int = 0  # replay the first N requests (0: all)
    vocab: int = 0  # token ids from [3, vocab); 0: the model's vocab_size


@dataclass(frozen=True)
class Record:
    at_ms: float
    input_len: int
    output_len: int
    hashes: tuple[int, ...]


def _field(entry: dict[str, Any], what: str, line: int) -> Any:
    for name in ALIASES[what]:
        if name in entry:
            return entry[name]
    raise ValueError(f"line {line}: no {what} field (one of {', '.join(ALIASES[what])})")


def parse(lines: list[dict[str, Any]]) -> list[Record]:
    records = []
    for number, entry in enumerate(lines, 1):
        at = float(_field(entry, "timestamp", number))
        n_in, n_out = int(_field(entry, "input", number)), int(_field(entry, "output", number))
        if n_in < 1 or n_out < 1:
            raise ValueError(f"line {number}: lengths must be >= 1 (got {n_in}, {n_out})")
        records.append(Record(at, n_in, n_out, tuple(int(h) for h in entry.get("hash_ids") or ())))
    records.sort(key=lambda r: r.at_ms)
    return records


class TraceSource(Source):
    cycles = False  # each arrival is its own record

    def __init__(self, cell: CellConfig, options: TraceOptions) -> None:
        super().__init__(cell, options)
        records = parse(read_lines(options.path))
        self.records = records[: options.limit] if options.limit else records
        if not self.records:
            raise ValueError(f"{options.path}: the trace has no request")
        start = self.records[0].at_ms
        self.schedule_ns = np.array(
            [int((r.at_ms - start) / options.speedup * 1e6) for r in self.records], dtype=np.int64
        )
        self.blocks: dict[int, tuple[int, ...]] = {}

    def _block(self, key: int) -> tuple[int, ...]:
        if key not in self.blocks:
            rng = np.random.default_rng([self.cell.seed, key])
            size = self.options.block_size
            self.blocks[key] = tuple(rng.integers(FIRST_ID, self.vocab, size=size).tolist())
        return self.blocks[key]

    def next(self, client: int, arrival: int) -> Inputs:
        index = arrival if arrival >= 0 else self.count % len(self.records)
        record = self.records[index]
        shared: tuple[int, ...] = ()
        for key in record.hashes:
            if len(shared) >= record.input_len:
                break
            shared += self._block(key)
        prompt = shared[: record.input_len]
        prompt += self.ids(record.input_len - len(prompt))
        n = self.cell.batch_size
        return Inputs((prompt,) * n, (record.output_len,) * n, key=index)


class Trace(Workload):
    name = "trace"
    Options = TraceOptions
    source_class = TraceSource
    scenarios = ("open_loop",)
    scenarios_why = "sets the arrival times itself"

    @classmethod
    def validate(cls, options: TraceOptions) -> None:
        super().validate(options)
        check_path(options.path, "trace (JSONL)")
        positive("workload.speedup", options.speedup)
        int_at_least("workload.block_size", options.block_size, 1)
        int_at_least("workload.limit", options.limit, 0)
        int_at_least("workload.vocab", options.vocab, 0)
