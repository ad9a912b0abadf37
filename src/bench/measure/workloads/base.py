"""What a workload is: what each request of a cell carries (prompts, their lengths, the
lengths asked back, sessions, a trace's arrival times), drawn outside the timed bracket.

A workload class types and checks its options (conf/workload/NAME.yaml) as every plugin does
(bench.config.plugin), says which cells it cannot run on, and makes a `Source` for a cell:
the seeded stream of `Inputs` the load generator draws from, one per request. One module per
workload beside this one; nothing outside this package names a workload."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bench.config.checks import require
from bench.config.plugin import CellPlugin
from bench.config.schema import CellConfig
from bench.config.tasks import DEFAULT_VOCAB, task_of
from bench.engines import ENGINES
from bench.engines.base import Inputs, Reply
from bench.measure.loadgen import LoadResult
from bench.measure.workloads.lengths import Lengths

FIRST_ID = 3  # token ids from 3 up: clear of pad / bos / eos
POOL_IDS = 1 << 16


@dataclass(frozen=True)
class LengthOptions:
    """Input and output lengths (bench.measure.workloads.lengths); a null mean is the model's
    seq_len (input) or new_tokens (output)."""

    input_dist: str = "fixed"  # fixed | uniform | normal | lognormal
    input_mean: int | None = None  # null: model.seq_len
    input_std: float = 0.0
    input_min: int = 1
    input_max: int = 0  # 0: no bound (a uniform needs one)
    output_dist: str = "fixed"
    output_mean: int | None = None  # null: model.new_tokens
    output_std: float = 0.0
    output_min: int = 1
    output_max: int = 0
    vocab: int = 0  # token ids drawn from [3, vocab); 0: the model's vocab_size (else 32000)


class Source:
    """One cell's stream of request inputs. `draw` is called by every client thread, outside
    the timed bracket; it is seeded, so the k-th request drawn is the same in every run."""

    schedule_ns: np.ndarray | None = None  # arrival offsets a trace fixes (None: the scenario's)
    # its requests may be drawn ahead and cycled for an in-process engine (no state per
    # client, no arrival times of their own)
    cycles = True

    def __init__(self, cell: CellConfig, options: Any) -> None:
        self.cell = cell
        self.options = options
        self.lock = threading.Lock()
        self.rng = np.random.default_rng([cell.seed, cell.repeat, 0xB0C4])
        self.count = 0  # requests drawn
        self.keys: set[int] = set()  # distinct prompts drawn
        # every request the first one's inputs: a repeat, or an engine that sends one fixed
        # batch (the row's distinct_prompts then says 1, as it was)
        self.pinned = False
        self.first: Inputs | None = None
        vocab = getattr(options, "vocab", 0) or cell.model.architecture.get("vocab_size")
        self.vocab = int(vocab or DEFAULT_VOCAB)
        self.pool, self.pool_at = np.zeros(0, dtype=np.int64), 0

    def ids(self, length: int) -> tuple[int, ...]:
        """`length` random token ids (the caller holds the lock), cut from a pool drawn
        POOL_IDS at a time: one numpy call per request would cost more than the rest of the
        draw (it runs outside the timed bracket, but a client's time all the same)."""
        if self.pool_at + length > self.pool.size:
            self.pool = self.rng.integers(FIRST_ID, self.vocab, size=max(POOL_IDS, length))
            self.pool_at = 0
        start, self.pool_at = self.pool_at, self.pool_at + length
        return tuple(self.pool[start : self.pool_at].tolist())

    def draw(self, client: int, arrival: int) -> Inputs:
        """The next request's inputs, for client thread `client` (`arrival`: its index in an
        open loop's schedule, -1 in a closed loop)."""
        with self.lock:
            if self.pinned and self.first is not None:
                inputs = self.first
            else:
                inputs = self.next(client, arrival)
                self.first = self.first or inputs
                self.keys.add(inputs.key)
            self.count += 1
        return inputs

    def next(self, client: int, arrival: int) -> Inputs:
        """The next inputs (under the lock)."""
        raise NotImplementedError

    def answered(self, client: int, inputs: Inputs, reply: Reply | None) -> float:
        """After a request completed (outside the bracket): seconds the client waits before
        its next one (a session's think time); 0 by default."""
        return 0.0

    def facts(self) -> dict[str, Any]:
        """The row's workload columns after measuring (warmup requests included)."""
        return {"distinct_prompts": len(self.keys)}


class Workload(CellPlugin):
    """One kind of traffic. Subclasses set `name`, typed `Options`, the row `columns` they own
    and `source_class`."""

    axis = "workload"
    Options: ClassVar[type] = LengthOptions
    source_class: ClassVar[type[Source]]  # the stream of inputs it makes for a cell
    # the scenarios it runs under (None: any), and why, for the unsupported row
    scenarios: ClassVar[tuple[str, ...] | None] = None
    scenarios_why: ClassVar[str] = ""
    columns: ClassVar[tuple[tuple[str, Any, str], ...]] = ()

    @classmethod
    def options_owner(cls) -> str:
        return f"workload {cls.name} keys"

    @classmethod
    def validate(cls, options: Any) -> None:
        """The lengths' rules where the options are LengthOptions (a workload adds its own
        after these). A null mean is the model's seq_len or new_tokens, at least 1 either
        way, so 1 stands in for it: no rule here needs the cell."""
        if isinstance(options, LengthOptions):
            require(options.vocab >= 0, "workload.vocab", options.vocab, "must be >= 0")
            Lengths.of(options, "input", 1)
            Lengths.of(options, "output", 1)

    @classmethod
    def lengths(cls, cell: CellConfig, options: LengthOptions) -> tuple[Lengths, Lengths]:
        """(input, output) lengths; the output of a model that generates nothing is 0."""
        model = cell.model
        return (
            Lengths.of(options, "input", model.seq_len or 1),
            Lengths.of(options, "output", max(model.new_tokens, 1)),
        )

    @classmethod
    def varies(cls, options: Any) -> bool:
        """Whether its requests differ in shape or kind, beyond the content of one fixed shape
        (an engine that sends one fixed batch can stand in for fixed-length random prompts:
        the row's distinct_prompts then says 1; nothing else)."""
        return True

    @classmethod
    def unsupported_reason(cls, cell: CellConfig) -> str | None:
        """Why the cell's scenario, model or engine cannot take this workload (None when
        they can)."""
        options = cls.options_of(cell.workload.options)
        engine = ENGINES[cell.engine.name]
        if cls.scenarios is not None and cell.scenario.name not in cls.scenarios:
            return (
                f"workload={cls.name} {cls.scenarios_why}: use scenario="
                f"{' or '.join(cls.scenarios)}, not {cell.scenario.name}"
            )
        if not task_of(cell.model).text and cls.name != "synthetic":
            return f"workload {cls.name} sends text prompts; {cell.model.task} takes images"
        if cls.varies(options) and not engine.varies_inputs(cell):
            return (
                f"engine {engine.name} sends one fixed batch, so it cannot send workload "
                f"{cls.name}'s requests of varied lengths or content; use workload=synthetic "
                "with fixed lengths (input_dist=fixed, output_dist=fixed)"
            )
        return None

    @classmethod
    def source(cls, cell: CellConfig) -> Source:
        return cls.source_class(cell, cls.options_of(cell.workload.options))

    @classmethod
    def summarize(cls, result: LoadResult) -> dict[str, Any]:
        """The workload's own row columns from the headline window ({} by default)."""
        return {}

    @classmethod
    def describe(cls, cell: CellConfig) -> str:
        """One line for the row: the workload and its parameters."""
        options = cls.options_of(cell.workload.options)
        return f"{cls.name}({', '.join(f'{k}={v}' for k, v in sorted(_set(options).items()))})"


def _set(options: Any) -> dict[str, Any]:
    """The options that differ from their defaults."""
    return {
        f.name: getattr(options, f.name)
        for f in dataclasses.fields(options)
        if getattr(options, f.name) != f.default
    }
