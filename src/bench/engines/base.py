"""The Engine protocol every engine module implements.

Life cycle, driven by the runner: `prepare()` once (checkpoint onto local disk, not part of
load_s), `load()` once (timed as load_s), `make_batch()` once (not
timed), then many `infer(batch)` or `generate(batch, new_tokens)` calls from the client threads,
each followed by `synchronize()` inside the timed region, and `close()` at the end.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bench.config import CellConfig, ConfigError


@dataclass
class LoadInfo:
    """What loading produced, for the result row."""

    device: str  # the resolved device ("cpu", "cuda:0", ...)
    params: int | None = None  # parameters in the loaded model
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PrepareInfo:
    """What getting the checkpoint onto local disk took (never part of load_s)."""

    checkpoint: str | None = None  # the local folder the weights are read from
    build_s: float | None = None  # seconds spent building + saving it from config, if it was


@dataclass(frozen=True)
class NoOptions:
    """Engines without options of their own."""


class Engine(ABC):
    """One engine serving one model copy for one cell."""

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions

    def __init__(self, cell: CellConfig) -> None:
        self.cell = cell
        self.options = self.Options(**cell.engine.options)

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Reject unknown option keys and values of the wrong type, naming the allowed ones."""
        fields = {f.name: f for f in dataclasses.fields(cls.Options)}
        for key, value in options.items():
            if key not in fields:
                allowed = ", ".join(fields) or "none"
                raise ConfigError(f"engine.{key}", value, f"engine {cls.name} options: {allowed}")
            default = fields[key].default
            expected = float if isinstance(default, float) else type(default)
            if not isinstance(value, (expected, int) if expected is float else expected):
                raise ConfigError(f"engine.{key}", value, f"must be {expected.__name__}")
        cls.validate(cls.Options(**options))

    @classmethod
    def validate(cls, options: Any) -> None:
        """Engine-specific checks on option values; raise ConfigError."""

    def prepare(self) -> PrepareInfo:
        """Put the checkpoint on local disk (build it, or later download it)."""
        return PrepareInfo()

    @abstractmethod
    def load(self) -> LoadInfo:
        """Make the engine ready to serve: read weights, place them, transform."""

    @abstractmethod
    def make_batch(self) -> Any:
        """One request's inputs: batch_size synthetic sequences of seq_len token ids."""

    @abstractmethod
    def infer(self, batch: Any) -> Any:
        """One forward pass over the batch."""

    def generate(self, batch: Any, new_tokens: int) -> Any:
        """Greedy generation of exactly `new_tokens` tokens per sequence."""
        raise NotImplementedError(f"engine {self.name} does not generate")

    def synchronize(self) -> None:
        """Block until the device has finished the work issued so far."""

    def close(self) -> None:
        """Release the model and device memory."""

    def describe(self) -> dict[str, Any]:
        """Environment facts for the row (device name, peak device memory, ...)."""
        return {}
