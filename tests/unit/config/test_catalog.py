"""The composed config's instance catalog: the shipped types, the user's catalog.extra, and
their Spot prices."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from bench.config.catalog import composed_catalog, spot_prices
from bench.config.checks import ConfigError

INSTANCES = [
    {"type": "g5.xlarge", "usd_per_hour": 1.006, "spot_usd_per_hour": 0.4},
    {"type": "c6i.xlarge", "usd_per_hour": 0.17},
]


def _cfg(extra: list[dict]) -> object:
    return OmegaConf.create({"catalog": {"instances": INSTANCES, "extra": extra}})


def test_the_users_types_join_the_shipped_ones() -> None:
    entries = composed_catalog(_cfg([{"type": "my.box", "usd_per_hour": 2.0}]))
    assert [e["type"] for e in entries] == ["g5.xlarge", "c6i.xlarge", "my.box"]
    assert all(isinstance(e, dict) for e in entries)  # plain data, not OmegaConf nodes


def test_a_type_given_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="already a type"):
        composed_catalog(_cfg([{"type": "g5.xlarge", "usd_per_hour": 2.0}]))


def test_spot_prices_are_those_the_catalog_has() -> None:
    entries = [*INSTANCES, {"type": "free", "spot_usd_per_hour": 0}]
    assert spot_prices(entries) == {"g5.xlarge": 0.4}
