"""
Upsert keys on every sink against its real server (PostgreSQL with both load engines, SQLite and
MariaDB through the generic SQL hook, MongoDB in a transaction and staged), beyond the basic cases
of ``test_write_contract.py``: repeats far apart across many batches and at the very first and
last rows, composite keys of mixed types, a NULL in one of several key columns. After every refused
load the target holds what it held before (row count + checksum).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_mlops.sinks.contract import KeyViolation
from tests.hooks.test_write_contract import SINKS, Sink, _batch


@pytest.fixture(params=sorted(SINKS))
def sink(request: pytest.FixtureRequest) -> Sink:
    return SINKS[request.param](request)


def _rows(ids: list[Any], days: list[Any], tag: str = "v") -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "id": pa.array(ids, pa.int64()),
            "v": [f"{tag}{i}" for i in ids],
            "ds": pa.array(days, pa.string()),
        }
    )


def test_repeats_far_apart_at_the_first_and_last_rows_are_refused(sink: Sink) -> None:
    sink.write(iter([_batch([1, 2, 3])]), mode="upsert", keys=["id"])
    before = sink.snapshot()
    # 12 batches of 50 rows (secantusdb upserts slowly in a transaction): the last row repeats the
    # first, row 470 repeats row 130.
    ids = list(range(100, 700))
    ids[-1] = ids[0]
    ids[470] = ids[130]
    batches = [_batch(ids[s : s + 50]) for s in range(0, len(ids), 50)]
    with pytest.raises(KeyViolation) as err:
        sink.write(iter(batches), mode="upsert", keys=["id"])
    message = str(err.value)
    assert "2 upsert key value(s) (id) occur more than once in this load (2 extra rows of 600)" in message
    assert "e.g. id=100 at rows 0, 599; id=230 at rows 130, 470." in message
    assert "Nothing was written" in message
    assert sink.snapshot() == before


def test_composite_keys_of_mixed_types(sink: Sink) -> None:
    # (ds text, id bigint): the same id under another day is another key.
    first = sink.write(
        iter([_rows([1, 2], ["d1", "d1"]), _rows([1, 2], ["d2", "d2"])]), mode="upsert", keys=["ds", "id"]
    )
    assert (first["rows"], first["inserted"], first["updated"]) == (4, 4, 0), sink.name
    before = sink.snapshot()
    assert before[0] == 4
    batches = [_rows([3, 1], ["d1", "d2"]), _rows([1, 3], ["d1", "d2"]), _rows([3, 4], ["d1", "d1"])]
    with pytest.raises(KeyViolation) as err:
        sink.write(iter(batches), mode="upsert", keys=["ds", "id"])
    message = str(err.value)
    assert "1 upsert key value(s) (ds, id) occur more than once in this load (1 extra rows of 6)" in message
    assert "e.g. ds='d1', id=3 at rows 0, 4." in message
    assert sink.snapshot() == before
    # The same rows without the repeat go in: updates of the stored keys, inserts of the others.
    again = sink.write(
        iter([_rows([3, 1], ["d1", "d2"], "w"), _rows([1, 3], ["d1", "d2"], "w")]),
        mode="upsert",
        keys=["ds", "id"],
    )
    assert (again["rows"], again["inserted"], again["updated"]) == (4, 2, 2), sink.name
    assert sorted(sink.rows()) == [
        (1, "w1", "d1"),
        (1, "w1", "d2"),
        (2, "v2", "d1"),
        (2, "v2", "d2"),
        (3, "w3", "d1"),
        (3, "w3", "d2"),
    ]


def test_a_null_in_one_of_several_key_columns_is_refused(sink: Sink) -> None:
    sink.write(iter([_rows([1, 2], ["d1", "d1"])]), mode="upsert", keys=["ds", "id"])
    before = sink.snapshot()
    batches = [_rows([5, 6], ["d1", "d1"]), _rows([7, 8], ["d1", None]), _rows([9], ["d2"])]
    with pytest.raises(
        KeyViolation,
        match=r"^1 of 5 rows have a NULL \(or NaN\) upsert key \(ds, id\), e.g\. row 3 \(ds=None, id=8\)\.",
    ):
        sink.write(iter(batches), mode="upsert", keys=["ds", "id"])
    assert sink.snapshot() == before
