"""Engine registry: a plain dict from the names used in config to the classes.

Each engine module keeps its heavy imports (torch, transformers, ...) inside its methods, so
importing this registry, validating config and running the calibration engines stay cheap.
"""

from __future__ import annotations

from typing import Any

from bench.config.checks import ConfigError
from bench.engines.accelerate import AccelerateEngine
from bench.engines.base import Engine
from bench.engines.calibration import NullEngine, SleepEngine
from bench.engines.deepspeed import DeepSpeedEngine
from bench.engines.endpoint import HttpEngine, SageMakerEngine
from bench.engines.fastertransformer import FasterTransformerEngine
from bench.engines.hf import HFEngine
from bench.engines.onnxruntime import OnnxRuntimeEngine
from bench.engines.tensorrt import TensorRTEngine
from bench.engines.torch_compile import TorchCompileEngine
from bench.engines.vllm import VllmEngine

ENGINES: dict[str, type[Engine]] = {
    "hf": HFEngine,
    "accelerate": AccelerateEngine,
    "deepspeed": DeepSpeedEngine,
    "torch_compile": TorchCompileEngine,
    "fastertransformer": FasterTransformerEngine,
    "onnxruntime": OnnxRuntimeEngine,
    "tensorrt": TensorRTEngine,
    "http": HttpEngine,
    "sagemaker": SageMakerEngine,
    "vllm": VllmEngine,
    "null": NullEngine,
    "sleep": SleepEngine,
}


def check_engine(engine: dict[str, Any]) -> None:
    """The config's `engine`: a registered name, and options that engine takes (ConfigError
    naming the key, the value and what is allowed)."""
    name = engine.get("name")
    if name not in ENGINES:
        raise ConfigError("engine", name, "allowed: " + ", ".join(sorted(ENGINES)))
    ENGINES[name].check(engine)  # its `name` is the registry's, not an option


__all__ = ["ENGINES", "Engine", "check_engine"]
