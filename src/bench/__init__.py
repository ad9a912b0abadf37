"""bench: measure model inference across engines, precisions, batch sizes and instance types."""

from bench.version import VERSION as __version__

__all__ = ["__version__"]
