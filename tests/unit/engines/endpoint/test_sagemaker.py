"""engine=sagemaker without an endpoint: the image bodies it sends with each request's
TargetModel, its option errors, and DescribeEndpoint's error in the row."""

from __future__ import annotations

import io

import pytest

from bench.config.checks import ConfigError
from bench.config.schema import CellConfig
from bench.engines.endpoint.sagemaker import SageMakerEngine
from bench.plan.grid import plan_from_overrides

NAMES = tuple(f"model-{i}.tar.gz" for i in range(8))


def _sagemaker(*overrides: str) -> tuple[CellConfig, SageMakerEngine]:
    cell = plan_from_overrides(
        ["model=resnet_tiny", "engine=sagemaker", "engine.endpoint_name=mme", *overrides]
    ).cells[0]
    return cell, SageMakerEngine(cell)


def test_an_image_model_sends_its_seeded_picture_as_png_or_jpeg() -> None:
    import numpy as np
    from PIL import Image

    from bench.engines.endpoint.images import seeded_pixels

    cell, engine = _sagemaker("engine.target_models=4")
    body = engine.make_batch()
    with Image.open(io.BytesIO(body)) as picture:
        assert picture.format == "PNG" and picture.size == (64, 64) and picture.mode == "RGB"
        assert np.array_equal(np.asarray(picture), seeded_pixels(cell))  # lossless, the seed's
    assert engine.draw is not None
    sent = [engine._arguments(body) for _ in range(40)]
    assert {a["ContentType"] for a in sent} == {"image/png"}
    # each call draws its TargetModel: the seeded sequence's, over the four names
    assert [a["TargetModel"] for a in sent] == [NAMES[i] for i in engine.draw.sequence[:40]]
    assert {a["TargetModel"] for a in sent} == set(NAMES[:4])

    _, jpeg = _sagemaker("engine.image_format=jpeg", "seed=1")
    with Image.open(io.BytesIO(jpeg.make_batch())) as picture:
        assert picture.format == "JPEG" and picture.size == (64, 64)
    assert jpeg._arguments(b"")["ContentType"] == "image/jpeg" and jpeg.make_batch() != body
    _, generic = _sagemaker("engine.content_type=application/x-image")
    assert generic._arguments(b"")["ContentType"] == "application/x-image"
    assert "TargetModel" not in generic._arguments(b"")


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["engine.target_models=2", "engine.target_names=[a,b]"], "engine.target_names"),
        (["engine.target_models=2", "engine.target_model=x.tar.gz"], "engine.target_model"),
        (["engine.target_models=2", "engine.target_pattern=fixed"], "engine.target_pattern"),
        (["engine.target_names=[a,a]"], "engine.target_names"),
        (["engine.target_models=-1"], "engine.target_models"),
        (["engine.target_distribution=pareto"], "engine.target_distribution"),
        (["engine.target_skew=0"], "engine.target_skew"),
        (["engine.image_format=gif"], "engine.image_format"),
        (["engine.image_format=jpeg", "engine.content_type=image/png"], "engine.content_type"),
    ],
)
def test_bad_sagemaker_target_and_image_options_are_one_line_errors(
    overrides: list[str], key: str
) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as caught:
        _sagemaker(*overrides)
    assert "\n" not in str(caught.value)


def test_a_missing_endpoint_says_so_in_the_row_not_only_its_code() -> None:
    import boto3
    from botocore.stub import Stubber

    from bench.engines.endpoint.errors import HttpError

    _, engine = _sagemaker("engine.endpoint_name=gone")
    engine.control = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    with Stubber(engine.control) as stub:
        stub.add_client_error(
            "describe_endpoint",
            service_error_code="ValidationException",
            service_message='Could not find endpoint "gone".',
        )
        with pytest.raises(HttpError) as raised:
            engine._describe()
    assert str(raised.value) == (
        'DescribeEndpoint gone: ValidationException: Could not find endpoint "gone".'
    )
