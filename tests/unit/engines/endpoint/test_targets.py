"""Multi-model endpoints: the seeded draw of each request's target (uniform, Zipf)."""

from __future__ import annotations

import pytest

from bench.engines.endpoint.targets import SEQUENCE, TargetDraw, shares

NAMES = tuple(f"model-{i}.tar.gz" for i in range(8))


def _chi_square(counts: list[int], expected: list[float]) -> float:
    total = sum(counts)
    return sum((c - total * p) ** 2 / (total * p) for c, p in zip(counts, expected, strict=True))


def _drawn(draw: TargetDraw, n: int) -> list[int]:
    for _ in range(n):
        draw.next()
    counts = draw.counts()
    return [counts[name] for name in draw.names]


def test_uniform_draw_spreads_requests_evenly_at_a_fixed_seed() -> None:
    counts = _drawn(TargetDraw(NAMES, "uniform", 1.0, seed=0), 8000)
    assert sum(counts) == 8000 and min(counts) > 0
    # chi-square with 7 degrees of freedom: 24.3 is its 0.1 % upper tail
    assert _chi_square(counts, shares(8, "uniform", 1.0)) < 24.3, counts


def test_zipf_draw_follows_its_skew() -> None:
    expected = shares(8, "zipf", 1.2)
    assert expected[0] > expected[1] > expected[-1]
    assert expected[0] == pytest.approx(1 / sum(1 / (i + 1) ** 1.2 for i in range(8)))
    counts = _drawn(TargetDraw(NAMES, "zipf", 1.2, seed=0), 20000)
    assert _chi_square(counts, expected) < 24.3, counts
    assert counts[0] > 2 * counts[1] * 0.9 and counts[0] > 5 * counts[-1]


def test_the_draw_is_reproducible_and_seeded() -> None:
    first = [TargetDraw(NAMES, "zipf", 1.0, seed=3).next() for _ in range(1)]
    one, two, other = (TargetDraw(NAMES, "zipf", 1.0, seed=s) for s in (3, 3, 4))
    a, b, c = ([d.next() for _ in range(500)] for d in (one, two, other))
    assert a == b and a != c and a[:1] == first
    # the count is of requests sent, past the sequence's end too, and reading it takes none
    draw = TargetDraw(NAMES, "uniform", 1.0, seed=0)
    for _ in range(SEQUENCE + 10):
        draw.next()
    assert sum(draw.counts().values()) == SEQUENCE + 10
    assert sum(draw.counts().values()) == SEQUENCE + 10
