"""`prices refresh` against stubbed Price List and Spot history responses (no network)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber
from omegaconf import OmegaConf

from bench.config.schema import conf_dir
from bench.plan.prices import (
    catalog_yaml,
    on_demand_filters,
    refresh_catalog,
    sagemaker_filters,
    write_catalog,
)


def _product(usd: str) -> str:
    return json.dumps(
        {
            "product": {"attributes": {"instanceType": "x"}},
            "terms": {
                "OnDemand": {
                    "T1": {
                        "priceDimensions": {
                            "D1": {"unit": "Hrs", "pricePerUnit": {"USD": usd}},
                        }
                    }
                }
            },
        }
    )


@pytest.fixture
def clients():
    pricing = boto3.client(
        "pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    ec2 = boto3.client(
        "ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    return pricing, ec2


def test_refresh_reads_each_price_with_the_catalog_filters(clients, tmp_path: Path):
    pricing, ec2 = clients
    catalog = {
        "price_source": "old",
        "instances": [
            {"type": "local-cpu", "gpus": 0, "usd_per_hour": 0.192, "price_date": "2025-06-01"},
            {"type": "g5.xlarge", "gpus": 1, "usd_per_hour": 1.0, "price_date": "2025-06-01"},
            {"type": "p5.48xlarge", "gpus": 8, "usd_per_hour": 55.04, "price_date": "2025-06-01"},
        ],
    }
    with Stubber(pricing) as p_stub, Stubber(ec2) as e_stub:
        p_stub.add_response(
            "get_products",
            {"PriceList": [_product("1.0060000000")], "FormatVersion": "aws_v1"},
            {
                "ServiceCode": "AmazonEC2",
                "Filters": on_demand_filters("g5.xlarge", "us-east-1"),
                "MaxResults": 10,
            },
        )
        p_stub.add_response(  # the SageMaker real-time inference rate of ml.g5.xlarge
            "get_products",
            {"PriceList": [_product("0.0000000000"), _product("1.4080000000")]},
            {
                "ServiceCode": "AmazonSageMaker",
                "Filters": sagemaker_filters("g5.xlarge", "us-east-1"),
                "MaxResults": 10,
            },
        )
        e_stub.add_response(
            "describe_spot_price_history",
            {
                "SpotPriceHistory": [
                    {
                        "InstanceType": "g5.xlarge",
                        "SpotPrice": "0.4123",
                        "AvailabilityZone": "a",
                        "ProductDescription": "Linux/UNIX",
                        "Timestamp": datetime.now(timezone.utc),
                    },
                    {
                        "InstanceType": "g5.xlarge",
                        "SpotPrice": "0.3911",
                        "AvailabilityZone": "b",
                        "ProductDescription": "Linux/UNIX",
                        "Timestamp": datetime.now(timezone.utc),
                    },
                ]
            },
            {
                "InstanceTypes": ["g5.xlarge"],
                "ProductDescriptions": ["Linux/UNIX"],
                "StartTime": ANY,
                "MaxResults": 100,
            },
        )
        p_stub.add_response(
            "get_products",
            {"PriceList": [], "FormatVersion": "aws_v1"},
            {"ServiceCode": "AmazonEC2", "Filters": ANY, "MaxResults": 10},
        )
        p_stub.add_response(
            "get_products",
            {"PriceList": [_product("63.2960000000")]},
            {"ServiceCode": "AmazonSageMaker", "Filters": ANY, "MaxResults": 10},
        )
        e_stub.add_response(
            "describe_spot_price_history",
            {"SpotPriceHistory": []},
            {
                "InstanceTypes": ["p5.48xlarge"],
                "ProductDescriptions": ANY,
                "StartTime": ANY,
                "MaxResults": 100,
            },
        )
        result = refresh_catalog(catalog, pricing, "us-east-1", ec2, today="2026-11-22")
        p_stub.assert_no_pending_responses()
    by_type = {e["type"]: e for e in result.catalog["instances"]}
    assert by_type["g5.xlarge"]["usd_per_hour"] == 1.006
    assert by_type["g5.xlarge"]["price_date"] == "2026-11-22"
    assert by_type["g5.xlarge"]["spot_usd_per_hour"] == 0.3911
    assert by_type["p5.48xlarge"]["usd_per_hour"] == 55.04  # unanswered: kept
    assert by_type["local-cpu"]["usd_per_hour"] == 0.192  # never asked
    assert by_type["g5.xlarge"]["sagemaker_usd_per_hour"] == 1.408  # a zero rate is skipped
    assert by_type["g5.xlarge"]["sagemaker_price_date"] == "2026-11-22"
    assert by_type["p5.48xlarge"]["sagemaker_usd_per_hour"] == 63.296
    assert "sagemaker_usd_per_hour" not in by_type["local-cpu"]
    assert result.updated == ["g5.xlarge", "ml.g5.xlarge", "ml.p5.48xlarge"]
    assert result.unanswered == ["p5.48xlarge"]
    assert "Price List API" in result.catalog["price_source"]
    assert "SageMaker" in result.catalog["sagemaker_price_source"]

    out = tmp_path / "catalog.yaml"
    write_catalog(out, result)
    loaded = OmegaConf.to_container(OmegaConf.load(out))["catalog"]
    assert loaded["instances"] == result.catalog["instances"]
    assert loaded["sagemaker_price_source"] == result.catalog["sagemaker_price_source"]


def test_the_shipped_catalog_round_trips_through_the_writer():
    catalog = OmegaConf.to_container(OmegaConf.load(conf_dir() / "catalog.yaml"))["catalog"]
    text = catalog_yaml(catalog, "note")
    assert OmegaConf.to_container(OmegaConf.create(text))["catalog"] == catalog


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--out", "OUT"], "credentials="),
        ([], "--out="),
        (["--out", "/no/such/dir/c.yaml"], "--out="),
    ],
)
def test_refresh_without_credentials_or_out_is_one_line_and_writes_nothing(tmp_path, args, key):
    import subprocess
    import sys

    args = [str(tmp_path / "catalog.yaml") if a == "OUT" else a for a in args]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance-role lookup off loopback
    }
    before = (conf_dir() / "catalog.yaml").read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "prices", "refresh", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], proc.stderr
    assert list(tmp_path.iterdir()) == []
    assert (conf_dir() / "catalog.yaml").read_bytes() == before
