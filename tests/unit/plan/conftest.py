"""Fixtures of the planner's tests."""

from __future__ import annotations

import pytest

from bench.config.schema import InstanceSpec, instance_from_catalog


@pytest.fixture(scope="module")
def catalog() -> dict[str, InstanceSpec]:
    """Every instance type of the catalog (conf/catalog.yaml), by name."""
    from bench.config.compose import compose_one

    entries = list(compose_one([]).catalog.instances)
    return {e.type: instance_from_catalog(entries, e.type) for e in entries}
