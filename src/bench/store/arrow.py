"""Arrow arrays built straight from buffers, for the tables a cell writes (its row, samples and
telemetry).

Why not `pa.array` / `pa.Table.from_pylist`: every one of pyarrow's converting constructors
asks its pandas shim whether the input is a pandas object, and the shim imports pandas to
answer: about 0.2-0.4 s in each cell's fresh process, for a library the cell never uses.
`pa.Array.from_buffers` takes the values' memory as it is and never asks. The types the row
schema uses are covered: integers, float64, bool, UTF-8 strings and timestamps (from
`datetime`), each with nulls (None, or a mask).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
NUMPY_TYPES = {
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}
PER_MICROSECOND = {"s": None, "ms": None, "us": 1, "ns": 1000}  # ticks of each unit in 1 us
TICK = {"s": dt.timedelta(seconds=1), "ms": dt.timedelta(milliseconds=1)}


def _bits(flags: np.ndarray) -> pa.Buffer:
    """A boolean array as Arrow's bitmap (least significant bit first)."""
    return pa.py_buffer(np.packbits(flags.astype(bool), bitorder="little"))


def _validity(valid: np.ndarray) -> tuple[pa.Buffer | None, int]:
    nulls = int(valid.size - np.count_nonzero(valid))
    return (_bits(valid) if nulls else None), nulls


def _timestamp(value: Any, unit: str) -> int:
    if isinstance(value, dt.datetime):
        since = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)) - EPOCH
        if unit in TICK:
            return since // TICK[unit]
        return since // dt.timedelta(microseconds=1) * PER_MICROSECOND[unit]
    if isinstance(value, (int, np.integer)):
        return int(value)
    raise TypeError(f"a timestamp column takes datetime or int, not {type(value).__name__}")


def _filled(values: Sequence[Any], valid: np.ndarray, fill: Any) -> list[Any]:
    """The values with `fill` in place of each null."""
    return [v if ok else fill for v, ok in zip(values, valid, strict=True)]


def array(
    values: Sequence[Any] | np.ndarray, type_: pa.DataType, mask: np.ndarray | None = None
) -> pa.Array:
    """`values` (None, or a True in `mask`, is null) as an Arrow array of `type_`."""
    n = len(values)
    dense = isinstance(values, np.ndarray) and values.dtype != object
    if dense:
        valid = np.ones(n, dtype=bool)
    else:
        valid = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    if mask is not None:
        valid &= ~mask
    validity, nulls = _validity(valid)
    if pa.types.is_string(type_):
        texts = _filled(values, valid, "")
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("a string column takes str values")
        encoded = [t.encode() for t in texts]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        body = pa.py_buffer(b"".join(encoded))
        return pa.Array.from_buffers(type_, n, [validity, pa.py_buffer(offsets), body], nulls)
    if pa.types.is_boolean(type_):
        flags = np.asarray(values if dense else _filled(values, valid, False), dtype=bool)
        return pa.Array.from_buffers(type_, n, [validity, _bits(flags)], nulls)
    if pa.types.is_timestamp(type_):
        ticks = [_timestamp(v, type_.unit) for v in _filled(values, valid, 0)]
        data = np.asarray(ticks, dtype=np.int64)
    elif (dtype := NUMPY_TYPES.get(type_)) is not None:
        data = np.asarray(values if dense else _filled(values, valid, 0), dtype=dtype)
    else:
        raise TypeError(f"no buffer builder for {type_}")
    buffer = pa.py_buffer(np.ascontiguousarray(data))
    return pa.Array.from_buffers(type_, n, [validity, buffer], nulls)


def table(columns: dict[str, Sequence[Any] | np.ndarray], schema: pa.Schema) -> pa.Table:
    """A table of `schema` from one value sequence per field (a missing field is all null)."""
    length = len(next(iter(columns.values()))) if columns else 0
    arrays = [array(columns.get(field.name, [None] * length), field.type) for field in schema]
    return pa.Table.from_arrays(arrays, schema=schema)
