"""Multi-model endpoints: the seeded draw of each request's target (uniform, Zipf), the image
bodies engine=sagemaker sends, the KServe v2 bodies engine=http sends, and what an endpoint
engine refuses (one-line config errors; unsupported cells such as scenario=capacity)."""

from __future__ import annotations

import io
import json

import pytest

from bench.config.checks import ConfigError
from bench.engines.targets import SEQUENCE, TargetDraw, shares
from bench.measure.support import why_unsupported
from bench.plan.grid import plan_from_overrides

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


def _sagemaker(*overrides: str):
    from bench.engines.sagemaker import SageMakerEngine

    cell = plan_from_overrides(
        ["model=resnet_tiny", "engine=sagemaker", "engine.endpoint_name=mme", *overrides]
    ).cells[0]
    return cell, SageMakerEngine(cell)


def test_an_image_model_sends_its_seeded_picture_as_png_or_jpeg() -> None:
    import numpy as np
    from PIL import Image

    from bench.engines.images import seeded_pixels

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


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["engine.target_models=2"], "engine.target_models"),  # api=completions
        (["engine.input_names=[ids]"], "engine.input_names"),
        (["engine.api=kserve", "engine.input_datatype=STRING"], "engine.input_datatype"),
        (["engine.api=kserve", "engine.input_layout=chw"], "engine.input_layout"),
        (["engine.api=kserve", "engine.input_names=[a,b,c,d]"], "engine.input_names"),
    ],
)
def test_bad_kserve_options_are_one_line_errors(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        plan_from_overrides(["model=bert_tiny", "engine=http", *overrides])


def _reason(*overrides: str) -> str | None:
    return why_unsupported(plan_from_overrides(list(overrides)).cells[0], this_host=False)


def test_what_an_endpoint_engine_cannot_run_is_unsupported_with_a_reason() -> None:
    sagemaker = ("engine=sagemaker", "engine.endpoint_name=x")
    capacity = _reason("model=bert_tiny", *sagemaker, "scenario=capacity")
    assert capacity is not None and "scenario=capacity" in capacity and "\n" not in capacity
    http = _reason("model=opt_tiny", "engine=http", "scenario=capacity")
    assert http is not None and "scenario=capacity" in http
    assert "scenario=capacity" in (
        _reason("model=resnet_tiny", "engine=http", "engine.api=kserve", "scenario=capacity") or ""
    )
    streamed = _reason("model=opt_tiny", *sagemaker, "engine.target_models=3")
    assert streamed is not None and "stream=false" in streamed
    assert (
        _reason("model=opt_tiny", *sagemaker, "engine.target_models=3", "engine.stream=false")
        is None
    )
    assert "batch_size=1" in (_reason("model=resnet_tiny", *sagemaker, "batch_size=2") or "")
    assert _reason("model=resnet_tiny", *sagemaker) is None
    assert "api=kserve" in (_reason("model=resnet_tiny", "engine=http") or "")
    assert "forward pass" in (_reason("model=opt_tiny", "engine=http", "engine.api=kserve") or "")
    assert "FP32" in (
        _reason("model=bert_tiny", "engine=http", "engine.api=kserve", "engine.input_datatype=FP32")
        or ""
    )
    assert _reason("model=bert_tiny", "engine=http", "engine.api=kserve") is None


def test_kserve_bodies_pad_a_batch_and_carry_pixels() -> None:
    from bench.engines import kserve

    body = kserve.text_body(((5, 6, 7), (8,)), ("input_ids", "attention_mask", "tt"), "INT64")
    ids, mask, types = body["inputs"]
    assert ids["name"] == "input_ids" and ids["shape"] == [2, 3] and ids["datatype"] == "INT64"
    assert ids["data"] == [5, 6, 7, 8, 0, 0]
    assert mask["data"] == [1, 1, 1, 1, 0, 0] and types["data"] == [0] * 6
    cell = plan_from_overrides(["model=resnet_tiny", "engine=http", "batch_size=2"]).cells[0]
    image = kserve.image_body(cell, "pixel_values", "FP32", "nchw")["inputs"][0]
    assert image["shape"] == [2, 3, 64, 64] and len(image["data"]) == 2 * 3 * 64 * 64
    assert kserve.image_body(cell, "x", "FP32", "nhwc")["inputs"][0]["shape"] == [2, 64, 64, 3]
    answer = {"outputs": [{"name": "logits", "shape": [2, 10], "data": [0.0] * 20}]}
    assert kserve.checked_answer(json.dumps(answer).encode(), 2) == answer
    short = {"outputs": [{"name": "logits", "shape": [2, 10], "data": [1.0]}]}
    for bad, batch in ((answer, 3), ({"outputs": []}, 2), (short, 2)):
        with pytest.raises(ValueError):
            kserve.checked_answer(json.dumps(bad).encode(), batch)


def test_a_missing_endpoint_says_so_in_the_row_not_only_its_code() -> None:
    import boto3
    from botocore.stub import Stubber

    from bench.engines.http_errors import HttpError

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
