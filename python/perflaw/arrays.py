"""NumPy <-> Arrow conversions that do not copy numbers and never import pandas.

pyarrow's own ``to_numpy`` imports pandas on first use, which costs more than
reading a file like beauty.txt; a view of the data buffer does not. These
helpers are shared by the id policy (:mod:`perflaw.ids`), the grouping of rows
into users (:mod:`perflaw.grouping`) and the file readers (:mod:`perflaw.ingest`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["numpy_view", "arrow_view", "string_array", "first_true"]

_NUMPY_TYPES = {
    pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
    pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64,
    pa.float32(): np.float32, pa.float64(): np.float64,
}  # fmt: skip
_ARROW_TYPES = {np.dtype(numpy): arrow for arrow, numpy in _NUMPY_TYPES.items()}


def numpy_view(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric Arrow array as NumPy, zero-copy where possible."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    dtype = _NUMPY_TYPES.get(array.type)
    if dtype is None or array.null_count:
        return array.to_numpy(zero_copy_only=False)
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * np.dtype(dtype).itemsize)


def arrow_view(values: np.ndarray) -> pa.Array:
    """A NumPy array as Arrow, zero-copy for numbers."""
    kind = _ARROW_TYPES.get(values.dtype)
    if kind is None:
        return pa.array(values)
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def string_array(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow string column as a NumPy ``str`` array."""
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=str)


def first_true(mask: pa.Array | pa.ChunkedArray) -> int:
    """Index of the first true value of a boolean Arrow array that holds one."""
    return int(pc.index(mask, True).as_py())
