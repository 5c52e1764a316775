"""
PostgreSQL <-> Arrow type tables: what a query's columns read as, what a created table's columns
are, and which Arrow types ADBC's binary COPY writes into a column exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


def pg_type_to_arrow(type_name: str, precision: int | None, scale: int | None) -> pa.DataType:
    import pyarrow as pa

    mapping = {
        "bool": pa.bool_(),
        "int2": pa.int16(),
        "int4": pa.int32(),
        "int8": pa.int64(),
        "oid": pa.int64(),
        "float4": pa.float32(),
        "float8": pa.float64(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us"),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "time": pa.time64("us"),
        "bytea": pa.binary(),
    }
    if type_name in mapping:
        return mapping[type_name]
    if type_name == "numeric" and precision and precision <= 38:
        return pa.decimal128(precision, scale or 0)
    # text, varchar, uuid, json(b), interval, arrays, unconstrained numeric...: exact as text.
    return pa.string()


def arrow_type_to_pg(data_type: pa.DataType) -> str:
    """The PostgreSQL column type used when a table is created from an Arrow schema."""
    import pyarrow.types as t

    if t.is_dictionary(data_type):
        return arrow_type_to_pg(data_type.value_type)
    if t.is_boolean(data_type):
        return "boolean"
    if t.is_int8(data_type) or t.is_int16(data_type) or t.is_uint8(data_type):
        return "smallint"
    if t.is_int32(data_type) or t.is_uint16(data_type):
        return "integer"
    if t.is_int64(data_type) or t.is_uint32(data_type):
        return "bigint"
    if t.is_uint64(data_type):
        return "numeric(20,0)"
    if t.is_float16(data_type) or t.is_float32(data_type):
        return "real"
    if t.is_float64(data_type):
        return "double precision"
    if t.is_decimal(data_type):
        return f"numeric({data_type.precision},{data_type.scale})"
    if t.is_string(data_type) or t.is_large_string(data_type) or t.is_null(data_type):
        return "text"
    if t.is_binary(data_type) or t.is_large_binary(data_type) or t.is_fixed_size_binary(data_type):
        return "bytea"
    if t.is_date(data_type):
        return "date"
    if t.is_timestamp(data_type):
        return "timestamptz" if data_type.tz else "timestamp"
    if t.is_time(data_type):
        return "time"
    if t.is_duration(data_type):
        return "interval"
    if t.is_struct(data_type) or t.is_list(data_type) or t.is_large_list(data_type) or t.is_map(data_type):
        return "jsonb"
    raise TypeError(f"No PostgreSQL type for Arrow type {data_type}")


def adbc_arrow_type(pg_type: str) -> pa.DataType | None:
    """The Arrow type ADBC writes into a column of ``pg_type`` exactly, or None when there is none."""
    import re

    import pyarrow as pa

    numeric = re.fullmatch(r"numeric\((\d+),(\d+)\)", pg_type.replace(" ", ""))
    if numeric:
        precision, scale = int(numeric.group(1)), int(numeric.group(2))
        return pa.decimal128(precision, scale) if precision <= 38 else None
    if re.fullmatch(r"character varying(\(\d+\))?", pg_type):
        return pa.string()
    # as ``format_type`` prints them, or as ``arrow_type_to_pg`` names them
    simple = {
        "bigint": pa.int64(),
        "integer": pa.int32(),
        "smallint": pa.int16(),
        "double precision": pa.float64(),
        "real": pa.float32(),
        "boolean": pa.bool_(),
        "text": pa.string(),
        "timestamp with time zone": pa.timestamp("us", tz="UTC"),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "timestamp without time zone": pa.timestamp("us"),
        "timestamp": pa.timestamp("us"),
        "date": pa.date32(),
        "bytea": pa.binary(),
    }
    return simple.get(pg_type)


def adbc_castable(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether a column of ``source`` goes into ``target`` by a cast that keeps every value as COPY would."""
    import pyarrow.types as t

    if t.is_dictionary(source):
        source = source.value_type
    if source == target or t.is_null(source):
        return True
    if t.is_integer(target):
        return t.is_integer(source)  # a value out of range fails the cast, as it fails in PostgreSQL
    if t.is_floating(target):
        return t.is_floating(source)
    if t.is_string(target):
        return t.is_string(source) or t.is_large_string(source)
    if t.is_binary(target):
        return t.is_binary(source) or t.is_large_binary(source) or t.is_fixed_size_binary(source)
    if t.is_timestamp(target):
        return t.is_timestamp(source) and (source.tz is None) == (target.tz is None)
    if t.is_date(target):
        return t.is_date(source)
    if t.is_decimal(target):
        return t.is_decimal(source) and source.scale == target.scale and source.precision <= target.precision
    return False
