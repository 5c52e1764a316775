"""
Arrow schemas: the lossless widening rule, types and schemas written as text in DAG files, and
small descriptions for XCom, lineage and manifests.

One rule serves record sources (fields that appear late) and the dataset writer (a file per schema,
unified by the manifest). Type names are parsed from an allowlist: ``cast`` steps, validation rules
and ``ExtractOperator(schema=...)`` all read types here.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.utils.arrow import SchemaMismatchError

if TYPE_CHECKING:
    import pyarrow as pa


class TypeSpecError(ValueError):
    """A type written as text is not one of the allowed forms."""


def schema_fingerprint(schema: pa.Schema) -> str:
    """A short, stable hash of column names, types and nullability (metadata ignored)."""
    text = "|".join(f"{f.name}:{f.type}:{int(f.nullable)}" for f in schema)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def schema_to_json(schema: pa.Schema) -> list[dict[str, Any]]:
    """A small JSON description of a schema, fit for XCom and lineage facets."""
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


# --------------------------------------------------------------------------------------------------
# schema evolution: one rule shared by record sources (new fields appear late) and the dataset
# writer (files written per schema, unified by the manifest)
# --------------------------------------------------------------------------------------------------
def _widen_type(name: str, current: pa.DataType, incoming: pa.DataType, *, to_string: bool) -> pa.DataType:
    """
    The narrowest type that holds every value of ``current`` and ``incoming`` exactly, or
    :class:`SchemaMismatchError` naming the field.

    Lossless widenings only: null -> anything; a narrower int -> int64; int -> float64 (the cast
    itself refuses an int beyond 2**53, so no value changes silently); float32 -> float64; decimals
    -> decimal128(38, larger scale); string -> large_string; timestamps of one zone -> the finer
    unit; structs field by field; lists element-wise. With ``to_string`` any other conflict becomes
    a string column (a documented choice for loosely typed APIs), never a silent drop.
    """
    import pyarrow as pa
    import pyarrow.types as t

    if current.equals(incoming):
        return current
    if t.is_null(current):
        return incoming
    if t.is_null(incoming):
        return current
    if t.is_integer(current) and t.is_integer(incoming):
        if t.is_uint64(current) or t.is_uint64(incoming):
            if t.is_unsigned_integer(current) and t.is_unsigned_integer(incoming):
                return pa.uint64()
        else:
            return pa.int64()
    numeric = (t.is_integer, t.is_floating)
    if (
        any(f(current) for f in numeric)
        and any(f(incoming) for f in numeric)
        and not (t.is_uint64(current) or t.is_uint64(incoming))
    ):
        return pa.float64()
    if t.is_decimal(current) and t.is_decimal(incoming):
        scale = max(current.scale, incoming.scale)
        if t.is_decimal256(current) or t.is_decimal256(incoming):
            return pa.decimal256(76, scale)
        return pa.decimal128(38, scale)
    if {str(current), str(incoming)} <= {"string", "large_string"}:
        return pa.large_string()
    if t.is_timestamp(current) and t.is_timestamp(incoming) and current.tz == incoming.tz:
        units = ["s", "ms", "us", "ns"]
        return pa.timestamp(max(current.unit, incoming.unit, key=units.index), current.tz)
    if t.is_struct(current) and t.is_struct(incoming):
        merged = evolve_schema(
            pa.schema(list(current)), pa.schema(list(incoming)), to_string=to_string, prefix=f"{name}."
        )
        return pa.struct(list(merged))
    if (t.is_list(current) or t.is_large_list(current)) and (
        t.is_list(incoming) or t.is_large_list(incoming)
    ):
        value = _widen_type(f"{name}[]", current.value_type, incoming.value_type, to_string=to_string)
        return pa.list_(value)
    if to_string:
        # never narrower than a large_string side
        return pa.large_string() if t.is_large_string(current) or t.is_large_string(incoming) else pa.string()
    raise SchemaMismatchError(
        f"Field {name!r} changes type from {current} to {incoming}: no lossless type holds both. "
        "Give the source an explicit schema, fix the data, or choose type_conflict='string'."
    )


def evolve_schema(
    current: pa.Schema, incoming: pa.Schema, *, to_string: bool = False, prefix: str = ""
) -> pa.Schema:
    """
    ``current`` extended by the fields only ``incoming`` has (appended in their order) and with
    conflicting types widened losslessly (see :func:`_widen_type`). Returns ``current`` itself when
    nothing changes, so callers can test ``evolved is current``.
    """
    import pyarrow as pa

    fields = []
    changed = False
    incoming_index = {f.name: f for f in incoming}
    for field in current:
        other = incoming_index.get(field.name)
        if other is None:
            fields.append(field if field.nullable else field.with_nullable(True))
            changed = changed or not field.nullable
            continue
        widened = _widen_type(prefix + field.name, field.type, other.type, to_string=to_string)
        if not widened.equals(field.type):
            field = field.with_type(widened)
            changed = True
        fields.append(field)
    known = set(current.names)
    for other in incoming:
        if other.name not in known:
            fields.append(other.with_nullable(True))
            changed = True
    if not changed:
        return current
    return pa.schema(fields, metadata=current.metadata)


# --------------------------------------------------------------------------------------------------
# schemas given in DAG files: JSON-able, parsed at run time (no pyarrow import at parse time)
# --------------------------------------------------------------------------------------------------
def _split_top_level(text: str) -> list[str]:
    """``a: int64, b: struct<x: int64, y: string>`` -> its top-level comma-separated parts."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "<([":
            depth += 1
        elif char in ">)]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


# The types ``cast`` (and validation's ``type``) accept, by name. A name is looked up here and nowhere
# else: it used to be getattr(pyarrow, name)(), which called any zero-argument pyarrow function a
# user's step named before noticing it was not a type.
_SIMPLE_TYPES = {
    **{name: name for name in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")},
    **{name: name for name in ("float32", "float64", "string", "large_string", "binary", "large_binary")},
    **{name: name for name in ("date32", "date64")},
    "bool": "bool_",
    # Aliases: SQL / Python spellings and pyarrow's own attribute names.
    "bool_": "bool_",
    "boolean": "bool_",
    "int": "int64",
    "integer": "int64",
    "bigint": "int64",
    "float": "float64",
    "double": "float64",
    "str": "string",
    "text": "string",
    "utf8": "string",
    "large_utf8": "large_string",
    "bytes": "binary",
    "date": "date32",
}
_UNITS = ("s", "ms", "us", "ns")
_PARAMETRIZED_TYPES = (
    "timestamp[unit] / timestamp[unit, tz=zone] (unit: s, ms, us, ns), datetime (= timestamp[us]), "
    "duration[unit], decimal128(precision, scale) / decimal(precision, scale), decimal256(precision, scale)"
)


def _parse_allowed(text: str | pa.DataType) -> pa.DataType:
    """
    An Arrow type from its text form: ``int64``, ``string``, ``timestamp[us, tz=UTC]``, ``decimal128(10, 2)``.

    Only the names in ``_SIMPLE_TYPES`` and the parametrized forms in ``_PARAMETRIZED_TYPES`` are
    accepted; anything else is a TypeSpecError listing them.
    """
    import re

    import pyarrow as pa

    if isinstance(text, pa.DataType):
        return text
    if not isinstance(text, str):
        raise TypeSpecError(f"A type is a string such as 'int64', got {type(text).__name__}")
    name = text.strip()
    if name.lower() in _SIMPLE_TYPES:
        return getattr(pa, _SIMPLE_TYPES[name.lower()])()
    if name.lower() == "datetime":
        return pa.timestamp("us")
    if m := re.fullmatch(r"timestamp\[\s*(\w+)\s*(?:,\s*tz\s*=\s*([^\]]*?)\s*)?\]", name):
        return pa.timestamp(_unit(m.group(1), text), tz=_time_zone(m.group(2), text))
    if m := re.fullmatch(r"duration\[\s*(\w+)\s*\]", name):
        return pa.duration(_unit(m.group(1), text))
    if m := re.fullmatch(r"decimal(128|256)?\(\s*(\d{1,3})\s*,\s*(-?\d{1,3})\s*\)", name):
        factory = pa.decimal256 if m.group(1) == "256" else pa.decimal128
        try:
            return factory(int(m.group(2)), int(m.group(3)))
        except ValueError as err:
            raise TypeSpecError(f"Type {text!r}: {err}") from None
    raise TypeSpecError(
        f"Unknown type {text!r}; one of {sorted(_SIMPLE_TYPES)}, datetime, or {_PARAMETRIZED_TYPES}"
    )


def _unit(unit: str, text: str) -> str:
    if unit not in _UNITS:
        raise TypeSpecError(f"Type {text!r}: the unit is one of {list(_UNITS)}, got {unit!r}")
    return unit


def _time_zone(zone: str | None, text: str) -> str | None:
    """A time zone Arrow will understand later: UTC, a +HH:MM offset or an IANA name."""
    import re
    import zoneinfo

    if zone is None or zone == "UTC" or re.fullmatch(r"[+-]\d{2}:\d{2}", zone):
        return zone
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: 'America' is a folder
        # Arrow accepts any text here and fails only when a value is converted (or written).
        raise TypeSpecError(f"Type {text!r}: unknown time zone {zone!r}") from None
    return zone


def parse_type(text: str | pa.DataType) -> pa.DataType:
    """
    An Arrow type from its text form (what ``str(pa_type)`` prints), from an allowlist only:
    the names in ``_SIMPLE_TYPES``, ``timestamp[unit(, tz=zone)]``, ``duration[unit]``,
    ``decimal128(p, s)`` / ``decimal256(p, s)``, and ``list<T>`` (or ``list<item: T>``),
    ``large_list<T>``, ``struct<a: T, b: U>`` of those. Nothing is looked up on pyarrow by name.
    """
    import re

    import pyarrow as pa

    if isinstance(text, pa.DataType):
        return text
    if not isinstance(text, str):
        raise TypeSpecError(f"A type is a string such as 'int64', got {type(text).__name__}")
    name = text.strip()
    if match := re.fullmatch(r"(large_list|list)<(.*)>", name, flags=re.S):
        inner = match[2].strip()
        if re.match(r"^item\s*:", inner):
            inner = inner.split(":", 1)[1]
        value = parse_type(inner)
        return pa.large_list(value) if match[1] == "large_list" else pa.list_(value)
    if match := re.fullmatch(r"struct<(.*)>", name, flags=re.S):
        fields = []
        for part in _split_top_level(match[1]):
            field_name, _, type_text = part.partition(":")
            fields.append(pa.field(field_name.strip(), parse_type(type_text)))
        return pa.struct(fields)
    return _parse_allowed(name)


def schema_from_spec(spec: Any) -> pa.Schema | None:
    """
    A :class:`pyarrow.Schema` from a schema, a list of ``{"name", "type"[, "nullable"]}`` (the
    form :func:`schema_to_json` and the dataset manifest use) or a dict ``{name: type text}``.
    """
    import pyarrow as pa

    if spec is None or isinstance(spec, pa.Schema):
        return spec
    if isinstance(spec, dict):
        return pa.schema(
            [pa.field(str(name), parse_type(str(type_text))) for name, type_text in spec.items()]
        )
    if isinstance(spec, list | tuple):
        fields = []
        for item in spec:
            if not isinstance(item, dict) or "name" not in item or "type" not in item:
                raise ValueError(f"Each schema field needs 'name' and 'type', got {item!r}")
            fields.append(
                pa.field(str(item["name"]), parse_type(str(item["type"])), bool(item.get("nullable", True)))
            )
        return pa.schema(fields)
    raise ValueError(
        f"schema must be a pyarrow.Schema, a list of {{'name', 'type'}} or a dict name -> type, got {type(spec).__name__}"
    )
