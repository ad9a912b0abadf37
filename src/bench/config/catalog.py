"""The instance catalog of a composed config: its instance types (conf/catalog.yaml and a
user's catalog.extra) and what they cost on Spot, for the verbs that size or fit on them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.config.schema import catalog_entries

if TYPE_CHECKING:
    from omegaconf import DictConfig


def composed_catalog(cfg: DictConfig) -> list[dict[str, Any]]:
    """The composed config's instance types, the user's own (catalog.extra) included."""
    # imported here: a job's process imports this package's modules and must not load OmegaConf
    from omegaconf import OmegaConf

    return catalog_entries(OmegaConf.to_container(cfg.catalog, resolve=True))  # type: ignore[arg-type]


def spot_prices(entries: list[dict[str, Any]]) -> dict[str, float]:
    """Instance type -> Spot $/hour, for the types the catalog has one for."""
    return {e["type"]: float(e["spot_usd_per_hour"]) for e in entries if e.get("spot_usd_per_hour")}
