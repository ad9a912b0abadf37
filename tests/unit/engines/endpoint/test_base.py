"""What the endpoint engines share: their common options, what no endpoint engine runs, and
the usage check of a reply."""

from __future__ import annotations

import dataclasses

import pytest

from bench.engines.endpoint.base import EndpointEngine, EndpointOptions
from bench.engines.endpoint.errors import UsageMismatch
from bench.engines.endpoint.http import HttpEngine
from bench.engines.endpoint.sagemaker import SageMakerEngine
from bench.measure.support import why_unsupported
from bench.plan.grid import plan_from_overrides


@pytest.mark.parametrize("engine", (HttpEngine, SageMakerEngine), ids=lambda e: e.name)
def test_each_endpoint_engine_stands_on_the_shared_base_and_options(
    engine: type[EndpointEngine],
) -> None:
    # their defaults are their YAML's: tests/unit/engines/test_conformance.py checks each
    assert issubclass(engine, EndpointEngine) and engine.remote
    assert issubclass(engine.Options, EndpointOptions)
    shared = {f.name for f in dataclasses.fields(EndpointOptions)}
    assert shared <= set(engine.option_keys())


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


def test_a_reply_with_another_token_count_fails_unless_the_check_is_off() -> None:
    strict = HttpEngine(plan_from_overrides(["model=opt_tiny", "engine=http"]).cells[0])
    strict.check_count(None, 8, "")  # nothing reported: nothing to check
    strict.check_count(8, 8, "usage")
    with pytest.raises(UsageMismatch, match=r"generated 2 tokens \(stream\), 8 were asked"):
        strict.check_count(2, 8, "stream")
    lenient = HttpEngine(
        plan_from_overrides(["model=opt_tiny", "engine=http", "engine.check_usage=false"]).cells[0]
    )
    lenient.check_count(2, 8, "stream")
