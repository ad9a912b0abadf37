"""Calibration engines: they load no model, so what they measure is the load generator itself.

`null` returns at once: its latency is the harness's own cost per timed request.
`sleep` takes a fixed service time per request: the measured latency and throughput must come
out at service_ms and threads x batch_size / service_ms.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.config import ConfigError
from bench.engines.base import Engine, LoadInfo


class NullEngine(Engine):
    name = "null"

    def load(self) -> LoadInfo:
        return LoadInfo(device="cpu")

    def make_batch(self) -> Any:
        return None

    def infer(self, batch: Any) -> Any:
        return batch

    def generate(self, batch: Any, new_tokens: int) -> Any:
        return batch


@dataclass(frozen=True)
class SleepOptions:
    service_ms: float = 5.0  # time each request takes, in milliseconds


class SleepEngine(Engine):
    name = "sleep"
    Options = SleepOptions

    @classmethod
    def validate(cls, options: SleepOptions) -> None:
        if options.service_ms <= 0:
            raise ConfigError("engine.service_ms", options.service_ms, "must be > 0")

    def load(self) -> LoadInfo:
        self._seconds = self.options.service_ms / 1000.0
        return LoadInfo(device="cpu")

    def make_batch(self) -> Any:
        return None

    def infer(self, batch: Any) -> Any:
        time.sleep(self._seconds)  # releases the GIL: concurrent requests overlap
        return batch

    def generate(self, batch: Any, new_tokens: int) -> Any:
        return self.infer(batch)
