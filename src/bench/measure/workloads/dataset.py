"""dataset: prompts, and optionally output lengths, from a file (local or s3://), read when
the cell starts; nothing is downloaded from anywhere else.

Formats (`format: auto` tells them apart by the file's first character):
- ShareGPT JSON: a list of {"conversations": [{"from": "human", "value": ...}, {"from":
  "gpt", "value": ...}, ...]}: the first human turn is the prompt, the answer after it sets
  the output length (its words).
- JSONL: one object a line with `prompt` (text) or `messages` (OpenAI chat messages), and
  optionally `output_len`.

Lengths are counted in words (whitespace-separated): bench has no tokenizer for a model built
from config. Endpoints get the text (their usage reports its tokens: server_input_tokens);
in-process engines get one token id per word (a stable hash of the word). Entries whose
prompt is outside [min_input_len, max_input_len] words are left out; the rest are shuffled
with the cell's seed and sent in that order, cycling when a window outlasts them (the row's
distinct_prompts says how many were sent)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from bench.config.checks import choice, int_at_least
from bench.config.schema import CellConfig
from bench.engines.base import Inputs
from bench.measure.workloads.base import FIRST_ID, Source, Workload
from bench.measure.workloads.files import check_path, read_bytes, read_json, read_lines

FORMATS = ("auto", "sharegpt", "jsonl")


@dataclass(frozen=True)
class DatasetOptions:
    path: str = ""  # a local file or s3://bucket/key
    format: str = "auto"  # auto | sharegpt | jsonl
    min_input_len: int = 1  # words; shorter prompts are left out
    max_input_len: int = 0  # words; 0: no bound
    output_len: int = 0  # tokens asked of every request; 0: the entry's (else new_tokens)
    max_output_len: int = 0  # an entry's output length is cut to this; 0: no bound
    samples: int = 0  # use this many entries (seeded); 0: all that pass the filters
    vocab: int = 0  # in-process engines: token ids from [3, vocab); 0: the model's


@dataclass(frozen=True)
class Entry:
    text: str
    turns: tuple[tuple[str, str], ...]  # chat messages, when the file gave them
    output_len: int | None


def _sharegpt(data: Any) -> list[Entry]:
    if not isinstance(data, list):
        raise ValueError("a ShareGPT file is a JSON list of {conversations: [...]}")
    entries = []
    for item in data:
        talk = item.get("conversations") if isinstance(item, dict) else None
        if not talk:
            continue
        for k, turn in enumerate(talk):
            if turn.get("from") in ("human", "user") and turn.get("value"):
                after = talk[k + 1].get("value", "") if k + 1 < len(talk) else ""
                answer = len(after.split()) or None
                entries.append(Entry(turn["value"], (), answer))
                break
    return entries


def _jsonl(lines: list[dict[str, Any]]) -> list[Entry]:
    entries = []
    for number, item in enumerate(lines, 1):
        output = item.get("output_len")
        if output is not None and (not isinstance(output, int) or output < 1):
            raise ValueError(f"line {number}: output_len must be an integer >= 1")
        if isinstance(item.get("messages"), list):
            turns = tuple((str(m.get("role")), str(m.get("content"))) for m in item["messages"])
            entries.append(Entry("\n".join(content for _, content in turns), turns, output))
        elif isinstance(item.get("prompt"), str):
            entries.append(Entry(item["prompt"], (), output))
        else:
            raise ValueError(f"line {number}: neither a prompt (text) nor messages (a list)")
    return entries


def load_entries(path: str, format: str) -> list[Entry]:
    if format == "auto":
        first = read_bytes(path).lstrip()[:1]
        format = "sharegpt" if first == b"[" else "jsonl"
    return _sharegpt(read_json(path)) if format == "sharegpt" else _jsonl(read_lines(path))


def word_ids(text: str, vocab: int) -> tuple[int, ...]:
    """One token id per word: a stable hash of the word into [3, vocab)."""
    span = vocab - FIRST_ID
    return tuple(FIRST_ID + zlib.crc32(word.encode()) % span for word in text.split())


class DatasetSource(Source):
    def __init__(self, cell: CellConfig, options: DatasetOptions) -> None:
        super().__init__(cell, options)
        entries = load_entries(options.path, options.format)
        top = options.max_input_len or None
        kept = [
            e
            for e in entries
            if len(e.text.split()) >= options.min_input_len
            and (top is None or len(e.text.split()) <= top)
        ]
        if not kept:
            raise ValueError(
                f"{options.path}: none of its {len(entries)} prompts has "
                f"{options.min_input_len}..{top or 'any'} words (workload.min_input_len, "
                "max_input_len)"
            )
        order = self.rng.permutation(len(kept))
        if options.samples:
            order = order[: options.samples]
        self.entries = [kept[i] for i in order]
        self.ids_of = [word_ids(e.text, self.vocab) for e in self.entries]

    def _output_len(self, entry: Entry) -> int:
        options = self.options
        length = options.output_len or entry.output_len or self.cell.model.new_tokens or 1
        return min(length, options.max_output_len) if options.max_output_len else length

    def next(self, client: int, arrival: int) -> Inputs:
        n = self.cell.batch_size
        picks = [(self.count * n + k) % len(self.entries) for k in range(n)]
        entries = [self.entries[i] for i in picks]
        n_out = self._output_len(entries[0])
        return Inputs(
            prompts=tuple(self.ids_of[i] for i in picks),
            output_lens=(n_out,) * n,
            texts=tuple(e.text for e in entries),
            turns=entries[0].turns if n == 1 else (),
            key=picks[0],
        )

    def facts(self) -> dict[str, Any]:
        return {**super().facts(), "dataset_prompts": len(self.entries)}


class Dataset(Workload):
    name = "dataset"
    Options = DatasetOptions
    source_class = DatasetSource
    columns = (("dataset_prompts", pa.int64(), "dataset: prompts that passed the filters"),)

    @classmethod
    def validate(cls, options: DatasetOptions) -> None:
        super().validate(options)
        check_path(options.path, "dataset file")
        choice("workload.format", options.format, FORMATS)
        for key in ("min_input_len", "max_input_len", "output_len", "max_output_len"):
            int_at_least(
                f"workload.{key}", getattr(options, key), 1 if key == "min_input_len" else 0
            )
        int_at_least("workload.samples", options.samples, 0)
        int_at_least("workload.vocab", options.vocab, 0)
