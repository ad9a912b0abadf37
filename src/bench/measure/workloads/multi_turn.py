"""multi_turn: each client thread holds conversations of `turns` turns; a turn's prompt
carries the conversation so far (the earlier prompts and the server's own answers) and a new
user message of input_* ids, and the client thinks `think_s` between turns (not measured).

Over chat endpoints the answers are the server's text; over completions and in-process
engines they are its token ids (vLLM streams them with extra_json='{"return_token_ids":
true}'); where a server gives neither, the next turn carries the prompts alone and
answers_carried_share says so. A failed turn ends its conversation: the next starts anew.
The row's ttft_by_turn_json holds TTFT P50 per turn."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from bench.config.checks import int_at_least, non_negative, require
from bench.config.schema import CellConfig
from bench.engines.base import Inputs, Reply
from bench.measure.loadgen import LoadResult
from bench.measure.workloads.base import LengthOptions, Source, Workload


@dataclass(frozen=True)
class MultiTurnOptions(LengthOptions):
    turns: int = 3  # turns per conversation
    think_s: float = 0.0  # a user's pause between an answer and the next turn


@dataclass
class Conversation:
    turn: int = 0
    history: tuple[tuple[str, tuple[int, ...] | str], ...] = ()
    ids: tuple[int, ...] = ()  # the conversation so far as token ids (completions)
    answers: int = 0  # answers the next turns carry
    asked: int = 0  # turns answered


class MultiTurnSource(Source):
    cycles = False  # each turn follows the last answer

    def __init__(self, cell: CellConfig, options: MultiTurnOptions) -> None:
        super().__init__(cell, options)
        self.conversations: dict[int, Conversation] = {}
        self.input, self.output = MultiTurn.lengths(cell, options)
        self.carried = self.answered_turns = 0

    def next(self, client: int, arrival: int) -> Inputs:
        talk = self.conversations.get(client)
        if talk is None or talk.turn >= self.options.turns:
            talk = self.conversations[client] = Conversation()
        said = self.ids(int(self.input.draw(self.rng, 1)[0]))
        n_out = int(self.output.draw(self.rng, 1)[0])
        return Inputs(
            prompts=(talk.ids + said,),
            output_lens=(n_out,),
            turns=(*talk.history, ("user", said)),
            key=self.count,
            turn=talk.turn,
        )

    def answered(self, client: int, inputs: Inputs, reply: Reply | None) -> float:
        with self.lock:
            if reply is None:  # the turn failed: the conversation ends
                self.conversations.pop(client, None)
                return 0.0
            talk = self.conversations[client]
            answer = reply.answer
            carried = isinstance(answer, tuple) or (isinstance(answer, str) and answer != "")
            self.answered_turns += 1
            self.carried += carried
            ids = answer if isinstance(answer, tuple) else ()
            talk.ids = inputs.prompts[0] + ids
            text = answer if isinstance(answer, str) else None
            talk.history = inputs.turns + ((("assistant", text or ids),) if carried else ())
            talk.turn += 1
            return self.options.think_s if talk.turn < self.options.turns else 0.0

    def facts(self) -> dict[str, Any]:
        share = self.carried / self.answered_turns if self.answered_turns else None
        return {
            **super().facts(),
            "session_turns": self.options.turns,
            "answers_carried_share": share,
        }


class MultiTurn(Workload):
    name = "multi_turn"
    Options = MultiTurnOptions
    source_class = MultiTurnSource
    scenarios = ("latency",)
    scenarios_why = "runs conversations on closed-loop clients"
    columns = (
        ("session_turns", pa.int32(), "multi_turn: turns per conversation"),
        (
            "answers_carried_share",
            pa.float64(),
            "multi_turn: share of answered turns whose answer the next turn carried",
        ),
        ("ttft_by_turn_json", pa.string(), "multi_turn: {turn: TTFT P50 ms} over ok requests"),
    )

    @classmethod
    def validate(cls, options: MultiTurnOptions) -> None:
        super().validate(options)
        int_at_least("workload.turns", options.turns, 1)
        non_negative("workload.think_s", options.think_s)

    @classmethod
    def check_cell(cls, cell: CellConfig) -> None:
        require(
            cell.batch_size == 1,
            "batch_size",
            cell.batch_size,
            "workload=multi_turn sends one conversation per request: set batch_size=1",
        )

    @classmethod
    def summarize(cls, result: LoadResult) -> dict[str, Any]:
        if result.turn is None:
            return {}
        ok = result.ok & (result.ttft_ns >= 0) & (result.turn >= 0)
        by_turn = {
            int(t): float(
                np.percentile(result.ttft_ns[ok & (result.turn == t)], 50, method="inverted_cdf")
            )
            / 1e6
            for t in np.unique(result.turn[ok])
        }
        return {"ttft_by_turn_json": json.dumps(by_turn)} if by_turn else {}
