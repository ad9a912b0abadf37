"""Token lengths a workload draws: fixed, or from uniform / normal / lognormal (mean, std,
min, max), rounded to whole tokens and kept within [min, max].

A normal or lognormal is given by its own mean and standard deviation (the lognormal's
underlying mu, sigma follow: sigma^2 = ln(1 + std^2 / mean^2), mu = ln(mean) - sigma^2 / 2);
a uniform is flat over the integers min..max. `cdf` is the distribution of the rounded,
clipped draw, which a Kolmogorov-Smirnov check of the lengths sent compares against."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.config.checks import ConfigError, choice, finite, require

DISTRIBUTIONS = ("fixed", "uniform", "normal", "lognormal")


@dataclass(frozen=True)
class Lengths:
    dist: str  # fixed | uniform | normal | lognormal
    mean: float
    std: float = 0.0
    low: int = 1  # min, inclusive
    high: int = 0  # max, inclusive; 0 = no bound beyond the mean's 1000 times

    @property
    def top(self) -> int:
        return self.high or max(self.low, int(self.mean * 1000))

    @classmethod
    def of(cls, options: Any, side: str, default_mean: int) -> Lengths:
        """The `side` (input | output) lengths from a workload's flat options
        (SIDE_dist, SIDE_mean, SIDE_std, SIDE_min, SIDE_max), checked."""
        key = f"workload.{side}"
        dist = choice(f"{key}_dist", getattr(options, f"{side}_dist"), DISTRIBUTIONS)
        mean = getattr(options, f"{side}_mean")
        mean = default_mean if mean is None else mean
        std = getattr(options, f"{side}_std")
        low, high = getattr(options, f"{side}_min"), getattr(options, f"{side}_max")
        require(finite(mean) and mean >= 1, f"{key}_mean", mean, "must be a number >= 1")
        require(finite(std) and std >= 0, f"{key}_std", std, "must be a number >= 0")
        mean, std = float(mean), float(std)
        require(low >= 1, f"{key}_min", low, "must be an integer >= 1")
        require(high == 0 or high >= low, f"{key}_max", high, f"must be 0 or >= {key}_min")
        if dist in ("normal", "lognormal") and std == 0:
            raise ConfigError(f"{key}_std", std, f"must be > 0 for a {dist} distribution")
        if dist == "uniform" and high == 0:
            raise ConfigError(f"{key}_max", high, "a uniform distribution needs its max")
        return cls(dist, mean, std, int(low), int(high))

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """`size` lengths (int64)."""
        if self.dist == "fixed":
            values = np.full(size, round(self.mean), dtype=np.float64)
        elif self.dist == "uniform":
            return rng.integers(self.low, self.top + 1, size=size)
        elif self.dist == "normal":
            values = rng.normal(self.mean, self.std, size=size)
        else:
            mu, sigma = self._lognormal()
            values = rng.lognormal(mu, sigma, size=size)
        return np.clip(np.rint(values), self.low, self.top).astype(np.int64)

    def _lognormal(self) -> tuple[float, float]:
        sigma2 = math.log1p(self.std**2 / self.mean**2)
        return math.log(self.mean) - sigma2 / 2, math.sqrt(sigma2)

    def cdf(self, k: float) -> float:
        """P(drawn length <= k)."""
        if k < self.low:
            return 0.0
        if k >= self.top:
            return 1.0
        k = math.floor(k)
        if self.dist == "fixed":
            return 1.0 if k >= min(max(round(self.mean), self.low), self.top) else 0.0
        if self.dist == "uniform":
            return (k - self.low + 1) / (self.top - self.low + 1)
        edge = k + 0.5  # rint: k is drawn for values below k + 0.5
        if self.dist == "normal":
            return 0.5 * (1 + math.erf((edge - self.mean) / (self.std * math.sqrt(2))))
        mu, sigma = self._lognormal()
        return 0.5 * (1 + math.erf((math.log(edge) - mu) / (sigma * math.sqrt(2))))

    def describe(self) -> str:
        if self.dist == "fixed":
            return f"{round(self.mean)}"
        if self.dist == "uniform":
            return f"uniform {self.low}..{self.top}"
        return f"{self.dist}(mean {self.mean:g}, std {self.std:g}, {self.low}..{self.top})"


def ks_distance(lengths: np.ndarray, spec: Lengths) -> float:
    """Kolmogorov-Smirnov distance between drawn lengths and the distribution they were drawn
    from (its discrete CDF at every value drawn, from either side of the step)."""
    values, counts = np.unique(np.asarray(lengths), return_counts=True)
    empirical = np.cumsum(counts) / counts.sum()
    below = np.concatenate([[0.0], empirical[:-1]])
    distance = 0.0
    for value, upper, lower in zip(values, empirical, below, strict=True):
        model_at, model_before = spec.cdf(value), spec.cdf(value - 1)
        distance = max(distance, abs(upper - model_at), abs(lower - model_before))
    return distance
