"""bench.store.arrow builds the same arrays as pyarrow's converters, without importing pandas."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from bench.store import arrow

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    ("type_", "values"),
    [
        (pa.int64(), [1, None, -3]),
        (pa.int32(), [7, 8, None]),
        (pa.int16(), [None, None]),
        (pa.float64(), [1.5, None, 2]),
        (pa.bool_(), [True, None, False, True, True, False, True, False, True]),  # > 8 bits
        (pa.string(), ["a", None, "héllo", ""]),
        (pa.string(), []),
        (pa.timestamp("us", tz="UTC"), [dt.datetime(2026, 12, 4, 21, 0, 0, 123456, UTC), None]),
        (pa.timestamp("ns", tz="UTC"), [dt.datetime(2026, 12, 4, 21, 0, 0, 123456, UTC)]),
        (pa.timestamp("ms", tz="UTC"), [dt.datetime(2026, 12, 4, 21, 0, 0, 123000, UTC)]),
    ],
)
def test_the_same_array_as_pyarrows_converter(type_, values) -> None:
    built = arrow.array(values, type_)
    built.validate(full=True)
    assert built.equals(pa.array(values, type=type_)), (built, values)


def test_numpy_values_and_a_mask() -> None:
    got = arrow.array(np.array([5, -1, 7]), pa.int64(), mask=np.array([False, True, False]))
    assert got.to_pylist() == [5, None, 7]
    assert arrow.array(np.array([True, False]), pa.bool_()).to_pylist() == [True, False]


def test_wrong_values_are_refused() -> None:
    with pytest.raises(TypeError, match="string column"):
        arrow.array([1, 2], pa.string())
    with pytest.raises(TypeError, match="no buffer builder"):
        arrow.array([[1]], pa.list_(pa.int64()))
