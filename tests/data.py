"""Canonical test data: every type the round-trip tests must carry exactly."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

import pyarrow as pa

UTC = dt.UTC

MIXED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("big", pa.int64()),
        pa.field("ratio", pa.float64()),
        pa.field("name", pa.string()),
        pa.field("active", pa.bool_()),
        # milliseconds: BSON dates carry no more than that.
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
        pa.field("amount", pa.decimal128(38, 4)),
        pa.field("payload", pa.string()),
    ]
)


def mixed_rows() -> list[dict[str, Any]]:
    d = decimal.Decimal
    return [
        {
            "id": 1,
            "big": 2**62,
            "ratio": 0.1,
            "name": "plain",
            "active": True,
            "updated_at": dt.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC),
            "amount": d("1234.5000"),
            "payload": '{"a":1,"b":[1,2,3],"c":{"d":"x"}}',
        },
        {
            "id": 2,
            "big": -(2**62),
            "ratio": math.nan,
            "name": "ünïcødé ✓ 日本 🚀",
            "active": False,
            "updated_at": dt.datetime(1999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
            "amount": d("-0.0001"),
            "payload": '{"nested":{"deep":{"deeper":[{"k":null}]}}}',
        },
        {
            "id": 3,
            "big": 0,
            "ratio": math.inf,
            "name": "",
            "active": None,
            "updated_at": None,
            "amount": None,
            "payload": None,
        },
        {
            "id": 4,
            "big": None,
            "ratio": -math.inf,
            "name": None,
            "active": True,
            "updated_at": dt.datetime(2030, 6, 15, 0, 0, tzinfo=UTC),
            "amount": d("99999999.9999"),
            "payload": "[]",
        },
        {
            "id": 5,
            "big": 42,
            "ratio": None,
            "name": 'quote " comma , newline \n tab \t backslash \\ end',
            "active": False,
            "updated_at": dt.datetime(2024, 2, 29, 12, 0, 0, 1000, tzinfo=UTC),
            "amount": d("0.0000"),
            "payload": '{"s":"with \\"quotes\\" and ,"}',
        },
    ]


def mixed_table() -> pa.Table:
    return pa.Table.from_pylist(mixed_rows(), schema=MIXED_SCHEMA)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


def assert_rows_equal(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Row-by-row, value-by-value equality (NaN equals NaN; types must match too)."""
    assert len(actual) == len(expected), f"{len(actual)} rows, expected {len(expected)}"
    for got, want in zip(actual, expected, strict=True):
        assert set(got) == set(want), f"columns {sorted(got)} != {sorted(want)}"
        for key in want:
            assert _same(got[key], want[key]), (
                f"row id={want.get('id')} column {key!r}: {got[key]!r} != {want[key]!r}"
            )


def sorted_rows(table: pa.Table, key: str = "id") -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: r[key])
