"""Which model of a multi-model endpoint each request goes to: a SageMaker multi-model
endpoint's TargetModel, a KServe v2 / Triton server's model name.

A cell names N targets (`target_models: N` with a pattern such as `model-{i}.tar.gz`, or an
explicit `target_names` list) and a popularity (`target_distribution`: `uniform`, or `zipf`
with exponent `target_skew`: target i, from 0, gets a share proportional to 1 / (i + 1)^s, as
a few hot models and a long tail of cold ones on a real multi-model endpoint). The draw is
seeded by the cell's seed: the k-th request sent goes to the k-th entry of a sequence fixed
before measuring, so the same cell sends the same targets in the same order, and which
client thread sends it does not change the count per target.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from bench.config.checks import ConfigError

DISTRIBUTIONS = ("uniform", "zipf")
# Draws made before measuring; a request takes the next (cycling after this many). A lookup
# in the timed bracket costs a counter step and an index, where a seeded draw would need a
# lock shared by every client thread.
SEQUENCE = 1 << 16


def check_targets(options: Any, single: str = "") -> None:
    """The target options of an endpoint engine (`target_models`, `target_pattern`,
    `target_names`, `target_distribution`, `target_skew`); `single` names the option that
    sends one fixed target, which a list of targets replaces."""
    count, names = options.target_models, tuple(options.target_names)
    if not isinstance(count, int) or count < 0:
        raise ConfigError("engine.target_models", count, "must be an integer >= 0 (0: one model)")
    if count and names:
        raise ConfigError(
            "engine.target_names", list(names), "give target_names or target_models, not both"
        )
    if single and (count or names) and getattr(options, single):
        raise ConfigError(
            f"engine.{single}",
            getattr(options, single),
            f"one target or several: leave {single} empty with target_models / target_names",
        )
    if any(not isinstance(n, str) or not n for n in names) or len(set(names)) != len(names):
        raise ConfigError("engine.target_names", list(names), "must be distinct non-empty names")
    if count:
        try:
            made = {options.target_pattern.format(i=i, model="m") for i in range(count)}
        except (KeyError, IndexError, ValueError):
            made = set()
        if len(made) != count:
            raise ConfigError(
                "engine.target_pattern",
                options.target_pattern,
                "must contain {i} (and may contain {model}) to name each target",
            )
    if options.target_distribution not in DISTRIBUTIONS:
        raise ConfigError(
            "engine.target_distribution",
            options.target_distribution,
            "allowed: " + ", ".join(DISTRIBUTIONS),
        )
    skew = options.target_skew
    if isinstance(skew, bool) or not isinstance(skew, (int, float)) or not 0 < skew < 100:
        raise ConfigError("engine.target_skew", skew, "must be a number in (0, 100)")


def target_names(options: Any, model: str) -> tuple[str, ...]:
    """The targets the options name (empty: none, one fixed model); `model` fills the
    pattern's {model}."""
    if options.target_names:
        return tuple(options.target_names)
    return tuple(
        options.target_pattern.format(i=i, model=model) for i in range(options.target_models)
    )


def shares(count: int, distribution: str, skew: float) -> list[float]:
    """Each target's expected share of the requests."""
    weights = [1.0 if distribution == "uniform" else 1 / (i + 1) ** skew for i in range(count)]
    total = sum(weights)
    return [w / total for w in weights]


class TargetDraw:
    """The target of each request, in a sequence drawn once from the cell's seed."""

    def __init__(self, names: tuple[str, ...], distribution: str, skew: float, seed: int) -> None:
        self.names, self.distribution, self.skew = names, distribution, skew
        weights = list(itertools.accumulate(shares(len(names), distribution, skew)))
        rng = random.Random(f"targets/{seed}")  # its own stream: the workload's is untouched
        self.sequence = rng.choices(range(len(names)), cum_weights=weights, k=SEQUENCE)
        self._sent = itertools.count()  # next() is atomic under the GIL: no lock per request

    def next(self) -> str:
        """The next request's target."""
        return self.names[self.sequence[next(self._sent) % SEQUENCE]]

    def sent(self) -> int:
        """Requests drawn so far (read once no request is in flight: after measuring)."""
        count = next(self._sent)
        self._sent = itertools.count(count)  # reading it took no target
        return count

    def counts(self) -> dict[str, int]:
        """Requests per target so far, every target named (warmup and failed ones included:
        each was sent to its target)."""
        sent = self.sent()
        got = dict.fromkeys(self.names, 0)
        whole, rest = divmod(sent, SEQUENCE)
        for index in self.sequence[:rest]:
            got[self.names[index]] += 1
        if whole:
            for index in self.sequence:
                got[self.names[index]] += whole
        return got

    def facts(self) -> dict[str, Any]:
        """For engine_info: the targets and how requests were spread over them."""
        how = self.distribution if self.distribution == "uniform" else f"zipf s={self.skew:g}"
        return {"targets": len(self.names), "target_distribution": how}


def target_draw(options: Any, model: str, seed: int) -> TargetDraw | None:
    """The cell's draw, or None when it sends every request to one model."""
    names = target_names(options, model)
    if not names:
        return None
    return TargetDraw(names, options.target_distribution, options.target_skew, seed)
