"""Length distributions: what is drawn follows what was configured (a Kolmogorov-Smirnov
check at a fixed seed), and the check can fail."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.config.checks import ConfigError
from bench.measure.workloads.lengths import Lengths, ks_distance
from bench.measure.workloads.synthetic import SyntheticOptions

N = 4000
CRITICAL = 1.36 / math.sqrt(N)  # 5 % level (conservative for a discrete distribution)


@pytest.mark.parametrize(
    "spec",
    [
        Lengths("fixed", 128),
        Lengths("uniform", 0, 0, 16, 300),
        Lengths("normal", 200, 40, 1, 0),
        Lengths("lognormal", 200, 120, 8, 2000),
    ],
    ids=lambda s: s.dist,
)
def test_drawn_lengths_follow_their_distribution(spec: Lengths) -> None:
    drawn = spec.draw(np.random.default_rng(3), N)
    assert drawn.min() >= spec.low and drawn.max() <= spec.top
    assert ks_distance(drawn, spec) < CRITICAL


def test_the_check_tells_another_distribution_apart() -> None:
    drawn = Lengths("lognormal", 200, 120, 8, 2000).draw(np.random.default_rng(3), N)
    assert ks_distance(drawn, Lengths("normal", 200, 120, 8, 2000)) > CRITICAL
    assert ks_distance(drawn, Lengths("lognormal", 220, 120, 8, 2000)) > CRITICAL


def test_the_lognormal_has_the_mean_and_spread_asked() -> None:
    drawn = Lengths("lognormal", 300, 150).draw(np.random.default_rng(1), 40000)
    assert drawn.mean() == pytest.approx(300, rel=0.02)
    assert drawn.std() == pytest.approx(150, rel=0.05)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"input_dist": "zipf"}, "workload.input_dist"),
        ({"input_dist": "normal", "input_mean": 10}, "workload.input_std"),
        ({"input_dist": "uniform"}, "workload.input_max"),
        ({"output_mean": 0}, "workload.output_mean"),
        ({"output_min": 10, "output_max": 5}, "workload.output_max"),
    ],
)
def test_bad_lengths_name_their_key(options: dict, key: str) -> None:
    side = "input" if key.startswith("workload.input") else "output"
    with pytest.raises(ConfigError) as caught:
        Lengths.of(SyntheticOptions(**options), side, 64)
    assert caught.value.key == key
