"""Typed schemas for a cell's configuration, and validation that names what is wrong.

Pure and offline: nothing here loads a model, touches the network or mutates the environment.
A cell is everything one job needs, as plain JSON in the manifest; `cell_from_dict` turns that
JSON (or a composed Hydra config) back into these dataclasses and checks every value.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import tasks as _tasks

# fp16 / bf16 cast the whole model; amp_fp16 / amp_bf16 keep fp32 weights and autocast each call
PRECISIONS = ("fp32", "fp16", "bf16", "amp_fp16", "amp_bf16", "int8")
DEVICES = ("auto", "cpu", "cuda")
# Tasks and the auto classes each may name live in bench.config.tasks (an explicit list, never a
# getattr on user input).
TASKS = tuple(_tasks.TASKS)
AUTO_CLASSES = _tasks.AUTO_CLASSES
CONFIG_GROUPS = ("model", "engine", "executor", "store", "scenario")


class ConfigError(ValueError):
    """A bad configuration value: one line naming the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not allowed; {allowed}")


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
    _require(folder.is_dir(), "--config-dir", path, "must be an existing folder")
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


SCENARIOS = ("latency", "ramp", "open_loop", "capacity")
# Keys an older config may still carry, and what replaced them.
REMOVED_SCENARIO_KEYS = {
    "stable_windows": "removed: the verdict looks for a change point in the whole window; drop it",
    "bootstrap_resamples": (
        "removed: the throughput interval is batch means over scenario.windows time blocks; "
        "drop the key"
    ),
}


@dataclass(frozen=True)
class ScenarioConfig:
    """How a cell loads its engine. Every scenario shares the measuring and stopping keys; the
    keys after them belong to one scenario each (conf/scenario/NAME.yaml sets them)."""

    name: str  # latency | ramp | open_loop | capacity
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
    # ramp: one closed-loop stage per concurrency, each with its own warmup
    stages: tuple[int, ...] = ()
    stage_duration_s: float = 5.0
    stage_warmup_s: float = 1.0
    sla_p99_ms: float | None = None  # the latency a stage must meet (default: sla.p99_ms)
    # open_loop: Poisson arrivals at rate_per_s, or at load_fraction x a measured capacity
    rate_per_s: float = 0.0
    load_fraction: float = 0.8
    calibrate_s: float = 2.0  # closed-loop seconds that measure the capacity
    # capacity: load copies until memory use would pass memory_threshold x the budget
    memory_threshold: float = 0.9
    memory_budget_mb: float = 0.0  # 0 = the device's memory (RAM for CPU cells)
    max_copies: int = 64


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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _require(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ConfigError(key, value, allowed)


def _choice(
    key: str, value: Any, allowed: tuple[str, ...] | list[str], what: str = "allowed"
) -> str:
    _require(value in allowed, key, value, f"{what}: " + ", ".join(allowed))
    return value


def _int_at_least(key: str, value: Any, low: int, high: int | None = None) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if high is None:
        _require(ok, key, value, f"must be an integer >= {low}")
    else:
        _require(ok and value <= high, key, value, f"must be an integer from {low} to {high}")
    return value


# Upper bounds that only catch typos (threads=1e9 would start a billion threads).
MAX_BATCH_SIZE = 1 << 20
MAX_THREADS = 4096
MAX_TP_DEGREE = 256


def flag(key: str, value: Any) -> bool:
    """A true/false switch. Only a real boolean: `force=no` or `force="0"` would be truthy
    strings, and a switch like force that re-runs cells must never flip by accident."""
    _require(isinstance(value, bool), key, value, "must be true or false")
    return value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def finite_number(key: str, text: str, low: float, high: float) -> float:
    """A number given on the command line as text, finite and in [low, high]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    ok = math.isfinite(value) and low <= value <= high
    _require(ok, key, text, f"must be a number from {low:g} to {high:g}")
    return value


def _positive(key: str, value: Any) -> float:
    ok = _finite(value) and value > 0
    _require(ok, key, value, "must be a finite number > 0")
    return float(value)


def model_from_dict(d: dict[str, Any]) -> ModelConfig:
    task = _tasks.TASKS[_choice("model.task", d.get("task"), TASKS)]
    new_tokens = d.get("new_tokens", 0)
    if task.generates:
        _int_at_least("model.new_tokens", new_tokens, 1)
    seq_len = d.get("seq_len") if task.text else (d.get("seq_len") or 0)
    image_size = d.get("image_size")
    if image_size is not None:
        _int_at_least("model.image_size", image_size, 1)
    known = [f.name for f in dataclasses.fields(ModelConfig)]
    if unknown := sorted(set(d) - set(known)):
        raise ConfigError(f"model.{unknown[0]}", d[unknown[0]], "keys: " + ", ".join(known))
    arch = d.get("architecture") or {}
    checkpoint = d.get("checkpoint")
    _require(
        bool(checkpoint) or "model_type" in arch,
        "model.architecture.model_type",
        arch.get("model_type"),
        "set it (or model.checkpoint to a local checkpoint folder)",
    )
    return ModelConfig(
        name=str(d.get("name")),
        family=str(d.get("family") or arch.get("model_type")),
        task=task.name,
        auto_class=_choice(
            "model.auto_class", d.get("auto_class"), task.auto_classes, f"task {task.name} takes"
        ),
        seq_len=_int_at_least("model.seq_len", seq_len, 1 if task.text else 0),
        new_tokens=int(new_tokens or 0),
        checkpoint=str(checkpoint) if checkpoint else None,
        architecture=dict(arch),
        image_size=int(image_size) if image_size is not None else None,
    )


def _number(key: str, value: Any) -> float:
    ok = _finite(value) and value >= 0
    _require(ok, key, value, "must be a finite number >= 0")
    return float(value)


def _share(key: str, value: Any, low_open: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (0 < value < 1 if low_open else 0 <= value < 1)
    _require(ok, key, value, "must be a number in (0, 1)" if low_open else "must be in [0, 1)")
    return float(value)


def _stages(value: Any) -> tuple[int, ...]:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    ok = bool(values) and all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    ok = ok and all(v >= 1 for v in values) and values == sorted(set(values))
    _require(ok, "scenario.stages", value, "must be a rising list of concurrencies >= 1")
    return tuple(values)


def _optional(check: Any, key: str, d: dict[str, Any], *bounds: int) -> Any:
    """d's value for `key` (scenario.NAME) checked by `check`, or None when unset."""
    value = d.get(key.rsplit(".", 1)[1])
    return None if value is None else check(key, value, *bounds)


def scenario_from_dict(d: dict[str, Any]) -> ScenarioConfig:
    name = _choice("scenario.name", d.get("name"), SCENARIOS)
    defaults = ScenarioConfig(name, 0, 1, 1.0, 1.0)
    got = {**dataclasses.asdict(defaults), **{k: v for k, v in d.items() if v is not None}}
    known = [f.name for f in dataclasses.fields(ScenarioConfig)]
    for key, why in REMOVED_SCENARIO_KEYS.items():
        if key in d:
            raise ConfigError(f"scenario.{key}", d[key], why)
    if unknown := sorted(set(d) - set(known)):
        raise ConfigError(f"scenario.{unknown[0]}", d[unknown[0]], "keys: " + ", ".join(known))
    sla = d.get("sla_p99_ms")
    s = ScenarioConfig(
        name=name,
        warmup_requests=_int_at_least("scenario.warmup_requests", got["warmup_requests"], 0),
        min_requests=_int_at_least("scenario.min_requests", got["min_requests"], 1),
        min_duration_s=_positive("scenario.min_duration_s", got["min_duration_s"]),
        max_duration_s=_positive("scenario.max_duration_s", got["max_duration_s"]),
        warmup_s=_number("scenario.warmup_s", got["warmup_s"]),
        confidence=_share("scenario.confidence", got["confidence"]),
        ci_target=_share("scenario.ci_target", got["ci_target"], low_open=False),
        windows=_int_at_least("scenario.windows", got["windows"], 8),
        stable_tolerance=_positive("scenario.stable_tolerance", got["stable_tolerance"]),
        request_timeout_s=_optional(_positive, "scenario.request_timeout_s", d),
        server_workers=_optional(_int_at_least, "scenario.server_workers", d, 1),
        max_waiting=_optional(_int_at_least, "scenario.max_waiting", d, 0),
        stages=_stages(got["stages"]) if name == "ramp" or got["stages"] else (),
        stage_duration_s=_positive("scenario.stage_duration_s", got["stage_duration_s"]),
        stage_warmup_s=_number("scenario.stage_warmup_s", got["stage_warmup_s"]),
        sla_p99_ms=_positive("scenario.sla_p99_ms", sla) if sla is not None else None,
        rate_per_s=_number("scenario.rate_per_s", got["rate_per_s"]),
        load_fraction=_positive("scenario.load_fraction", got["load_fraction"]),
        calibrate_s=_positive("scenario.calibrate_s", got["calibrate_s"]),
        memory_threshold=_share("scenario.memory_threshold", got["memory_threshold"]),
        memory_budget_mb=_number("scenario.memory_budget_mb", got["memory_budget_mb"]),
        max_copies=_int_at_least("scenario.max_copies", got["max_copies"], 1),
    )
    _require(
        s.max_duration_s >= s.min_duration_s,
        "scenario.max_duration_s",
        s.max_duration_s,
        f"must be >= scenario.min_duration_s ({s.min_duration_s})",
    )
    _require(
        name != "open_loop" or s.rate_per_s > 0 or s.load_fraction <= 1.5,
        "scenario.load_fraction",
        s.load_fraction,
        "must be <= 1.5 (set scenario.rate_per_s for an absolute rate)",
    )
    return s


def engine_from_dict(d: dict[str, Any]) -> EngineConfig:
    """The engine's name and options as given; whether the engine exists and takes these
    options is the registry's to say (bench.engines.check_engine, called by the planner):
    the schema knows no engine."""
    name = d.get("name")
    _require(isinstance(name, str) and bool(name), "engine", name, "must name an engine")
    return EngineConfig(name=name, options={k: v for k, v in d.items() if k != "name"})


def catalog_entries(catalog: dict[str, Any]) -> list[dict[str, Any]]:
    """The catalog's instance types and those a user's config added (catalog.extra)."""
    entries = [*catalog["instances"], *(catalog.get("extra") or [])]
    seen: set[str] = set()
    for entry in entries:
        _require(
            isinstance(entry, dict) and "type" in entry,
            "catalog.extra",
            entry,
            "each entry is a mapping with a type",
        )
        _require(entry["type"] not in seen, "catalog.extra", entry["type"], "already a type")
        seen.add(entry["type"])
    return entries


def instance_from_catalog(catalog: list[dict[str, Any]], type_: str) -> InstanceSpec:
    by_type = {entry["type"]: entry for entry in catalog}
    _choice("instance", type_, list(by_type))
    fields = {f.name for f in dataclasses.fields(InstanceSpec)}
    return InstanceSpec(**{k: v for k, v in by_type[type_].items() if k in fields})


def cell_from_dict(d: dict[str, Any]) -> CellConfig:
    """Validate a cell (from the manifest, or a composed and resolved config)."""
    instance = d["instance"]
    if not isinstance(instance, InstanceSpec):
        instance = InstanceSpec(**instance)
    price = d.get("price_per_hour")
    if price is None:
        price = instance.usd_per_hour
    ok = _finite(price) and price >= 0
    _require(ok, "price_per_hour", price, "must be a finite number >= 0 (USD per hour)")
    torch_threads = d.get("torch_threads")
    if torch_threads is not None:
        _int_at_least("torch_threads", torch_threads, 1)
    engine = d["engine"]
    return CellConfig(
        sweep_id=str(d.get("sweep_id") or ""),
        cell_id=str(d.get("cell_id") or ""),
        index=int(d.get("index") or 0),
        model=model_from_dict(d["model"]),
        engine=engine_from_dict(
            {"name": engine.get("name"), **engine.get("options", {})}
            if "options" in engine
            else engine
        ),
        scenario=scenario_from_dict(d["scenario"]),
        instance=instance,
        precision=_choice("precision", d.get("precision"), PRECISIONS),
        batch_size=_int_at_least("batch_size", d.get("batch_size"), 1, MAX_BATCH_SIZE),
        threads=_int_at_least("threads", d.get("threads"), 1, MAX_THREADS),
        tp_degree=_int_at_least("tp_degree", d.get("tp_degree"), 1, MAX_TP_DEGREE),
        device=_choice("device", d.get("device"), DEVICES),
        price_per_hour=float(price),
        price_source=str(d.get("price_source") or ""),
        torch_threads=torch_threads,
        seed=_int_at_least("seed", d.get("seed") or 0, 0),
        models_dir=str(d.get("models_dir")),
        axes=dict(d.get("axes") or {}),
        repeat=_int_at_least("repeat", d.get("repeat") or 0, 0),
        pricing=_choice("pricing", d.get("pricing") or "ec2", (*PRICINGS, "override")),
    )


# The keys of the root config besides the config groups' (conf/config.yaml), and of the
# sections that are not groups: a grid file or a `+key=` that adds any other key is a typo.
ROOT_SECTIONS = {
    "sla": {"p99_ms", "ttft_ms", "tpot_ms"},
    "fit": {"margin", "partitions", "params", "lbme_gb"},
    "plan": {"cell_overhead_s"},
}
GRID_KEYS = ("name", "axes", "blocks")
FORMATS = ("table", "json")
PRICINGS = ("ec2", "sagemaker")  # which catalog price a cell is costed at
# Executor options that are numbers: (integer?, lowest allowed).
EXECUTOR_NUMBERS = {
    "timeout_s": (False, 0.0),
    "attempt_duration_s": (True, 60),  # AWS Batch refuses shorter attempt timeouts
    "time_limit_s": (True, 1),
    "poll_s": (False, 0.0),
    "attempts": (True, 1),
    "parallelism": (True, 1),
}


def _optional_positive(key: str, value: Any) -> None:
    if value is not None:
        _positive(key, value)


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


def check_executor_options(options: dict[str, Any]) -> None:
    """The executor's numeric options are finite and in range (before anything is written)."""
    for key, (integer, low) in EXECUTOR_NUMBERS.items():
        if key not in options:
            continue
        value, name = options[key], f"executor.{key}"
        if integer:
            _int_at_least(name, value, int(low))
        else:
            _require(_finite(value) and value > low, name, value, "must be a finite number > 0")
    if options.get("shared_memory_mib") is not None:  # null: the executor's own default
        _int_at_least("executor.shared_memory_mib", options["shared_memory_mib"], 64)


def check_root(cfg: dict[str, Any], known_root: set[str]) -> None:
    """The composed root config's own keys: no unknown ones, every value in range."""
    for key in cfg:
        _require(key in known_root, key, cfg[key], "no such config key")
    for section, keys in ROOT_SECTIONS.items():
        for key in cfg.get(section) or {}:
            _require(key in keys, f"{section}.{key}", cfg[section][key], "no such config key")
    for key in cfg.get("grid") or {}:
        _require(
            key in GRID_KEYS, f"grid.{key}", cfg["grid"][key], "allowed: " + ", ".join(GRID_KEYS)
        )
    _choice("format", cfg.get("format"), FORMATS)
    _choice("pricing", cfg.get("pricing"), PRICINGS)
    _int_at_least("seed", cfg.get("seed"), 0)
    if (price := cfg.get("price_per_hour")) is not None:
        _require(
            _finite(price) and price >= 0, "price_per_hour", price, "must be a finite number >= 0"
        )
    for key in ("p99_ms", "ttft_ms", "tpot_ms"):
        _optional_positive(f"sla.{key}", (cfg.get("sla") or {}).get(key))
    fit = cfg.get("fit") or {}
    margin = fit.get("margin")
    _require(_finite(margin) and 0 <= margin <= 1, "fit.margin", margin, "must be from 0 to 1")
    partitions = fit.get("partitions")
    ok = isinstance(partitions, list) and bool(partitions)
    _require(ok, "fit.partitions", partitions, "must be a list of integers >= 1, e.g. [1,2,4,8]")
    for value in partitions:
        _int_at_least("fit.partitions", value, 1, MAX_TP_DEGREE)
    _optional_positive("fit.params", fit.get("params"))
    _optional_positive("fit.lbme_gb", fit.get("lbme_gb"))
    both = fit.get("params") is not None and fit.get("lbme_gb") is not None
    _require(
        not both, "fit.lbme_gb", fit.get("lbme_gb"), "give fit.params or fit.lbme_gb, not both"
    )
    _positive("plan.cell_overhead_s", (cfg.get("plan") or {}).get("cell_overhead_s"))
    executor = dict(cfg.get("executor") or {})
    check_group_keys("executor", executor, executor.get("name"))
    check_group_keys("store", dict(cfg.get("store") or {}), None)
    check_executor_options(executor)


def root_keys() -> set[str]:
    """The keys the root config may have: conf/config.yaml's own and the config groups'."""
    return (_yaml_keys(conf_dir() / "config.yaml") - {"defaults"}) | {
        *CONFIG_GROUPS,
        "catalog",
        "grid",
    }
