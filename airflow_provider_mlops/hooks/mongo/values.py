"""BSON <-> Arrow values: what pymongo returns made fit for Arrow, and Arrow's values made fit for BSON."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


def _to_arrow_value(value: Any) -> Any:
    """BSON values Arrow cannot take as they are -> plain Python values."""
    from bson import Decimal128, ObjectId
    from bson.binary import Binary

    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, Binary):
        return bytes(value)
    if isinstance(value, dict):
        return {k: _to_arrow_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_arrow_value(v) for v in value]
    return value


_PLAIN = (str, int, float, bool, type(None), dt.datetime)


def convert_document(document: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, _PLAIN) else _to_arrow_value(v)) for k, v in document.items()}


def to_bson_value(value: Any) -> Any:
    import decimal

    from bson import Decimal128

    if isinstance(value, decimal.Decimal):
        return Decimal128(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, dict):
        return {k: to_bson_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_bson_value(v) for v in value]
    return value
