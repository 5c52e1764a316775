"""
The upsert key check (:class:`~airflow_provider_mlops.sinks.contract.KeyCheck`) against a plain
Python reference, on generated keys of many types, and with every hash colliding (the exact
re-check must then report only true repeats). The sinks' use of it runs against the real servers
in ``test_write_contract_keys.py``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_mlops.sinks import contract
from airflow_provider_mlops.sinks.contract import KeyCheck, KeyViolation

pytestmark = pytest.mark.unit

TYPES: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "uint64": (pa.uint64(), st.integers(0, 2**64 - 1)),
    "int8": (pa.int8(), st.integers(-128, 127)),
    "string": (pa.string(), st.text(max_size=6)),
    "large_string": (pa.large_string(), st.text(alphabet="ab\x00é", max_size=4)),
    "binary": (pa.binary(), st.binary(max_size=4)),
    "float64": (pa.float64(), st.sampled_from([0.0, -0.0, 1.5, -2.25, 1e300, float("inf")])),
    "bool": (pa.bool_(), st.booleans()),
    "date": (pa.date32(), st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1))),
    "timestamp": (pa.timestamp("us", tz="UTC"), st.integers(-(10**15), 10**15)),
    "decimal": (
        pa.decimal128(12, 2),
        st.decimals(-(10**6), 10**6, places=2, allow_nan=False, allow_infinity=False),
    ),
    "fixed_binary": (pa.binary(2), st.binary(min_size=2, max_size=2)),
}


def _reference(rows: list[tuple[Any, ...]]) -> dict[Any, list[int]]:
    seen: dict[Any, list[int]] = {}
    for position, key in enumerate(rows):
        # The check groups as Arrow does (before and after issue 16): -0.0 and 0.0 are two keys.
        seen.setdefault(tuple((v, str(v)) if isinstance(v, float) else v for v in key), []).append(position)
    return {k: p for k, p in seen.items() if len(p) > 1}


def _run(columns: dict[str, pa.Array], sizes: list[int]) -> KeyCheck:
    table = pa.table(columns).combine_chunks()
    whole = table.to_batches()[0]
    check = KeyCheck(list(columns))
    start = 0
    batches = []
    for size in sizes:  # empty slices included: a stream may carry empty batches
        batches.append(whole.slice(start, size))
        start = min(start + size, table.num_rows)
    batches.append(whole.slice(start))
    assert sum(b.num_rows for b in batches) == table.num_rows
    for _ in check.watch(iter(batches)):
        pass
    check.verify()
    return check


def _assert_matches(columns: dict[str, pa.Array], sizes: list[int]) -> None:
    names = list(columns)
    rows = list(zip(*(columns[n].to_pylist() for n in names), strict=True))
    expected = _reference(rows)
    if not expected:
        _run(columns, sizes)
        return
    with pytest.raises(KeyViolation) as err:
        _run(columns, sizes)
    message = str(err.value)
    extra = sum(len(p) - 1 for p in expected.values())
    assert f"{len(expected)} upsert key value(s) ({', '.join(names)}) occur more than once" in message
    assert f"({extra} extra rows of {len(rows)})" in message
    shown = re.findall(r"at rows ([0-9, .]+?)(?:;|\. Which)", message)
    firsts = sorted(expected.values())[:5]
    assert shown == [", ".join(map(str, p[:5])) + (", ..." if len(p) > 5 else "") for p in firsts]


@st.composite
def _loads(draw: Any) -> tuple[dict[str, pa.Array], list[int]]:
    chosen = draw(st.lists(st.sampled_from(sorted(TYPES)), min_size=1, max_size=3, unique=True))
    n = draw(st.integers(1, 60))
    columns = {}
    for name in chosen:
        data_type, values = TYPES[name]
        # Few distinct values: repeats are frequent, but not certain.
        pool = draw(st.lists(values, min_size=1, max_size=12))
        columns[name] = pa.array([pool[draw(st.integers(0, len(pool) - 1))] for _ in range(n)], data_type)
    sizes = draw(st.lists(st.integers(0, 20), max_size=5))
    return columns, sizes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_loads())
def test_the_check_finds_exactly_the_repeats_python_finds(
    load: tuple[dict[str, pa.Array], list[int]],
) -> None:
    _assert_matches(*load)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(load=_loads())
def test_hash_collisions_are_rechecked_exactly(
    load: tuple[dict[str, pa.Array], list[int]], monkeypatch_module: Any
) -> None:
    # Every row gets the same hash: only the exact re-check decides.
    _assert_matches(*load)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(contract, "_row_hashes", lambda keys: np.full(keys.num_rows, 7, dtype=np.uint64))
        yield patch


def test_dictionary_keys_hash_by_value() -> None:
    first = pa.DictionaryArray.from_arrays(pa.array([0, 1]), pa.array(["a", "b"]))
    second = pa.DictionaryArray.from_arrays(pa.array([0]), pa.array(["b"]))
    check = KeyCheck(["k"])
    batches = [pa.record_batch({"k": first}), pa.record_batch({"k": second})]
    for _ in check.watch(iter(batches)):
        pass
    with pytest.raises(KeyViolation, match=r"k='b' at rows 1, 2"):
        check.verify()


def test_many_rows_far_apart_in_many_batches() -> None:
    ids = np.arange(300_000, dtype=np.int64)
    ids[299_999] = 17  # the last row repeats an early one
    ids[150_000] = 0  # a middle row repeats the first
    columns = {"id": pa.array(ids), "day": pa.array(["2024-01-01"] * len(ids))}
    with pytest.raises(
        KeyViolation,
        match=r"id=0, day='2024-01-01' at rows 0, 150000; id=17, day='2024-01-01' at rows 17, 299999",
    ):
        _run(columns, [10_000] * 29)


def test_the_spill_directory_is_removed() -> None:
    import glob
    import tempfile

    before = set(glob.glob(f"{tempfile.gettempdir()}/mlops-keycheck-*"))
    with pytest.raises(KeyViolation):
        _run({"id": pa.array([1, 2, 1])}, [])
    _run({"id": pa.array([1, 2, 3])}, [1])
    assert set(glob.glob(f"{tempfile.gettempdir()}/mlops-keycheck-*")) == before


def test_decimal_values_compare_by_value() -> None:
    values = [decimal.Decimal("1.10"), decimal.Decimal("1.1"), decimal.Decimal("2")]
    with pytest.raises(KeyViolation, match=r"at rows 0, 1"):
        _run({"d": pa.array(values, pa.decimal128(5, 2))}, [1, 1])
