"""`bench prices refresh`: the catalog's prices from the AWS Price List API (and Spot history).

EC2 on-demand: `pricing.get_products` for AmazonEC2 with the filters the prices in the catalog
mean: Linux, shared tenancy, no pre-installed software, capacity status Used, no license, the
region. SageMaker: `get_products` for AmazonSageMaker, the `ml.<type>` instance of the Hosting
component (real-time inference endpoints) in the region. Spot (optional): the lowest current
`ec2.describe_spot_price_history` price for Linux/UNIX across the region's availability
zones. The catalog is written with each price's date; an instance the API does not answer
for keeps its old price, and is reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

PRICING_API_REGION = "us-east-1"  # the Price List API answers from us-east-1 (and ap-south-1)


def on_demand_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    pairs = {
        "instanceType": instance_type,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "licenseModel": "No License required",
        "regionCode": region,
    }
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in pairs.items()]


def sagemaker_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    pairs = {"instanceName": f"ml.{instance_type}", "component": "Hosting", "regionCode": region}
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in pairs.items()]


def hourly_price(pricing: Any, service: str, filters: list[dict[str, str]]) -> float | None:
    """The lowest positive hourly on-demand USD price of the products `filters` select, or
    None when the API has no such product."""
    response = pricing.get_products(ServiceCode=service, Filters=filters, MaxResults=10)
    prices = []
    for item in response.get("PriceList", []):
        product = json.loads(item) if isinstance(item, str) else item
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                if dimension.get("unit") == "Hrs":
                    usd = float(dimension["pricePerUnit"]["USD"])
                    if usd > 0:
                        prices.append(usd)
    return min(prices) if prices else None


def on_demand_price(pricing: Any, instance_type: str, region: str) -> float | None:
    """EC2 on-demand USD per hour, or None when the API has no such product."""
    return hourly_price(pricing, "AmazonEC2", on_demand_filters(instance_type, region))


def sagemaker_price(pricing: Any, instance_type: str, region: str) -> float | None:
    """SageMaker real-time inference USD per hour of ml.<instance_type>, or None."""
    return hourly_price(pricing, "AmazonSageMaker", sagemaker_filters(instance_type, region))


def spot_price(ec2: Any, instance_type: str) -> float | None:
    """The lowest current Linux/UNIX Spot price across the region's zones, USD per hour."""
    response = ec2.describe_spot_price_history(
        InstanceTypes=[instance_type],
        ProductDescriptions=["Linux/UNIX"],
        StartTime=datetime.now(timezone.utc),
        MaxResults=100,
    )
    prices = [float(p["SpotPrice"]) for p in response.get("SpotPriceHistory", [])]
    return min(prices) if prices else None


@dataclass
class Refresh:
    catalog: dict[str, Any]
    updated: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)  # EC2 types, then ml.<type>


def refresh_catalog(
    catalog: dict[str, Any],
    pricing: Any,
    region: str,
    ec2: Any | None = None,
    today: str | None = None,
    sagemaker: bool = True,
) -> Refresh:
    """A copy of the catalog with prices from the API: EC2 on-demand, SageMaker real-time
    inference (unless not `sagemaker`), and Spot prices when ec2 is given."""
    today = today or datetime.now(timezone.utc).date().isoformat()
    result = Refresh(catalog={**catalog, "instances": []})
    for entry in catalog["instances"]:
        entry = dict(entry)
        if entry["type"] != "local-cpu":  # this machine has no list price
            _update(
                result,
                entry,
                "usd_per_hour",
                "price_date",
                today,
                on_demand_price(pricing, entry["type"], region),
                entry["type"],
            )
            if sagemaker:
                _update(
                    result,
                    entry,
                    "sagemaker_usd_per_hour",
                    "sagemaker_price_date",
                    today,
                    sagemaker_price(pricing, entry["type"], region),
                    f"ml.{entry['type']}",
                )
            spot = spot_price(ec2, entry["type"]) if ec2 is not None else None
            if spot is not None:
                entry.update(spot_usd_per_hour=spot, spot_price_date=today)
        result.catalog["instances"].append(entry)
    result.catalog["price_source"] = (
        f"AWS Price List API: on-demand, Linux, shared tenancy, {region}"
        + ("; Spot: describe_spot_price_history, lowest zone" if ec2 is not None else "")
    )
    if sagemaker:
        result.catalog["sagemaker_price_source"] = (
            f"AWS Price List API: SageMaker real-time inference (Hosting), {region}"
        )
    return result


def _update(
    result: Refresh,
    entry: dict[str, Any],
    price_key: str,
    date_key: str,
    today: str,
    price: float | None,
    name: str,
) -> None:
    """Set one price of `entry` (and its date), or report that the API had none."""
    if price is None:
        result.unanswered.append(name)
    else:
        entry.update({price_key: price, date_key: today})
        result.updated.append(name)


def _flow(entry: dict[str, Any]) -> str:
    parts = []
    for key, value in entry.items():
        if value is None:
            text = "null"
        elif isinstance(value, str):
            text = json.dumps(value)
        else:
            text = str(value)
        parts.append(f"{key}: {text}")
    return "{" + ", ".join(parts) + "}"


def catalog_yaml(catalog: dict[str, Any], note: str) -> str:
    """The catalog as conf/catalog.yaml writes it: one line per instance type."""
    lines = [f"# {line}" for line in note.splitlines()]
    lines += ["catalog:"]
    # the catalog's own notes (price sources, where usable GPU memory comes from), as they were
    lines += [
        f"  {key}: {json.dumps(value)}"
        for key, value in catalog.items()
        if key not in ("extra", "instances")
    ]
    # instance types a user's own config adds (see conf/catalog.yaml); kept as they were
    extra = catalog.get("extra") or []
    lines += ["  extra: []"] if not extra else ["  extra:", *(f"    - {_flow(e)}" for e in extra)]
    lines += ["  instances:"]
    lines += [f"    - {_flow(entry)}" for entry in catalog["instances"]]
    text = "\n".join(lines) + "\n"
    OmegaConf.create(text)  # what we write must load back
    return text


def write_catalog(path: Path, refreshed: Refresh) -> None:
    note = (
        "Instance catalog: what each instance type has and what it costs.\n"
        "Written by `python -m bench prices refresh`; price_date (EC2 on-demand) and\n"
        "sagemaker_price_date (SageMaker real-time inference) say when each price was read.\n"
        "Override any cell's price with price_per_hour=...; `local-cpu` is this machine."
    )
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(catalog_yaml(refreshed.catalog, note))
    tmp.replace(path)
