"""engine=fastertransformer: NVIDIA FasterTransformer v5.3's torch ops (engine), fed the
per-rank weight files that convert writes from a Hugging Face checkpoint.

Importing this package imports the engine class alone: torch, numpy and the converter load
when a cell prepares or loads, so the registry lists the engine on every host, and a host
without FT's op library reports the cell `unsupported` with the reason (host_reason)."""

from __future__ import annotations

from bench.engines.fastertransformer.engine import FasterTransformerEngine

__all__ = ["FasterTransformerEngine"]
