"""The id policy: which raw user and item ids are accepted, and how they are typed.

Ids are non-negative integers below 2**63 (kept as int64) or text (kept as
NumPy ``str``). Floats, booleans, missing values, NUL characters and integers
out of range are refused with a message naming the row (or the line) and the
column. One policy serves every entry point: the file readers of
:mod:`perflaw.ingest` and the constructors of :class:`perflaw.sequences.Sequences`.

``how`` says how a column's type decides the ids:

* ``"typed"``: keep the column's type (Parquet, Arrow and in-memory tables);
* ``"classify"``: text that is integers when every value is one, else strings;
  float-looking text is refused (CSV);
* ``"canonical"``: text that is integers when every value is a canonical
  decimal integer, else strings (RecBole tokens: "007" stays text);
* ``"int"`` / ``"str"``: integers everywhere / every id as text.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from perflaw.arrays import first_true, numpy_view, string_array
from perflaw.errors import PerflawError, PerflawTypeError

__all__ = [
    "MAX_RAW_ID", "IdKinds", "arrow_ids", "arrow_times", "token_problem", "column_values", "raw_ids",
    "is_table", "tabular",
]  # fmt: skip

# Largest raw id accepted: ids must fit a signed 64-bit integer.
MAX_RAW_ID = 2**63 - 1


class IdKinds:
    """The id type ("int" or "str") each column settled on, kept across chunks.

    A stream decides a column's type on its first chunk and holds later chunks
    to it, so that every batch maps raw ids the same way.
    """

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}


def arrow_ids(
    column: pa.Array | pa.ChunkedArray,
    role: str,
    name: Any,
    how: str,
    where: str,
    first_row: int,
    kinds: IdKinds,
) -> np.ndarray:
    """A column of raw ids as int64 (non-negative, < 2**63) or str.

    ``role`` is "user" or "item", ``name`` the column, ``where`` the source
    (a path) and ``first_row`` the number of the column's first row, for messages.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if getattr(pa.types, "is_string_view", lambda _: False)(column.type):
        column = column.cast(pa.string())
    if column.null_count:
        row = first_row + first_true(column.is_null())
        raise PerflawError(f"{where}: {role} column {name!r} has a missing value in row {row}")
    kind = column.type
    if pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_decimal(kind):
        first = f" (first: {column[0].as_py()!r})" if len(column) else ""
        raise PerflawTypeError(f"{where}: {role} column {name!r} holds {kind} values{first}; ids must be integers or strings")
    if pa.types.is_integer(kind):
        if how == "str":
            return string_array(column.cast(pa.string()))
        return _checked_int_ids(column, role, name, where, first_row)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise PerflawTypeError(f"{where}: {role} column {name!r} has type {kind}; ids must be integers or strings")
    return _text_ids(column, role, name, how, where, first_row, kinds)


def _text_ids(
    column: pa.Array, role: str, name: Any, how: str, where: str, first_row: int, kinds: IdKinds
) -> np.ndarray:
    settled = kinds.kinds.get(role)
    if how == "typed":  # a Parquet string column: text as stored
        _reject_nul(column, role, name, where, first_row)
        return string_array(column)
    if how == "str" or settled == "str":
        return _text_as_ids(column, role, name, where, first_row, kinds)
    try:
        ints = column.cast(pa.int64())
    except pa.ArrowInvalid:
        ints = None
    if ints is not None and _may_hold_x(column) and pc.any(pc.match_substring(column, "x", ignore_case=True)).as_py():
        ints = None  # pyarrow reads "0x10" as 16: hexadecimal text is text, never merged with 16
    if ints is not None and how == "canonical" and not pc.all(pc.equal(ints.cast(pa.string()), column)).as_py():
        ints = None  # e.g. "007" or "-1": RecBole tokens that are text, not numbers
    if ints is None:
        _reject_empty(column, role, name, where, first_row)
        if how == "classify":
            _reject_null_markers(column, role, name, where, first_row)
        if how == "int" or settled == "int":
            _raise_not_int(column, role, name, where, first_row, settled == "int")
        if how == "classify":
            _reject_float_text(column, role, name, where, first_row)
        return _text_as_ids(column, role, name, where, first_row, kinds)
    kinds.kinds[role] = "int"
    return _checked_int_ids(ints, role, name, where, first_row)


def _may_hold_x(column: pa.Array) -> bool:
    """False when no byte of the column's text is "x" or "X" (a scan of the raw bytes,
    far quicker than the case-blind search, which runs only when this is True)."""
    data = column.buffers()[2]
    if data is None:
        return False
    raw = np.frombuffer(data, dtype=np.uint8)
    return bool(np.any((raw | 0x20) == ord("x")))


def _text_as_ids(column: pa.Array, role: str, name: Any, where: str, first_row: int, kinds: IdKinds) -> np.ndarray:
    """Ids parsed from text that stay text: no empty ids, no line breaks."""
    _reject_empty(column, role, name, where, first_row)
    _reject_nul(column, role, name, where, first_row)
    broken = pc.match_substring_regex(column, "[\r\n]")
    if pc.any(broken).as_py():
        row = first_row + first_true(broken)
        raise PerflawError(
            f"{where}: {role} id in row {row} (column {name!r}) spans a line break; is a quote left open?"
        )
    kinds.kinds[role] = "str"
    return string_array(column)


_NULL_MARKERS = ["NA", "N/A", "NaN", "nan", "NULL", "null", "None", "none", "#N/A", "-"]
_INTEGER_TEXT = r"^-?[0-9]+$"
_FLOAT_TEXT = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$|^[-+]?(nan|NaN|NAN|inf|Inf|INF|infinity|Infinity)$"


def _reject_null_markers(column: pa.Array, role: str, name: Any, where: str, first_row: int) -> None:
    """An integer column with "NA"-like values in it: missing ids, not text ids."""
    not_int = pc.invert(pc.match_substring_regex(column, _INTEGER_TEXT))
    markers = pc.is_in(column, value_set=pa.array(_NULL_MARKERS))
    if pc.any(markers).as_py() and pc.all(pc.or_(pc.invert(not_int), markers)).as_py():
        index = first_true(markers)
        raise PerflawError(
            f"{where}: {role} column {name!r} has a missing value {column[index].as_py()!r} in row "
            f"{first_row + index}"
        )


def _reject_nul(column: pa.Array, role: str, name: Any, where: str, first_row: int) -> None:
    # NumPy strings cannot hold NUL faithfully, and no real id contains one.
    nul = pc.match_substring(column, "\x00")
    if pc.any(nul).as_py():
        row = first_row + first_true(nul)
        raise PerflawError(f"{where}: {role} id in row {row} (column {name!r}) contains a NUL character")


def _reject_empty(column: pa.Array, role: str, name: Any, where: str, first_row: int) -> None:
    empty = pc.equal(pc.utf8_length(column), 0)
    if pc.any(empty).as_py():
        row = first_row + first_true(empty)
        raise PerflawError(f"{where}: {role} column {name!r} has an empty value in row {row}")


def _checked_int_ids(column: pa.Array, role: str, name: Any, where: str, first_row: int) -> np.ndarray:
    if len(column) == 0:
        return np.zeros(0, dtype=np.int64)
    if pa.types.is_unsigned_integer(column.type):
        too_large = pc.greater(column, pa.scalar(MAX_RAW_ID, column.type)) if column.type == pa.uint64() else None
        if too_large is not None and pc.any(too_large).as_py():
            index = first_true(too_large)
            raise PerflawError(
                f"{where}: {role} id {column[index].as_py()} in row {first_row + index} "
                f"(column {name!r}) is too large: ids must be < 2**63"
            )
        return numpy_view(column.cast(pa.int64()))
    values = numpy_view(column.cast(pa.int64()))
    if values.min() < 0:
        index = int(np.argmax(values < 0))
        raise PerflawError(
            f"{where}: negative {role} id {values[index]} in row {first_row + index} (column {name!r}); "
            "ids must be non-negative"
        )
    return values


def _raise_not_int(column: pa.Array, role: str, name: Any, where: str, first_row: int, by_earlier: bool) -> None:
    bad = pc.invert(pc.match_substring_regex(column, _INTEGER_TEXT))
    if pc.any(bad).as_py():
        index = first_true(bad)
        because = " (earlier rows were integers; pass ids='str' to read ids as text)" if by_earlier else ""
        raise PerflawError(
            f"{where}: {role} id {column[index].as_py()!r} in row {first_row + index} "
            f"(column {name!r}) is not an integer{because}"
        )
    # Every value is an integer literal, so the cast failed on range.
    lengths = numpy_view(pc.utf8_length(column))
    for index in np.flatnonzero(lengths >= 19):
        text = column[int(index)].as_py()
        _raise_out_of_range(int(text), text, role, name, where, first_row + index)
    raise PerflawError(f"{where}: {role} column {name!r} could not be read as integers")


def _raise_out_of_range(value: int, shown: Any, role: str, name: Any, where: str, row: Any) -> None:
    """Raise for an integer id that does not fit int64; return if it does."""
    if value > MAX_RAW_ID:
        raise PerflawError(f"{where}: {role} id {shown} in row {row} (column {name!r}) is too large: ids must be < 2**63")
    if value < -MAX_RAW_ID - 1:
        raise PerflawError(f"{where}: negative {role} id {shown} in row {row} (column {name!r}); ids must be non-negative")


def _reject_float_text(column: pa.Array, role: str, name: Any, where: str, first_row: int) -> None:
    """Text ids where every value is a number but some are not integers: float ids."""
    numeric = pc.match_substring_regex(column, _FLOAT_TEXT)
    if not pc.all(numeric).as_py():
        return
    if pc.all(pc.match_substring_regex(column, _INTEGER_TEXT)).as_py():
        _raise_not_int(column, role, name, where, first_row, False)  # integers out of range
    index = first_true(pc.invert(pc.match_substring_regex(column, _INTEGER_TEXT)))
    raise PerflawTypeError(
        f"{where}: {role} id {column[index].as_py()!r} in row {first_row + index} (column {name!r}) "
        "is a number but not an integer; ids must be integers or strings"
    )


def arrow_times(column: pa.Array | pa.ChunkedArray, name: Any, where: str, first_row: int) -> np.ndarray:
    """A timestamp column as numbers that sort like the times (numbers, dates, datetimes)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        row = first_row + first_true(column.is_null())
        raise PerflawError(f"{where}: timestamp column {name!r} has a missing value in row {row}")
    kind = column.type
    if not (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_timestamp(kind)
        or pa.types.is_date(kind)
    ):
        raise PerflawTypeError(
            f"{where}: timestamp column {name!r} has type {kind}; expected numbers or datetimes"
        )
    if pa.types.is_floating(kind):
        nan = pc.is_nan(column)
        if pc.any(nan).as_py():
            raise PerflawError(f"{where}: timestamp column {name!r} is NaN in row {first_row + first_true(nan)}")
    if pa.types.is_date(kind) or pa.types.is_timestamp(kind):
        # Order is all that matters: the stored counts (days, s, ms, ...) sort like the times.
        column = column.view(pa.int64() if kind.bit_width == 64 else pa.int32())
    return numpy_view(column)


# ------------------------------------------------------- text tokens
_INT_TOKEN = re.compile(rb"[0-9]+")
_NEGATIVE_TOKEN = re.compile(rb"-[0-9]+")


def token_problem(token: bytes) -> str | None:
    """Why a text token is not a valid integer id, or None."""
    if _INT_TOKEN.fullmatch(token):
        if int(token) > MAX_RAW_ID:
            return f"id {token.decode()} is too large (ids must be < 2**63)"
        return None
    if _NEGATIVE_TOKEN.fullmatch(token):
        return f"negative id {token.decode()}"
    return f"non-integer id {token.decode('utf-8', errors='replace')!r}"


# ---------------------------------------------- in-memory values
def column_values(values: Any, role: str, name: Any, where: str, ids: bool = False) -> pa.Array | pa.ChunkedArray:
    """Any one-dimensional column (Arrow, polars, pandas, NumPy, a list) as Arrow.

    Missing values (None; NaN in pandas; NaT) become nulls. With ``ids``,
    Python objects must be ints or strings: a list mixing them, or holding
    floats or booleans, is refused naming the first value that is not an int.
    """
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if hasattr(values, "to_arrow") and hasattr(values, "null_count"):  # polars
        return values.to_arrow()
    if hasattr(values, "to_numpy") and hasattr(values, "dtype") and not isinstance(values, np.ndarray):  # pandas
        return _from_objects(values, role, name, where, python_ids=False)
    if isinstance(values, list):
        if not values:
            return pa.array([], pa.int64())
        return _from_objects(values, role, name, where, python_ids=ids)
    array = np.asarray(values)
    if array.ndim != 1:
        raise PerflawError(f"{where}: {role} column {name!r} must be one-dimensional, got shape {array.shape}")
    if array.dtype == object:
        return column_values(array.tolist(), role, name, where, ids)
    if array.dtype.kind == "S":
        array = array.astype(str)
    return pa.array(array, from_pandas=array.dtype.kind == "M")  # NaT is missing


def _from_objects(values: Any, role: str, name: Any, where: str, python_ids: bool) -> pa.Array:
    try:
        array = pa.array(values)
    except OverflowError:
        for row, value in enumerate(list(values), start=1):
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                _raise_out_of_range(int(value), int(value), role, name, where, row)
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = None
    if array is None or (python_ids and not (pa.types.is_integer(array.type) or pa.types.is_string(array.type))):
        bad = _first_bad_id(list(values))
        if bad is not None:
            raise PerflawTypeError(f"{where}: {role} ids must be integers or strings, got {bad!r} ({type(bad).__name__})")
    if array is None:
        raise PerflawTypeError(f"{where}: {role} column {name!r} mixes value types")
    return array


def _first_bad_id(values: list[Any]) -> Any:
    """None when the values are all strings (or missing); else the first that is not an int."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, str) for v in present):
        return None
    return next((v for v in present if isinstance(v, bool) or not isinstance(v, (int, np.integer))), None)


def raw_ids(values: Any, role: str, where: str, name: Any = None) -> np.ndarray:
    """In-memory raw ids as int64 or str, by the policy of typed columns."""
    name = role if name is None else name
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind == "U":
        _reject_nul_in_strings(values, role, name, where)  # text as stored, without a trip through Arrow
        return values
    column = column_values(values, role, name, where, ids=True)
    return arrow_ids(column, role, name, "typed", where, 1, IdKinds())


def _reject_nul_in_strings(values: np.ndarray, role: str, name: Any, where: str) -> None:
    """NumPy strings drop trailing NULs; a NUL followed by more text is one inside an id."""
    width = values.dtype.itemsize // 4
    step = max(1, (1 << 24) // max(1, width))  # rows per pass: bounded memory
    for start in range(0, len(values) if width > 1 else 0, step):
        codes = np.ascontiguousarray(values[start : start + step]).view(np.uint32).reshape(-1, width)
        inside = ((codes[:, :-1] == 0) & (codes[:, 1:] != 0)).any(axis=1)
        if inside.any():
            row = start + int(np.argmax(inside)) + 1
            raise PerflawError(f"{where}: {role} id in row {row} (column {name!r}) contains a NUL character")


# ------------------------------------------------------------ tables
def is_table(value: Any) -> bool:
    """Whether ``value`` is a table of columns that ``Sequences.from_table`` reads.

    Tables are dicts of columns, pandas and polars DataFrames, pyarrow
    Tables, RecordBatches and RecordBatchReaders, and any object that exports
    the Arrow PyCapsule interface (``__arrow_c_stream__`` or ``__arrow_c_array__``).

    Examples
    --------
    >>> is_table({"user": [1], "item": [2]}), is_table(pa.table({"user": [1]})), is_table([[1, 2]])
    (True, True, False)
    """
    if isinstance(value, (dict, pa.Table, pa.RecordBatch, pa.RecordBatchReader)):
        return True
    return _is_frame(value) or hasattr(value, "__arrow_c_stream__") or hasattr(value, "__arrow_c_array__")


def _is_frame(value: Any) -> bool:
    """A pandas or polars DataFrame: named columns that ``value[name]`` returns."""
    return hasattr(value, "columns") and hasattr(value, "__getitem__") and not isinstance(value, np.ndarray)


def tabular(value: Any) -> Any:
    """A table whose columns can be looked up by name: Arrow streams and
    readers are read into a pyarrow Table; dicts, DataFrames, Tables and
    RecordBatches are returned as they are, and so is anything else.

    Examples
    --------
    >>> reader = pa.RecordBatchReader.from_batches(pa.schema([("user", pa.int64())]), [])
    >>> tabular(reader).num_rows
    0
    """
    if isinstance(value, (dict, pa.Table, pa.RecordBatch)) or _is_frame(value):
        return value
    if isinstance(value, pa.RecordBatchReader):
        return value.read_all()
    if hasattr(value, "__arrow_c_stream__") and not hasattr(pa.RecordBatchReader, "from_stream"):
        raise PerflawTypeError(f"reading an Arrow stream ({type(value).__name__}) needs pyarrow >= 15")
    try:
        if hasattr(value, "__arrow_c_stream__"):
            return pa.RecordBatchReader.from_stream(value).read_all()
        if hasattr(value, "__arrow_c_array__"):
            return pa.record_batch(value)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as error:
        raise PerflawTypeError(
            f"could not read the Arrow data exported by {type(value).__name__}: {error}"
        ) from error
    return value
