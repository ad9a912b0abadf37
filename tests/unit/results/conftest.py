"""Fixtures of the report tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bench.results import report_plots


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """The matplotlib figures the plots make, kept open instead of turned into PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    made: list[Any] = []
    monkeypatch.setattr(report_plots, "figure_png", lambda figure: made.append(figure) or b"")
    yield made
    import matplotlib.pyplot as plt

    plt.close("all")
