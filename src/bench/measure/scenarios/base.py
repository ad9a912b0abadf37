"""What a scenario is: how a cell loads its engine once it is loaded and warm, and what the
planner and the row need to know about it. One module per scenario beside this one, each with
its YAML in conf/scenario/NAME.yaml; nothing outside this package names a scenario."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from bench.config.plugin import CellPlugin
from bench.config.schema import SHARED_SCENARIO_KEYS, CellConfig, ScenarioConfig
from bench.config.tasks import task_of
from bench.engines.base import Engine, Inputs, Reply
from bench.measure.admission import Admission, limits_set
from bench.measure.loadgen import LoadResult, Request, Settled
from bench.measure.workloads import Source, workload_of

# (column, arrow type, meaning): a row column a scenario owns (null in other scenarios' rows)
Column = tuple[str, pa.DataType, str]


@dataclass
class Measured:
    headline: LoadResult  # the records the row's latency and throughput columns describe
    stages: list[LoadResult] = field(default_factory=list)  # every stage, for the samples
    columns: dict[str, Any] = field(default_factory=dict)  # the scenario's own row columns


class Scenario(CellPlugin):
    """One way of loading an engine. Subclasses set `name`, their typed `Options` (the keys of
    conf/scenario/NAME.yaml beyond the shared ones: a ScenarioConfig's `options`), the row
    `columns` they fill, and `run`; their checks follow the plugin contract
    (bench.config.plugin)."""

    axis = "scenario"
    columns: ClassVar[tuple[Column, ...]] = ()

    def __init__(self, cell: CellConfig) -> None:
        self.cell = cell
        self.config = cell.scenario
        self.options = self.options_of(cell.scenario.options)

    @classmethod
    def options_owner(cls) -> str:
        # the shared keys are allowed too (the schema's), so a typo's error lists them
        return f"scenario {cls.name} keys: {', '.join(SHARED_SCENARIO_KEYS)}; its own"

    @classmethod
    def seconds(cls, config: ScenarioConfig) -> tuple[float, float]:
        """(least, most) seconds the scenario runs beyond start-up (the plan's estimate):
        warmup plus the measured window from min_duration_s (the stopping rule may need
        longer) to its cap, max_duration_s."""
        return config.warmup_s + config.min_duration_s, config.warmup_s + config.max_duration_s

    def before_load(self, engine: Engine) -> None:
        """Called once `engine` has imported its libraries and prepared its checkpoint, just
        before it loads the weights (the runner's hook; nothing by default)."""

    def run(self, engine: Engine, request: Request, load_copy: Callable[[], Engine]) -> Measured:
        """Load `engine` (loaded and warm) with `request`s. `load_copy` loads one more copy of
        the model (the caller closes every copy)."""
        raise NotImplementedError


class Traffic:
    """A cell's requests (loadgen's Request): the workload draws each request's inputs and the
    engine makes its batch, outside the timed bracket; the call is the engine's forward pass or
    generation, behind the scenario's server limits where set; `settle` reads what came back."""

    def __init__(
        self, engine: Engine, cell: CellConfig, source: Source, like: Traffic | None = None
    ) -> None:
        self.engine, self.source = engine, source
        self.generates = task_of(cell.model).generates
        self.text = task_of(cell.model).text
        # one fixed batch (an engine that cannot vary it, or images): every request the same,
        # the engine's own (which, with MPI ranks, every rank makes alike)
        self.fixed = not (engine.varies_inputs(cell) and self.text)
        if self.fixed:
            model = cell.model
            source.pinned = True
            source.first = Inputs(
                prompts=((0,) * model.seq_len,) * cell.batch_size,
                output_lens=(model.new_tokens,) * cell.batch_size,
            )
        # a source that follows the answers (a conversation) is told each one
        self.talks = type(source).answered is not Source.answered
        gated = limits_set(cell.scenario) and not engine.remote  # a server's gate, in-process
        self.gate = Admission.of(cell.scenario) if gated else None
        self.turns = itertools.count()  # next() is atomic under the GIL
        self.draws_ahead = source.cycles  # an open loop's dispatcher may draw for it
        cycles = not (engine.remote or self.fixed) and source.cycles
        self.ring: list[tuple[Inputs, Any]] = []
        if cycles:  # another copy of the same model on the same device takes the same ring
            self.ring = like.ring if like is not None and like.ring else self._fill_ring()

    def draw(self, client: int, arrival: int) -> tuple[Inputs, Any]:
        if self.ring:
            return self.ring[next(self.turns) % len(self.ring)]
        return self._fresh(client, arrival)

    def _fresh(self, client: int, arrival: int) -> tuple[Inputs, Any]:
        inputs = self.source.draw(client, arrival)
        if self.fixed:
            return inputs, Engine.batch_for(self.engine, inputs)  # the one batch, made once
        return inputs, self.engine.batch_for(inputs)

    def _fill_ring(self) -> list[tuple[Inputs, Any]]:
        """An in-process engine's requests, drawn before measuring: it has no cache for a
        repeated prompt to hit, so cycling through RING_BATCHES distinct batches measures the
        same as a new one each time, and the batches' making (tensors, padding: measured at
        up to 0.3 ms a request after a forward pass) leaves the client's loop."""
        first = self._fresh(-1, -1)
        size = sum(getattr(t, "nbytes", 0) for t in _tensors(first[1])) or 1
        count = max(2, min(RING_BATCHES, RING_BYTES // size))
        return [first, *(self._fresh(-1, -1) for _ in range(count - 1))]

    def _call(self, drawn: tuple[Inputs, Any]) -> Any:
        inputs, batch = drawn
        if self.generates:  # an in-process batch generates its longest asked length
            return self.engine.generate_timed(batch, max(inputs.output_lens))
        self.engine.infer(batch)
        return None

    def __call__(self, drawn: tuple[Inputs, Any]) -> Any:
        if self.gate is not None:
            return self.gate.run(lambda: self._call(drawn), self.engine.synchronize)
        return self._call(drawn)

    def settle(self, client: int, drawn: tuple[Inputs, Any], raw: Any) -> Settled:
        inputs = drawn[0]
        reply = raw if isinstance(raw, Reply) else None
        if reply is not None:
            times, source = reply.token_times, reply.token_source
            served = -1 if reply.input_tokens is None else reply.input_tokens
            produced = -1 if reply.output_tokens is None else reply.output_tokens
        else:  # an in-process engine's token times (or none): every sequence of the batch
            # got the longest asked length, its output exact
            times, source, served = raw, "engine", -1
            produced = max(inputs.output_lens) * len(inputs.output_lens)
        think_s = 0.0
        if self.talks:
            think_s = self.source.answered(client, inputs, reply or Reply(raw))
        return Settled(
            token_times=times,
            input_tokens=inputs.input_tokens if self.text else -1,
            server_input_tokens=served,
            output_asked=inputs.output_asked if self.generates else -1,
            output_tokens=produced if self.generates else -1,
            token_source=source if self.generates else "",
            turn=inputs.turn,
            think_s=think_s,
        )

    def failed(self, client: int, drawn: tuple[Inputs, Any]) -> None:
        if self.talks:
            self.source.answered(client, drawn[0], None)  # a failed turn ends its conversation


RING_BATCHES = 1024  # an in-process engine's pre-drawn requests, at most ...
RING_BYTES = 16 << 20  # ... and at most this much of their tensors


def _tensors(batch: Any) -> list[Any]:
    """The tensors of a batch (a dict of them, for the in-process engines)."""
    values = batch.values() if isinstance(batch, dict) else [batch]
    return [v for v in values if hasattr(v, "nbytes")]


def request_for(engine: Engine, cell: CellConfig, like: Traffic | None = None) -> Traffic:
    """The cell's requests against `engine`, from its workload (`like`: another copy's, whose
    pre-drawn requests this one shares)."""
    return Traffic(engine, cell, workload_of(cell.workload).source(cell), like)


def fixed_length(scenario: ScenarioConfig, seconds: float) -> ScenarioConfig:
    """A closed loop that runs exactly `seconds` (a ramp stage, a capacity calibration)."""
    return dataclasses.replace(
        scenario, min_requests=1, min_duration_s=seconds, max_duration_s=seconds, ci_target=0.0
    )
