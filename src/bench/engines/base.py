"""The Engine protocol every engine module implements.

Life cycle, driven by the runner: `import_libraries()` once (timed: import_s: library and
modeling-module imports, device context creation), `prepare()` once (checkpoint onto local
disk: download_s or build time, never load_s), `load()` once (timed: load_s: checkpoint ->
weights ready on the device, nothing else), `initialize()` once (timed: init_s),
`make_batch()` once (not timed), then many `infer(batch)` or `generate(batch, new_tokens)`
calls from the client threads, each followed by `synchronize()` inside the timed region, and
`close()` at the end.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bench.config.plugin import CellPlugin
from bench.config.schema import CellConfig
from bench.config.tasks import TASKS


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
    download_s: float | None = None  # seconds spent copying it from a remote store, if it was


@dataclass(frozen=True)
class Inputs:
    """One request's inputs, drawn by the cell's workload (bench.measure.workloads) outside
    the timed bracket: what the engine turns into its own batch (`Engine.batch_for`)."""

    prompts: tuple[tuple[int, ...], ...]  # token ids per sequence (batch_size of them)
    output_lens: tuple[int, ...]  # tokens asked of each sequence (one length per request:
    # every engine takes one max_tokens for a whole batch)
    # a conversation so far, oldest first, for chat endpoints (multi_turn): (role, content)
    # with a user turn's content as token ids and an assistant's as the server's own text
    turns: tuple[tuple[str, tuple[int, ...] | str], ...] = ()
    texts: tuple[str, ...] = ()  # the prompts as text, where the workload has text (a
    # dataset): endpoints send it, in-process engines the ids (its words, hashed)
    key: int = 0  # which distinct prompt this is (the workload's count; repeats reuse 0)
    turn: int = -1  # multi_turn: which turn of its session (0 first); -1: not a session
    # counted when drawn, outside the client's path: the prompt tokens and the tokens asked
    input_tokens: int = field(init=False)
    output_asked: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_tokens", sum(len(p) for p in self.prompts))
        object.__setattr__(self, "output_asked", sum(self.output_lens))


@dataclass
class Reply:
    """What a timed call returns beyond its token times: the tokens it produced, as counted
    (`token_source`: usage = the server's own report, stream = counted as they streamed,
    engine = an in-process engine's output, exact), the prompt tokens the server reports,
    and the answer a conversation carries into its next turn."""

    token_times: list[int] | None = None  # host time each token of the first sequence arrived
    output_tokens: int | None = None  # generated tokens, every sequence of the batch
    token_source: str = "engine"  # usage | stream | engine
    input_tokens: int | None = None  # prompt tokens the server counted (its tokenizer's)
    answer: str | tuple[int, ...] | None = None  # the first sequence's answer (text or ids)


def words_for(ids: tuple[int, ...] | list[int]) -> str:
    """A text prompt from token ids, for endpoints that take text (chat): one short word per
    id, so distinct ids give distinct text and a prompt of n ids is about n words. The
    server's tokenizer decides the token count (its usage reports it)."""
    return " ".join(WORDS[i % len(WORDS)] + str(i // len(WORDS) % 10) for i in ids)


# Syllables (consonant + vowel): a tokenizer keeps most, with their digit, in one or two tokens.
WORDS = tuple(c + v for c in "bdfghklmnprstvz" for v in "aeiou")


def first_tensor(output: Any) -> Any:
    """A model output's first tensor: its logits where it has them."""
    for name in ("logits", "start_logits", "last_hidden_state"):
        if (found := getattr(output, name, None)) is not None:
            return found
    if hasattr(output, "shape") or output is None:
        return output
    return output[0]


class Unsupported(RuntimeError):
    """This engine cannot run this cell here; the message says why. Becomes an `unsupported`
    row (planned cells are checked before anything loads; this catches what only the job's
    host can tell, such as a missing library)."""


@dataclass(frozen=True)
class Capability:
    """What an engine can run: its row of the capability table (docs/engines.md lists every
    engine's)."""

    precisions: frozenset[str]
    devices: frozenset[str]  # "cpu", "cuda"
    families: frozenset[str] | None = None  # None: any transformers architecture
    max_tp: int | None = 1  # None: any TP degree
    # splits each layer's weights over the GPUs with its own kernels (DeepSpeed,
    # FasterTransformer): the SageMaker LMI guide's larger loaded-memory multipliers apply
    tensor_parallel: bool = False
    tasks: frozenset[str] = frozenset({"encode", "generate"})  # keys of bench.config.tasks.TASKS
    # why a task outside `tasks` is not run (the unsupported row says it), when known
    task_notes: tuple[tuple[str, str], ...] = ()
    # takes a different input per request (`Engine.batch_for`); an engine that cannot
    # repeats one fixed batch, and only a workload that repeats its prompt runs on it
    varied_inputs: bool = False


ANY_PRECISION = frozenset({"fp32", "fp16", "bf16"})  # fp16 / bf16: the whole model cast
MIXED_PRECISION = frozenset({"amp_fp16", "amp_bf16"})  # fp32 weights, torch.autocast calls
BOTH_DEVICES = frozenset({"cpu", "cuda"})
ALL_TASKS = frozenset(TASKS)


def device_kind(cell: CellConfig) -> str:
    """Where the cell will run, as planned: cuda when asked for or the instance has GPUs."""
    nvidia = cell.instance.gpus > 0 and cell.instance.accelerator is None
    if cell.device == "cuda" or (cell.device == "auto" and nvidia):
        return "cuda"
    return "cpu"


class Engine(CellPlugin, ABC):
    """One engine serving one model copy for one cell. Its options, checks and
    `unsupported_reason` follow the plugin contract (bench.config.plugin); `host_reason` is
    the engine's own: what only the host that runs the cell can tell."""

    axis = "engine"
    capability: ClassVar[Capability] = Capability(ANY_PRECISION, BOTH_DEVICES, tasks=ALL_TASKS)
    # On CUDA, what `synchronize()` waits for, stated in the row (sync_scope; CPU rows say
    # host: the call returns with the result on the host): stream (the calling client's own
    # CUDA stream) or device (every stream of the device: other clients' kernels count too).
    cuda_sync_scope: ClassVar[str] = "device"
    # Modules a local fork server may import before forking this engine's cells: pure
    # imports that start no device, no thread pool and nothing per cell (bench.executors.
    # forkserver). The cell still imports what it needs; this only makes that instant.
    preload: ClassVar[tuple[str, ...]] = ()
    # An endpoint bench did not load (engine=http): a request the server fails or that times
    # out is a result, counted in the row's errors, never a crashed cell; the scenario's
    # server limits (an in-process engine's stand-in for a server) do not apply.
    remote: ClassVar[bool] = False
    # Whether serving changes what the model computes (fused kernels, sharding, compilation,
    # another runtime): quality=auto checks such cells' outputs against eager fp32
    # (bench.measure.quality_check), as it does every cell below fp32.
    transforms_model: ClassVar[bool] = False

    @classmethod
    def mpi_ranks(cls, cell: CellConfig) -> int:
        """How many MPI ranks serve `cell` together (bench.measure.lockstep launches them under
        mpirun; rank 0 measures, the others repeat its requests): 1 for one process."""
        return 1

    @classmethod
    def varies_inputs(cls, cell: CellConfig) -> bool:
        """Whether it sends each request's own inputs for `cell` (Capability.varied_inputs;
        an engine whose ranks must all make one batch alike says no for those cells)."""
        return cls.capability.varied_inputs

    @classmethod
    def plan_warning(cls, cell: CellConfig) -> str | None:
        """What the planner cannot decide but should say before a cell runs (the row's
        `warnings` carry it too): a setting the engine's pinned release is known to refuse
        where the job's own library decides. None by default."""
        return None

    @classmethod
    def host_reason(cls, cell: CellConfig) -> str | None:
        """Why this host cannot run `cell` (a library or launcher missing); None when it can.
        Checked where the cell runs, and at plan time when that is this machine."""
        return None

    @classmethod
    def unsupported_reason(cls, cell: CellConfig) -> str | None:
        """Why this engine cannot run `cell` (None when it can), from the capability table;
        engines add their own rules by overriding and calling super()."""
        cap, device = cls.capability, device_kind(cell)
        family, what = cell.model.family, f"engine {cls.name}"
        instance = cell.instance
        if instance.accelerator == "neuron" and cell.device != "cpu":
            return (
                f"{instance.type} has AWS Neuron accelerators ({instance.gpu_model}), not CUDA "
                "GPUs: no bench engine compiles models for Neuron (torch-neuronx) yet; "
                "device=cpu measures its CPUs only"
            )
        if cell.model.task not in cap.tasks:
            note = dict(cap.task_notes).get(cell.model.task)
            runs = ", ".join(sorted(cap.tasks))
            return f"{what} does not run {cell.model.task} models ({note or f'it runs {runs}'})"
        if device not in cap.devices:
            return f"{what} does not run on {device}"
        if cell.precision not in cap.precisions:
            allowed = ", ".join(sorted(cap.precisions))
            return f"{what} does not run {cell.precision} on {device} (it runs {allowed})"
        if cap.families is not None and family not in cap.families:
            return (
                f"{what} does not support the {family} family ({', '.join(sorted(cap.families))})"
            )
        if cap.max_tp is not None and cell.tp_degree > cap.max_tp:
            return (
                f"{what} runs a model on at most {cap.max_tp} device(s); tp_degree={cell.tp_degree}"
            )
        gpus = cell.instance.gpus
        if device == "cuda" and gpus and cell.tp_degree > gpus:
            return f"tp_degree={cell.tp_degree} exceeds {cell.instance.type}'s {gpus} GPUs"
        return None

    def __init__(self, cell: CellConfig) -> None:
        self.cell = cell
        self.options = self.options_of(cell.engine.options)

    def import_libraries(self) -> None:
        """Import what loading and serving need (libraries, the architecture's modeling code)
        and create the device context, so that none of it lands in load_s (timed: import_s)."""

    def prepare(self) -> PrepareInfo:
        """Put the checkpoint on local disk (build it, or later download it)."""
        return PrepareInfo()

    @abstractmethod
    def load(self) -> LoadInfo:
        """Read the weights from the local checkpoint onto the device (timed: load_s)."""

    def initialize(self) -> dict[str, Any]:
        """Transform the loaded model for serving: compile, inject kernels, quantize, shard
        (timed: init_s). Returns facts for the row's engine_info."""
        return {}

    @abstractmethod
    def make_batch(self) -> Any:
        """One request's inputs, as the cell's task (bench.config.tasks) makes them."""

    def batch_for(self, inputs: Inputs) -> Any:
        """The batch carrying `inputs` (called outside the timed bracket, once per request);
        engines whose capability has varied_inputs override it. The default is the one
        fixed batch, made once."""
        batch = getattr(self, "_fixed_batch", None)
        if batch is None:
            batch = self._fixed_batch = self.make_batch()
        return batch

    @abstractmethod
    def infer(self, batch: Any) -> Any:
        """One forward pass over the batch."""

    def generate(self, batch: Any, new_tokens: int) -> Any:
        """Greedy generation of exactly `new_tokens` tokens per sequence."""
        raise NotImplementedError(f"engine {self.name} does not generate")

    def generate_timed(self, batch: Any, new_tokens: int) -> list[int] | Reply | None:
        """generate(), returning the host time (perf_counter_ns) each token step was ready
        (or a Reply carrying them with the tokens counted); None from engines that cannot
        stream, whose rows then carry no TTFT or TPOT."""
        self.generate(batch, new_tokens)
        return None

    def outputs(self, batch: Any, new_tokens: int) -> dict[str, Any]:
        """What the model computes for `batch`, for the quality check: {"logits": the first
        forward's first output (logits where the model has them), "tokens": the greedy ids of
        `new_tokens` new tokens per sequence (when > 0)}. Calls the class's own infer and
        generate: a lockstep leader wraps the instance's as steps, and this whole call is
        one step its followers repeat."""
        engine = type(self)
        found = {"logits": first_tensor(engine.infer(self, batch))}
        if new_tokens > 0:
            generated = engine.generate(self, batch, new_tokens)
            found["tokens"] = getattr(generated, "sequences", generated)
        return found

    def synchronize(self) -> None:
        """Block until the device has finished the work issued so far."""

    def own_memory(self) -> None:
        """Make this copy hold its weights in memory of its own (capacity scenario): a copy
        must not share pages with the copies before it."""

    def close(self) -> None:
        """Release the model and device memory."""

    def describe(self) -> dict[str, Any]:
        """Facts for the row after measuring (device name, peak device memory, ...); a mapping
        under "engine_info" is merged into the row's engine_info (facts known only now, such
        as the requests each target model got)."""
        return {}

    def metrics_url(self) -> str | None:
        """Where the server publishes its own metrics (Prometheus text), read through the
        window with the host telemetry; None: none (in-process engines)."""
        return None
