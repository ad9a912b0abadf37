"""Cells against the OpenAI-compatible test server (tests/support/openai_server.py), and the
marker that starts it with a test's arguments (the `openai_server` fixture lives in
tests/integration/conftest.py)."""

from __future__ import annotations

import pytest

from bench.config.schema import CellConfig
from bench.plan.grid import plan_from_overrides


def http_cell(url: str, *overrides: str) -> CellConfig:
    """A short opt_tiny cell over engine=http at `url`; overrides last."""
    return plan_from_overrides(
        [
            "model=opt_tiny",
            "engine=http",
            f"engine.url={url}",
            "scenario.warmup_requests=2",
            "scenario.warmup_s=0.1",
            "scenario.min_requests=60",
            "scenario.min_duration_s=1.0",
            "scenario.max_duration_s=6",  # a cell whose every request fails ends here
            "scenario.ci_target=0",
            *overrides,
        ]
    ).cells[0]


def server_args(*args: str) -> pytest.MarkDecorator:
    """Start the test's server with these arguments."""
    return pytest.mark.parametrize("openai_server", [list(args)], indirect=True)
