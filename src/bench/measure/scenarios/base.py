"""What a scenario is: how a cell loads its engine once it is loaded and warm, and what the
planner and the row need to know about it. One module per scenario beside this one, each with
its YAML in conf/scenario/NAME.yaml; nothing outside this package names a scenario."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from bench.config.checks import typed_options
from bench.config.schema import SHARED_SCENARIO_KEYS, CellConfig, ScenarioConfig
from bench.config.tasks import task_of
from bench.engines.base import Engine
from bench.measure.admission import Admission, limits_set
from bench.measure.loadgen import LoadResult, Request

# (column, arrow type, meaning): a row column a scenario owns (null in other scenarios' rows)
Column = tuple[str, pa.DataType, str]


@dataclass
class Measured:
    headline: LoadResult  # the records the row's latency and throughput columns describe
    stages: list[LoadResult] = field(default_factory=list)  # every stage, for the samples
    columns: dict[str, Any] = field(default_factory=dict)  # the scenario's own row columns


@dataclass(frozen=True)
class NoOptions:
    """Scenarios with only the shared keys."""


class Scenario:
    """One way of loading an engine. Subclasses set `name`, their typed `Options` (the keys of
    conf/scenario/NAME.yaml beyond the shared ones), the row `columns` they fill, and `run`."""

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    columns: ClassVar[tuple[Column, ...]] = ()

    def __init__(self, cell: CellConfig) -> None:
        self.cell = cell
        self.config = cell.scenario
        self.options = self.options_of(cell.scenario)

    @classmethod
    def options_of(cls, config: ScenarioConfig) -> Any:
        owner = f"scenario {cls.name} keys: {', '.join(SHARED_SCENARIO_KEYS)}; its own"
        return typed_options("scenario", owner, cls.Options, config.options)

    @classmethod
    def option_keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls.Options))

    @classmethod
    def check(cls, config: ScenarioConfig) -> None:
        """Refuse unknown keys and bad values (ConfigError), naming what is allowed."""
        cls.validate(config, cls.options_of(config))

    @classmethod
    def validate(cls, config: ScenarioConfig, options: Any) -> None:
        """The scenario's own checks on its values; raise ConfigError."""

    @classmethod
    def seconds(cls, config: ScenarioConfig) -> tuple[float, float]:
        """(least, most) seconds the scenario runs beyond start-up (the plan's estimate):
        warmup plus the measured window from min_duration_s (the stopping rule may need
        longer) to its cap, max_duration_s."""
        return config.warmup_s + config.min_duration_s, config.warmup_s + config.max_duration_s

    @classmethod
    def unsupported_reason(cls, cell: CellConfig) -> str | None:
        """Why this scenario cannot run `cell`; None when it can."""
        return None

    def before_load(self, engine: Engine) -> None:
        """Called once `engine` has imported its libraries and prepared its checkpoint, just
        before it loads the weights (the runner's hook; nothing by default)."""

    def run(self, engine: Engine, request: Request, load_copy: Callable[[], Engine]) -> Measured:
        """Load `engine` (loaded and warm) with `request`s. `load_copy` loads one more copy of
        the model (the caller closes every copy)."""
        raise NotImplementedError


def request_for(engine: Engine, cell: CellConfig) -> Request:
    """One request against `engine`: a forward pass, or a generation that stamps its tokens."""
    batch = engine.make_batch()
    if task_of(cell.model).generates:
        new_tokens = cell.model.new_tokens

        def request() -> Any:
            return engine.generate_timed(batch, new_tokens)
    else:

        def request() -> Any:
            engine.infer(batch)

    if limits_set(cell.scenario) and not engine.remote:  # a server's gate, in-process
        return Admission.of(cell.scenario).wrap(request, engine.synchronize)
    return request


def fixed_length(scenario: ScenarioConfig, seconds: float) -> ScenarioConfig:
    """A closed loop that runs exactly `seconds` (a ramp stage, a capacity calibration)."""
    return dataclasses.replace(
        scenario, min_requests=1, min_duration_s=seconds, max_duration_s=seconds, ci_target=0.0
    )
