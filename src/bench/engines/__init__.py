"""Engine registry: a plain dict from the names used in config to the classes.

Each engine module keeps its heavy imports (torch, transformers, ...) inside its methods, so
importing this registry, validating config and running the calibration engines stay cheap.
"""

from __future__ import annotations

from bench.engines.accelerate import AccelerateEngine
from bench.engines.base import Engine
from bench.engines.calibration import NullEngine, SleepEngine
from bench.engines.deepspeed import DeepSpeedEngine
from bench.engines.fastertransformer import FasterTransformerEngine
from bench.engines.hf import HFEngine
from bench.engines.http import HttpEngine
from bench.engines.sagemaker import SageMakerEngine
from bench.engines.torch_compile import TorchCompileEngine
from bench.engines.vllm import VllmEngine

ENGINES: dict[str, type[Engine]] = {
    "hf": HFEngine,
    "accelerate": AccelerateEngine,
    "deepspeed": DeepSpeedEngine,
    "torch_compile": TorchCompileEngine,
    "fastertransformer": FasterTransformerEngine,
    "http": HttpEngine,
    "sagemaker": SageMakerEngine,
    "vllm": VllmEngine,
    "null": NullEngine,
    "sleep": SleepEngine,
}

__all__ = ["ENGINES", "Engine"]
