"""
One canonical encoding of every column type, used on both sides of a drift comparison.

The reference profile is built at training time from a pandas frame; the current data reaches the
sensor as Arrow batches from Parquet, CSV or JSON. The same value must land in the same bin or the
same category whichever way it came, or every feature drifts every day (a boolean profiled by
pandas as ``"True"`` and read by Arrow as ``"true"`` gave PSI 17.7). So both sides go through the
functions here, and nothing else, before any statistic:

* :func:`numeric_values`: a column as float64 with NaN for missing (null and NaN alike). Booleans
  are 0 / 1; integers, floats and decimals their value; dates days since 1970-01-01; timestamps
  seconds since the epoch (a zoned timestamp as its UTC instant, whatever its zone and unit); times
  seconds since midnight; durations seconds. Infinities stay (they fall in the outer bins). Text is
  parsed: as the reference's type when the profile names one (``"2024-01-02"`` for a date feature),
  ``true`` / ``false`` (any case) as 1 / 0, otherwise as a number; a value that does not parse is an
  error naming the column and the value.
* :func:`category_counts`: a column as counts of canonical category texts. ``true`` / ``false`` for
  booleans and for the text ``True`` / ``FALSE`` / ``" true"`` (any case, surrounding blanks); one
  text per number whatever its type (``3`` for the int 3, the float 3.0 and the decimal 3.00;
  ``0.1`` for the float 0.1 and the decimal 0.1; NaN is missing); ISO 8601 for dates, times and
  timestamps (``2024-01-02T03:04:05.5`` naive, ``...Z`` for a zoned one, as its UTC instant); binary
  as its UTF-8 text when it is valid UTF-8, else ``0x`` and hex; lists and structs as JSON of their
  canonical elements. Other text is kept as it is (case and blanks are data).

Counting happens on the column's distinct values, in Arrow; only the distinct values are rendered
in Python, so a column of a million rows with a few categories costs one ``value_counts``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

BOOL_WORDS = {"true": "true", "false": "false"}
_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_EPOCH_NAIVE = dt.datetime(1970, 1, 1)
_EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class EncodingError(ValueError):
    """A value of a column cannot be read as the feature's kind (names the column and the value)."""


# --------------------------------------------------------------------------------------------------
# Arrow input
def arrow_values(values: Any) -> pa.Array | pa.ChunkedArray:
    """
    A column as Arrow, whatever it came as: Arrow as it is (dictionary arrays decoded); a pandas
    Series, numpy array or list through Arrow's pandas conversion (NaN becomes null, ``datetime.date``
    a date, ``Decimal`` a decimal, pandas booleans with None a boolean). A mixed object column that
    Arrow refuses is rendered value by value with :func:`canonical_text` (so it is categorical text).
    """
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray | pa.Array):
        array = values
    else:
        try:
            if hasattr(values, "to_numpy") and hasattr(values, "dtype") and not isinstance(values, list):
                with warnings.catch_warnings():  # pandas 3.1 deprecates what pyarrow calls on zoned columns
                    warnings.simplefilter("ignore")
                    array = pa.Array.from_pandas(values)
            else:
                array = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
            array = pa.array([canonical_text(v) for v in list(values)], type=pa.string())
    if pa.types.is_dictionary(array.type):
        array = array.cast(array.type.value_type)
    return array


def type_name(data_type: pa.DataType) -> str:
    """The canonical kind of an Arrow type, as the profile records it (``bool``, ``integer`` ...)."""
    import pyarrow as pa

    t = pa.types
    checks = (
        (t.is_boolean, "bool"),
        (t.is_integer, "integer"),
        (t.is_floating, "float"),
        (t.is_decimal, "decimal"),
        (t.is_date, "date"),
        (t.is_time, "time"),
        (t.is_duration, "duration"),
        (lambda x: t.is_string(x) or t.is_large_string(x) or t.is_string_view(x), "string"),
        (lambda x: t.is_binary(x) or t.is_large_binary(x) or t.is_fixed_size_binary(x), "binary"),
        (t.is_null, "null"),
        (t.is_nested, "nested"),
    )
    if t.is_timestamp(data_type):
        return "timestamp_tz" if data_type.tz else "timestamp"
    for check, name in checks:
        if check(data_type):
            return name
    return str(data_type)


def _is_text(data_type: pa.DataType) -> bool:
    return type_name(data_type) == "string"


# --------------------------------------------------------------------------------------------------
# Numeric features
_TEXT_AS = {"date": "date32", "timestamp": "timestamp[ns]", "timestamp_tz": "timestamp[ns, tz=UTC]"}


def _parse_text(array: Any, like: str | None, name: str) -> Any:
    """Text of a numeric feature: as the reference's type, or booleans, or numbers."""
    import pyarrow as pa
    import pyarrow.compute as pc

    stripped = pc.utf8_trim_whitespace(array.cast(pa.string()))
    lowered = pc.utf8_lower(stripped)
    present = pc.drop_null(lowered)
    if len(present) and pc.all(pc.is_in(present, value_set=pa.array(list(BOOL_WORDS)))).as_py():
        return pc.equal(lowered, "true")
    target: pa.DataType = pa.float64()
    if like == "date":
        target = pa.date32()
    elif like == "time":
        target = pa.time64("ns")
    elif like in ("timestamp", "timestamp_tz"):
        target = pa.timestamp("ns", tz="UTC" if like == "timestamp_tz" else None)
    try:
        return stripped.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        for value in present.to_pylist():  # find the value to name (in the original text)
            try:
                pa.array([value]).cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise EncodingError(
                    f"Column {name!r} is a numeric feature ({like or 'number'}) of the reference profile, "
                    f"but the current data has the text {value!r}, which is not a {target}: fix the "
                    "source or its schema"
                ) from None
        raise


def numeric_values(values: Any, *, like: str | None = None, name: str = "") -> np.ndarray:
    """
    A column as float64, NaN for missing (see the module's docstring for every type).

    :param values: Arrow, pandas, numpy or a list.
    :param like: the reference's canonical type (:func:`type_name`): how text is parsed.
    :param name: the column, for errors.
    """
    import numpy as np
    import pyarrow as pa

    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values.astype("float64", copy=False)
    array = arrow_values(values)
    if isinstance(array, pa.ChunkedArray):
        chunks = [numeric_values(c, like=like, name=name) for c in array.chunks]
        return np.concatenate(chunks) if chunks else np.empty(0)
    if _is_text(array.type):
        array = _parse_text(array, like, name)
    t = array.type
    kind = type_name(t)
    if kind == "null":
        return np.full(len(array), np.nan)
    if kind in ("bool", "integer", "float", "decimal"):
        out = array.cast(pa.int8()) if kind == "bool" else array
        out = out.cast(pa.float64(), safe=False)
    elif kind == "date":
        days = array.cast(pa.date32()).cast(pa.int32())
        out = days.cast(pa.float64())
    elif kind in ("timestamp", "timestamp_tz", "time", "duration"):
        # whole seconds and their fraction apart: the same instant in s, ms, us or ns gives one float
        per_second = 10**9 // _NS[t.unit]
        ints = array.cast(pa.int64() if kind != "time" or t.bit_width == 64 else pa.int32())
        raw = np.asarray(ints.cast(pa.int64()).to_numpy(zero_copy_only=False))
        valid = np.asarray(ints.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        whole, part = np.divmod(np.where(valid, raw, 0), per_second)
        seconds = whole.astype("float64") + part / per_second
        return np.where(valid, seconds, np.nan)
    else:
        raise EncodingError(
            f"Column {name!r} has the type {t}, which cannot be a numeric feature: list it as categorical "
            "or leave it out of drift (exclude)"
        )
    return np.asarray(out.to_numpy(zero_copy_only=False), dtype="float64")


# --------------------------------------------------------------------------------------------------
# Categorical features
def _text(value: str) -> str:
    word = value.strip().lower()
    return BOOL_WORDS.get(word, value)


def _number_text(number: decimal.Decimal) -> str | None:
    if number.is_nan():
        return None
    if number.is_infinite():
        return "inf" if number > 0 else "-inf"
    if number == 0:
        return "0"
    normal = number.normalize()
    if -25 <= normal.adjusted() <= 25:
        text = format(normal, "f")
        return text
    return str(normal).replace("E", "e")


def _float_text(value: float) -> str | None:
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return _number_text(decimal.Decimal(repr(float(value))))


def _instant_text(ns: int, aware: bool) -> str:
    seconds, fraction = divmod(ns, 10**9)
    moment = (_EPOCH_NAIVE + dt.timedelta(seconds=seconds)).isoformat()
    if fraction:
        moment += "." + f"{fraction:09d}".rstrip("0")
    return moment + ("Z" if aware else "")


def _time_text(ns: int) -> str:
    seconds, fraction = divmod(ns, 10**9)
    text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return text + ("." + f"{fraction:09d}".rstrip("0") if fraction else "")


def _duration_text(ns: int) -> str:
    return f"{_number_text(decimal.Decimal(ns) / 10**9)}s"


def _datetime_ns(value: dt.datetime) -> tuple[int, bool]:
    aware = value.tzinfo is not None and value.utcoffset() is not None
    if value.tzinfo is not None and not aware:
        value = value.replace(tzinfo=None)
    delta = value - (_EPOCH_UTC if aware else _EPOCH_NAIVE)
    ns = (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    return ns + int(getattr(value, "nanosecond", 0)), aware


def canonical_text(value: Any) -> str | None:
    """The canonical category text of one Python value (None when it is missing)."""
    import numpy as np

    if value is None:
        return None
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return None
        return _instant_text(int(value.astype("datetime64[ns]").astype("int64")), False)
    if isinstance(value, np.timedelta64):
        return (
            None if np.isnat(value) else _duration_text(int(value.astype("timedelta64[ns]").astype("int64")))
        )
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, decimal.Decimal):
        return _number_text(value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dt.datetime):
        if value != value:  # pandas NaT
            return None
        return _instant_text(*_datetime_ns(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        ns = ((value.hour * 60 + value.minute) * 60 + value.second) * 10**9 + value.microsecond * 1000
        return _time_text(ns + int(getattr(value, "nanosecond", 0)))
    if isinstance(value, dt.timedelta):
        if value != value:
            return None
        return _duration_text(int(getattr(value, "value", value // dt.timedelta(microseconds=1) * 1000)))
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return _text(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return "0x" + raw.hex()
    if isinstance(value, Mapping):
        return json.dumps({str(k): canonical_text(v) for k, v in value.items()}, sort_keys=True)
    if isinstance(value, list | tuple | np.ndarray):
        return json.dumps([canonical_text(v) for v in value])
    if value != value:  # NaN-like (pandas NA)
        return None
    return _text(str(value))


def _distinct_texts(distinct: pa.Array) -> list[str | None]:
    """Canonical texts of an Arrow array's values (its distinct values: this is the slow path)."""
    import pyarrow as pa

    kind = type_name(distinct.type)
    if kind in ("timestamp", "timestamp_tz", "time", "duration"):
        unit = _NS[distinct.type.unit]
        ints = distinct.cast(pa.int64() if kind != "time" or distinct.type.bit_width == 64 else pa.int32())
        render = {
            "timestamp": lambda ns: _instant_text(ns, False),
            "timestamp_tz": lambda ns: _instant_text(ns, True),
            "time": _time_text,
            "duration": _duration_text,
        }[kind]
        return [None if v is None else render(v * unit) for v in ints.to_pylist()]
    return [canonical_text(v) for v in distinct.to_pylist()]


@dataclass
class Categories:
    """Counts of canonical category texts of a column; ``total`` rows of which ``missing`` are missing."""

    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0
    missing: int = 0

    @property
    def present(self) -> int:
        return self.total - self.missing

    def merge(self, other: Categories) -> Categories:
        counts = dict(self.counts)
        for key, count in other.counts.items():
            counts[key] = counts.get(key, 0) + count
        return Categories(counts, self.total + other.total, self.missing + other.missing)


def category_counts(values: Any) -> Categories:
    """A column (Arrow, pandas, numpy or a list) as :class:`Categories` of canonical texts."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, Categories):
        return values
    array = arrow_values(values)
    total = len(array)
    if type_name(array.type) == "null" or total == 0:
        return Categories({}, total, total)
    try:
        counted = pc.value_counts(array)
        distinct, numbers = counted.field("values"), counted.field("counts").to_pylist()
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        python = array.to_pylist()
        texts = [canonical_text(v) for v in python]
        out = Categories({}, total, 0)
        for text in texts:
            if text is None:
                out.missing += 1
            else:
                out.counts[text] = out.counts.get(text, 0) + 1
        return out
    out = Categories({}, total, 0)
    for text, count in zip(_distinct_texts(distinct), numbers, strict=True):
        if text is None:
            out.missing += count
        else:
            out.counts[text] = out.counts.get(text, 0) + count
    return out


# --------------------------------------------------------------------------------------------------
# Profiles written before this encoding (profile version < 3): pandas ``str()`` of each value
_PANDAS_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?(e[+-]\d+)?$|^-?inf$")
_PANDAS_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?([+-]\d{2}:\d{2})?$")


def legacy_categories(categories: list[str]) -> dict[str, str]:
    """
    The canonical text of each category of a profile written before the canonical encoding, which
    stored pandas' ``str()`` of the values: ``True`` / ``False`` become ``true`` / ``false``; when
    every category is a pandas number (``3.0``, ``1e-05``) each becomes its canonical number text;
    when every category is a pandas timestamp (``2024-01-02 03:04:05+00:00``) its ISO 8601 text.
    A column of other text keeps its categories.
    """
    texts = {c: _text(c) for c in categories}
    rest = [c for c in categories if texts[c] not in BOOL_WORDS.values()]
    if rest and all(_PANDAS_NUMBER.match(c) for c in rest):
        for c in rest:
            texts[c] = _float_text(float(c)) or c
    elif rest and all(_PANDAS_TIMESTAMP.match(c) for c in rest):
        for c in rest:
            texts[c] = canonical_text(dt.datetime.fromisoformat(c)) or c
    return texts
