"""bench: measure model inference across engines, precisions, batch sizes and instance types."""

__version__ = "0.1.0"
