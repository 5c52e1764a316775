from __future__ import annotations

import pyarrow as pa
import pytest

from airflow_provider_mlops.etl.steps import Pipeline, StepError, parse_type


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[(name, getattr(pa, name)()) for name in ("int8", "int16", "int32", "int64")],
        *[(name, getattr(pa, name)()) for name in ("uint8", "uint16", "uint32", "uint64")],
        ("float32", pa.float32()),
        ("float64", pa.float64()),
        ("double", pa.float64()),
        ("string", pa.string()),
        ("large_string", pa.large_string()),
        ("binary", pa.binary()),
        ("bool", pa.bool_()),
        ("boolean", pa.bool_()),
        ("bool_", pa.bool_()),
        ("date32", pa.date32()),
        ("date", pa.date32()),
        ("Int64", pa.int64()),
        (" int ", pa.int64()),
        ("datetime", pa.timestamp("us")),
        ("timestamp[ns]", pa.timestamp("ns")),
        ("timestamp[us, tz=UTC]", pa.timestamp("us", tz="UTC")),
        ("timestamp[ms,tz=Europe/Paris]", pa.timestamp("ms", tz="Europe/Paris")),
        ("timestamp[s, tz=+01:00]", pa.timestamp("s", tz="+01:00")),
        ("duration[ms]", pa.duration("ms")),
        ("decimal128(10, 2)", pa.decimal128(10, 2)),
        ("decimal(38,0)", pa.decimal128(38, 0)),
        ("decimal256(50, 10)", pa.decimal256(50, 10)),
        (pa.int16(), pa.int16()),
    ],
)
def test_allowed_types(text: str | pa.DataType, expected: pa.DataType) -> None:
    assert parse_type(text) == expected


# Names of pyarrow attributes that are callables (several with no required argument) and
# names that reach into Python's object model: none may be called to find out it is no type.
REFUSED = [
    "table",
    "schema",
    "default_memory_pool",
    "jemalloc_memory_pool",
    "set_cpu_count",
    "total_allocated_bytes",
    "log_memory_allocations",
    "show_versions",
    "null",
    "__class__",
    "__init__",
    "pa.lib",
    "lib",
    "os.system",
    "int64()",
    "list_(int64)",
    "timestamp",
    "decimal128",
]


@pytest.mark.parametrize("name", REFUSED)
def test_other_names_are_refused_without_being_called(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    functions = [a for a in dir(pa) if callable(getattr(pa, a)) and not isinstance(getattr(pa, a), type)]
    for attribute in functions:
        monkeypatch.setattr(pa, attribute, lambda *a, _name=attribute, **k: calls.append(_name))
    with pytest.raises(StepError, match=r"Unknown type .*; one of \["):
        parse_type(name)
    assert calls == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timestamp[minutes]", "the unit is one of"),
        ("duration[h]", "the unit is one of"),
        ("timestamp[us, tz=Mars/Olympus]", "unknown time zone 'Mars/Olympus'"),
        ("timestamp[us, tz=../../etc/passwd]", "unknown time zone"),
        ("timestamp[us, tz=America]", "unknown time zone"),
        ("decimal128(39, 2)", r"Type 'decimal128\(39, 2\)'"),
        ("decimal128(0, 0)", r"Type 'decimal128\(0, 0\)'"),
    ],
)
def test_bad_parameters_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(StepError, match=message):
        parse_type(text)


def test_a_type_must_be_text() -> None:
    with pytest.raises(StepError, match="a string"):
        parse_type(64)  # type: ignore[arg-type]


def test_cast_step_uses_the_allowlist() -> None:
    batch = pa.RecordBatch.from_pydict({"n": ["1", "2"], "t": ["2024-01-01T00:00:00Z", None]})
    out = Pipeline([{"cast": {"n": "int8", "t": "timestamp[us, tz=UTC]"}}]).apply_batch(batch)
    assert out is not None and out.schema.field("n").type == pa.int8()
    with pytest.raises(StepError, match="Unknown type 'table'"):
        Pipeline([{"cast": {"n": "table"}}]).apply_batch(batch)
