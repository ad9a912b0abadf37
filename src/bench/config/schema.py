"""Typed schemas for a cell's configuration, and validation that names what is wrong.

Pure and offline: nothing here loads a model, touches the network or mutates the environment.
A cell is everything one job needs, as plain JSON in the manifest; `cell_from_dict` turns that
JSON (or a composed Hydra config) back into these dataclasses and checks every value.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.config import tasks as _tasks
from bench.config.checks import (
    ConfigError,
    choice,
    did_you_mean,
    finite,
    int_at_least,
    non_negative,
    optional,
    positive,
    require,
    share,
)

T = TypeVar("T")
# fp16 / bf16 cast the whole model; amp_fp16 / amp_bf16 keep fp32 weights and autocast each call
PRECISIONS = ("fp32", "fp16", "bf16", "amp_fp16", "amp_bf16", "int8")
DEVICES = ("auto", "cpu", "cuda")
# quality: whether a cell's outputs are checked against eager fp32 (bench.measure.quality_check)
QUALITIES = ("auto", "check", "off")
# Tasks and the auto classes each may name live in bench.config.tasks (an explicit list, never a
# getattr on user input).
TASKS = tuple(_tasks.TASKS)
AUTO_CLASSES = _tasks.AUTO_CLASSES
CONFIG_GROUPS = ("model", "engine", "executor", "store", "scenario", "workload")


def conf_dir() -> Path:
    """The Hydra config tree: $BENCH_CONF_DIR, the copy inside a wheel, or the repo's conf/."""
    if env := os.environ.get("BENCH_CONF_DIR"):
        return Path(env).resolve()
    packaged = Path(__file__).parent.parent / "conf"  # bench/conf, beside this package
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "conf"


# Users' own config folders (`--config-dir DIR`, `hydra.searchpath=[file://DIR]`, or
# $BENCH_CONFIG_DIRS, os.pathsep-separated): their models, grids, engines and scenarios are
# added to the package's. A name both define is refused, never silently one or the other.
# The variable is the one record of them, so the processes a command starts see them too.
USER_DIRS_ENV = "BENCH_CONFIG_DIRS"


def add_config_dir(path: str) -> Path:
    """Add a user config folder (for this process and the processes it starts)."""
    folder = Path(path.removeprefix("file://")).expanduser().resolve()
    require(folder.is_dir(), "--config-dir", path, "must be an existing folder")
    dirs = user_config_dirs()
    if folder not in dirs:
        os.environ[USER_DIRS_ENV] = os.pathsep.join(str(d) for d in [*dirs, folder])
    return folder


def user_config_dirs() -> list[Path]:
    return [Path(p) for p in os.environ.get(USER_DIRS_ENV, "").split(os.pathsep) if p]


def config_dirs() -> list[Path]:
    """Where config files are found: the package's tree, then the user's folders."""
    return [conf_dir(), *user_config_dirs()]


def group_files(group: str) -> dict[str, Path]:
    """name -> file of every option of a config group, over all config folders."""
    found: dict[str, Path] = {}
    for folder in config_dirs():
        for path in sorted((folder / group).glob("*.yaml")):
            if path.stem in found:
                raise ConfigError(
                    group,
                    path.stem,
                    f"defined twice, in {found[path.stem]} and {path}: rename one",
                )
            found[path.stem] = path
    return found


def group_options(group: str) -> list[str]:
    """Names selectable for a config group, e.g. group_options("model") -> ["bert_base", ...]."""
    return sorted(group_files(group))


@dataclass(frozen=True)
class ModelConfig:
    name: str  # the conf/model/NAME.yaml it came from
    family: str  # architecture family (bert, opt, gpt2, t5, ...)
    task: str  # a key of bench.config.tasks.TASKS: encode, generate, seq2seq, classify_image
    auto_class: str  # transformers auto class used to build and load it
    seq_len: int  # synthetic input tokens per sequence (text tasks; 0 for images)
    new_tokens: int  # tokens generated per sequence (generating tasks only; min = max)
    checkpoint: str | None  # local HF checkpoint folder; None = build from `architecture`
    architecture: dict[str, Any]  # transformers config kwargs (model_type + sizes)
    image_size: int | None = None  # pixels per side (images; None: the architecture's or 224)


@dataclass(frozen=True)
class EngineConfig:
    name: str  # key in bench.engines.ENGINES
    options: dict[str, Any] = field(default_factory=dict)  # engine-specific, checked by it


# Keys an older config may still carry, and what replaced them.
REMOVED_SCENARIO_KEYS = {
    "stable_windows": "removed: stability looks for a change point in the whole window; drop it",
    "bootstrap_resamples": (
        "removed: the throughput interval is batch means over scenario.windows time blocks; "
        "drop the key"
    ),
}


@dataclass(frozen=True)
class ScenarioConfig:
    """How a cell loads its engine: the measuring, stopping and server-limit keys every
    scenario shares, and the scenario's own keys in `options` (conf/scenario/NAME.yaml sets
    them flat; the scenario's class in bench.measure.scenarios types and checks them)."""

    name: str  # a key of bench.measure.scenarios.SCENARIOS
    warmup_requests: int  # per client thread, excluded from every figure ...
    min_requests: int  # measured requests needed before stopping ...
    min_duration_s: float  # ... and measured seconds needed before stopping
    max_duration_s: float  # hard cap on the measured window (the budget)
    # ... and at least this many seconds of it: a freshly loaded model runs ~10% slower for
    # its first second (fidelity.py measured it), more than a few requests cover
    warmup_s: float = 1.0
    confidence: float = 0.95  # level of every confidence interval
    ci_target: float = 0.0  # stop once each headline interval's half-width <= this share
    # of its estimate (P50, P90, P99 latency, throughput); 0 = stop at the minimums
    windows: int = 20  # batches behind every interval: consecutive requests (percentiles)
    # and equal time blocks (throughput); also the time windows in windows_json
    stable_tolerance: float = 0.10  # a change in level during the window smaller than this
    # share is not drift (a larger one is, when significant)
    # the engine as a server with limits (bench.measure.admission); None = no limit
    request_timeout_s: float | None = None  # wait + service past this: the request failed
    server_workers: int | None = None  # requests served at once; the rest wait in line
    max_waiting: int | None = None  # a request finding this many waiting is refused
    options: dict[str, Any] = field(default_factory=dict)  # the scenario's own keys


@dataclass(frozen=True)
class WorkloadConfig:
    """What each request carries (conf/workload/NAME.yaml): its keys are the workload's own,
    typed and checked by its class in bench.measure.workloads."""

    name: str = "synthetic"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SloConfig:
    """Per-request service-level objectives: a request meets them when it completed and each
    one set holds (goodput counts such requests); null = not an objective."""

    ttft_ms: float | None = None  # time to first token (generation)
    tpot_ms: float | None = None  # time per output token after the first (generation)
    e2e_ms: float | None = None  # the request's latency (scheduled time -> complete)

    def any(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.e2e_ms))


SHARED_SCENARIO_KEYS = tuple(
    f.name for f in dataclasses.fields(ScenarioConfig) if f.name != "options"
)


@dataclass(frozen=True)
class InstanceSpec:
    type: str
    gpu_model: str | None
    gpus: int
    gpu_memory_gib: float
    compute_capability: float | None
    vcpus: int
    memory_gib: float
    usd_per_hour: float | None  # EC2 on-demand; None where AWS lists no price (price_note)
    price_date: str | None
    price_note: str | None = None
    gpu_memory_usable_gib: float | None = None  # what a process can allocate (None: nominal)
    accelerator: str | None = None  # None: NVIDIA GPUs (when gpus > 0); neuron: AWS Neuron
    sagemaker_usd_per_hour: float | None = None  # the ml.<type> real-time inference rate
    sagemaker_price_date: str | None = None


def packed_replicas(instance: InstanceSpec, tp_degree: int) -> int:
    """Model copies one instance holds: floor(GPUs / TP degree), at least one."""
    return max(1, instance.gpus // tp_degree) if instance.gpus else 1


@dataclass(frozen=True)
class CellConfig:
    """Everything one job needs. Serialised as JSON into the manifest."""

    sweep_id: str
    cell_id: str
    index: int
    model: ModelConfig
    engine: EngineConfig
    scenario: ScenarioConfig
    instance: InstanceSpec
    precision: str
    batch_size: int
    threads: int
    tp_degree: int
    device: str
    price_per_hour: float  # the price used for cost columns
    price_source: str  # where that price came from, with its date
    torch_threads: int | None
    seed: int
    models_dir: str
    axes: dict[str, Any]  # the grid axes and this cell's value on each
    repeat: int = 0  # which repeat of this configuration (each runs in its own process)
    pricing: str = "ec2"  # which price list price_per_hour is from: ec2 | sagemaker | override
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    slo: SloConfig = field(default_factory=SloConfig)
    quality: str = "auto"  # auto | check | off (QUALITIES): the output check after measuring

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Upper bounds that only catch typos (threads=1e9 would start a billion threads).
MAX_BATCH_SIZE = 1 << 20
MAX_THREADS = 4096
MAX_TP_DEGREE = 256


def model_from_dict(d: dict[str, Any]) -> ModelConfig:
    task = _tasks.TASKS[choice("model.task", d.get("task"), TASKS)]
    new_tokens = d.get("new_tokens", 0)
    if task.generates:
        int_at_least("model.new_tokens", new_tokens, 1)
    seq_len = d.get("seq_len") if task.text else (d.get("seq_len") or 0)
    image_size = d.get("image_size")
    if image_size is not None:
        int_at_least("model.image_size", image_size, 1)
    known = [f.name for f in dataclasses.fields(ModelConfig)]
    if unknown := sorted(set(d) - set(known)):
        raise ConfigError(f"model.{unknown[0]}", d[unknown[0]], "keys: " + ", ".join(known))
    arch = d.get("architecture") or {}
    checkpoint = d.get("checkpoint")
    require(
        bool(checkpoint) or "model_type" in arch,
        "model.architecture.model_type",
        arch.get("model_type"),
        "set it (or model.checkpoint to a local checkpoint folder)",
    )
    return ModelConfig(
        name=str(d.get("name")),
        family=str(d.get("family") or arch.get("model_type")),
        task=task.name,
        auto_class=choice(
            "model.auto_class", d.get("auto_class"), task.auto_classes, f"task {task.name} takes"
        ),
        seq_len=int_at_least("model.seq_len", seq_len, 1 if task.text else 0),
        new_tokens=int(new_tokens or 0),
        checkpoint=str(checkpoint) if checkpoint else None,
        architecture=dict(arch),
        image_size=int(image_size) if image_size is not None else None,
    )


def scenario_from_dict(d: dict[str, Any]) -> ScenarioConfig:
    """The shared keys checked here; every other key (flat as in the YAML, or under `options`
    as in the manifest) is the scenario's own, checked by its class
    (bench.measure.scenarios.check_scenario, called by the planner): the schema knows no
    scenario."""
    name = d.get("name")
    require(isinstance(name, str) and bool(name), "scenario.name", name, "must name a scenario")
    for key, why in REMOVED_SCENARIO_KEYS.items():
        if key in d:
            raise ConfigError(f"scenario.{key}", d[key], why)
    shared = {k: v for k, v in d.items() if k in SHARED_SCENARIO_KEYS and v is not None}
    own = {k: v for k, v in d.items() if k not in (*SHARED_SCENARIO_KEYS, "options")}
    own.update(d.get("options") or {})
    got = {**dataclasses.asdict(ScenarioConfig(name, 0, 1, 1.0, 1.0)), **shared}
    s = ScenarioConfig(
        name=name,
        warmup_requests=int_at_least("scenario.warmup_requests", got["warmup_requests"], 0),
        min_requests=int_at_least("scenario.min_requests", got["min_requests"], 1),
        min_duration_s=positive("scenario.min_duration_s", got["min_duration_s"]),
        max_duration_s=positive("scenario.max_duration_s", got["max_duration_s"]),
        warmup_s=non_negative("scenario.warmup_s", got["warmup_s"]),
        confidence=share("scenario.confidence", got["confidence"]),
        ci_target=share("scenario.ci_target", got["ci_target"], low_open=False),
        windows=int_at_least("scenario.windows", got["windows"], 8),
        stable_tolerance=positive("scenario.stable_tolerance", got["stable_tolerance"]),
        request_timeout_s=optional(positive, "scenario.request_timeout_s", d),
        server_workers=optional(int_at_least, "scenario.server_workers", d, 1),
        max_waiting=optional(int_at_least, "scenario.max_waiting", d, 0),
        options={k: v for k, v in own.items() if v is not None},  # None: the default
    )
    require(
        s.max_duration_s >= s.min_duration_s,
        "scenario.max_duration_s",
        s.max_duration_s,
        f"must be >= scenario.min_duration_s ({s.min_duration_s})",
    )
    return s


def workload_from_dict(d: dict[str, Any] | None) -> WorkloadConfig:
    """The workload's name and options as given (flat as in the YAML, or under `options` as in
    the manifest); its class checks them (bench.measure.workloads.check_workload)."""
    d = dict(d or {"name": "synthetic"})
    name = d.pop("name", None)
    require(isinstance(name, str) and bool(name), "workload", name, "must name a workload")
    options = {**{k: v for k, v in d.items() if k != "options"}, **(d.get("options") or {})}
    return WorkloadConfig(name=name, options={k: v for k, v in options.items() if v is not None})


SLO_KEYS = ("ttft_ms", "tpot_ms", "e2e_ms")


def slo_from_dict(d: dict[str, Any] | None) -> SloConfig:
    d = dict(d or {})
    if unknown := sorted(set(d) - set(SLO_KEYS)):
        raise ConfigError(f"slo.{unknown[0]}", d[unknown[0]], "keys: " + ", ".join(SLO_KEYS))
    return SloConfig(**{k: optional(positive, f"slo.{k}", d) for k in SLO_KEYS})


def engine_from_dict(d: dict[str, Any]) -> EngineConfig:
    """The engine's name and options as given; whether the engine exists and takes these
    options is the registry's to say (bench.engines.check_engine, called by the planner):
    the schema knows no engine."""
    name = d.get("name")
    require(isinstance(name, str) and bool(name), "engine", name, "must name an engine")
    return EngineConfig(name=name, options={k: v for k, v in d.items() if k != "name"})


def catalog_entries(catalog: dict[str, Any]) -> list[dict[str, Any]]:
    """The catalog's instance types and those a user's config added (catalog.extra)."""
    entries = [*catalog["instances"], *(catalog.get("extra") or [])]
    seen: set[str] = set()
    for entry in entries:
        require(
            isinstance(entry, dict) and "type" in entry,
            "catalog.extra",
            entry,
            "each entry is a mapping with a type",
        )
        require(entry["type"] not in seen, "catalog.extra", entry["type"], "already a type")
        seen.add(entry["type"])
    return entries


def instance_from_catalog(catalog: list[dict[str, Any]], type_: str) -> InstanceSpec:
    by_type = {entry["type"]: entry for entry in catalog}
    choice("instance", type_, list(by_type))
    fields = {f.name for f in dataclasses.fields(InstanceSpec)}
    return InstanceSpec(**{k: v for k, v in by_type[type_].items() if k in fields})


def cell_from_dict(d: dict[str, Any]) -> CellConfig:
    """Validate a cell (from the manifest, or a composed and resolved config); its sections
    (model, engine, scenario, workload, slo, instance) may be given typed, already checked."""
    instance = d["instance"]
    if not isinstance(instance, InstanceSpec):
        instance = InstanceSpec(**instance)
    engine = d["engine"]
    if not isinstance(engine, EngineConfig):
        engine = engine_from_dict(
            {"name": engine.get("name"), **engine.get("options", {})}
            if "options" in engine
            else engine
        )
    cost = cell_cost(d, instance)
    return CellConfig(
        sweep_id=str(d.get("sweep_id") or ""),
        cell_id=str(d.get("cell_id") or ""),
        index=int(d.get("index") or 0),
        model=_typed(d["model"], ModelConfig, model_from_dict),
        engine=engine,
        scenario=_typed(d["scenario"], ScenarioConfig, scenario_from_dict),
        instance=instance,
        **cell_scalars(d),
        **cost,
        axes=dict(d.get("axes") or {}),
        repeat=int_at_least("repeat", d.get("repeat") or 0, 0),
        workload=_typed(d.get("workload"), WorkloadConfig, workload_from_dict),
        slo=_typed(d.get("slo"), SloConfig, slo_from_dict),
    )


def cell_cost(d: dict[str, Any], instance: InstanceSpec) -> dict[str, Any]:
    """A cell's price fields, checked: price_per_hour (the instance's list price when not
    given), price_source and pricing."""
    price = d.get("price_per_hour")
    if price is None:
        price = instance.usd_per_hour
    ok = finite(price) and price >= 0
    require(ok, "price_per_hour", price, "must be a finite number >= 0 (USD per hour)")
    return {
        "price_per_hour": float(price),
        "price_source": str(d.get("price_source") or ""),
        "pricing": choice("pricing", d.get("pricing") or "ec2", (*PRICINGS, "override")),
    }


def cell_scalars(d: dict[str, Any]) -> dict[str, Any]:
    """A cell's own values besides its sections and price, checked."""
    torch_threads = d.get("torch_threads")
    if torch_threads is not None:
        int_at_least("torch_threads", torch_threads, 1)
    return {
        "precision": choice("precision", d.get("precision"), PRECISIONS),
        "batch_size": int_at_least("batch_size", d.get("batch_size"), 1, MAX_BATCH_SIZE),
        "threads": int_at_least("threads", d.get("threads"), 1, MAX_THREADS),
        "tp_degree": int_at_least("tp_degree", d.get("tp_degree"), 1, MAX_TP_DEGREE),
        "device": choice("device", d.get("device"), DEVICES),
        "torch_threads": torch_threads,
        "seed": int_at_least("seed", d.get("seed") or 0, 0),
        "models_dir": str(d.get("models_dir")),
        "quality": choice("quality", d.get("quality") or "auto", QUALITIES),
    }


def _typed(value: Any, kind: type[T], parse: Callable[[Any], T]) -> T:
    """A section of a cell as given when already checked (the planner checks each distinct
    one once), else parsed and checked from its dict."""
    return value if isinstance(value, kind) else parse(value)


# The keys of the root config besides the config groups' (conf/config.yaml), and of the
# sections that are not groups: a grid file or a `+key=` that adds any other key is a typo.
ROOT_SECTIONS = {
    "sla": {"p99_ms", "ttft_ms", "tpot_ms", "max_failed_share"},
    "fit": {"margin", "partitions", "params", "lbme_gb"},
    "plan": {"cell_overhead_s"},
    "slo": set(SLO_KEYS),
}
GRID_KEYS = ("name", "axes", "blocks", "max_cells")
FORMATS = ("table", "json")
PRICINGS = ("ec2", "sagemaker")  # which catalog price a cell is costed at


# Executor options that are numbers: (integer?, lowest allowed).
def _optional_positive(key: str, value: Any) -> None:
    if value is not None:
        positive(key, value)


def _yaml_keys(path: Path) -> set[str]:
    from omegaconf import OmegaConf

    loaded = OmegaConf.to_container(OmegaConf.load(path))
    return set(loaded) if isinstance(loaded, dict) else set()


def check_group_keys(group: str, options: dict[str, Any], choice: str | None) -> None:
    """A group's keys are those its YAML files declare (the chosen one's, where there is a
    file per choice): `+executor.timeout=5` is a typo of timeout_s, not a new option."""
    choices = group_files(group)
    files = [choices[choice]] if choice in choices else sorted(choices.values())
    known = set().union(*(_yaml_keys(f) for f in files)) if files else set(options)
    if unknown := sorted(set(options) - known):
        raise ConfigError(
            f"{group}.{unknown[0]}", options[unknown[0]], "keys: " + ", ".join(sorted(known))
        )


def check_root(cfg: dict[str, Any], known_root: set[str]) -> None:
    """The composed root config's own keys: no unknown ones, every value in range."""
    for key in cfg:
        hint = did_you_mean(key, known_root) if key not in known_root else ""
        require(key in known_root, key, cfg[key], "no such config key" + hint)
    for section, keys in ROOT_SECTIONS.items():
        for key in cfg.get(section) or {}:
            hint = did_you_mean(key, keys) if key not in keys else ""
            require(key in keys, f"{section}.{key}", cfg[section][key], "no such config key" + hint)
    for key in cfg.get("grid") or {}:
        require(
            key in GRID_KEYS, f"grid.{key}", cfg["grid"][key], "allowed: " + ", ".join(GRID_KEYS)
        )
    choice("format", cfg.get("format"), FORMATS)
    choice("pricing", cfg.get("pricing"), PRICINGS)
    int_at_least("seed", cfg.get("seed"), 0)
    if (price := cfg.get("price_per_hour")) is not None:
        require(
            finite(price) and price >= 0, "price_per_hour", price, "must be a finite number >= 0"
        )
    for key in ("p99_ms", "ttft_ms", "tpot_ms"):
        _optional_positive(f"sla.{key}", (cfg.get("sla") or {}).get(key))
    failed = (cfg.get("sla") or {}).get("max_failed_share", 0.0)
    require(
        finite(failed) and 0 <= failed <= 1, "sla.max_failed_share", failed, "must be from 0 to 1"
    )
    slo_from_dict(cfg.get("slo"))
    fit = cfg.get("fit") or {}
    margin = fit.get("margin")
    require(finite(margin) and 0 <= margin <= 1, "fit.margin", margin, "must be from 0 to 1")
    partitions = fit.get("partitions")
    ok = isinstance(partitions, list) and bool(partitions)
    require(ok, "fit.partitions", partitions, "must be a list of integers >= 1, e.g. [1,2,4,8]")
    for value in partitions:
        int_at_least("fit.partitions", value, 1, MAX_TP_DEGREE)
    _optional_positive("fit.params", fit.get("params"))
    _optional_positive("fit.lbme_gb", fit.get("lbme_gb"))
    both = fit.get("params") is not None and fit.get("lbme_gb") is not None
    require(not both, "fit.lbme_gb", fit.get("lbme_gb"), "give fit.params or fit.lbme_gb, not both")
    positive("plan.cell_overhead_s", (cfg.get("plan") or {}).get("cell_overhead_s"))
    executor = dict(cfg.get("executor") or {})
    check_group_keys("executor", executor, executor.get("name"))
    check_group_keys("store", dict(cfg.get("store") or {}), None)


def root_keys() -> set[str]:
    """The keys the root config may have: conf/config.yaml's own and the config groups'."""
    return (_yaml_keys(conf_dir() / "config.yaml") - {"defaults"}) | {
        *CONFIG_GROUPS,
        "catalog",
        "grid",
    }
