"""
LoadOperator(sink=<spec>): the specs refuse bad fields and modes they do not have when built, each
kind is written by its connection's hook, and a template inside a spec is rendered when the task runs.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.operators.load import LoadOperator
from airflow_provider_mlops.sinks import FileExport, LakeTable, MongoCollection, SqlTable
from tests.conftest import set_connection


def _context() -> dict[str, Any]:
    return {"ti": SimpleNamespace(dag_id="d", task_id="t", map_index=-1), "ds": "2026-01-01", "run_id": "r"}


def _input(tmp_path: Path, rows: list[dict[str, Any]], name: str = "in") -> str:
    uri = (tmp_path / name).as_uri()
    ObjectStorageHook(aws_conn_id=None).write_dataset(uri, [pa.RecordBatch.from_pylist(rows)])
    return uri


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SqlTable(""), r"SqlTable\.table: must be a non-empty string"),
        (lambda: SqlTable("t", keys="id"), r"SqlTable\.keys: must be a list of column names, got 'id'"),
        (lambda: SqlTable("t", keys=["id", "id"]), r"SqlTable\.keys: .*distinct"),
        (lambda: SqlTable("t", newer_column="at"), r"SqlTable\.newer_column: .*give keys"),
        (lambda: SqlTable("t", create_table="yes"), r"SqlTable\.create_table: must be True or False"),
        (lambda: SqlTable("t", batch_size=0), r"SqlTable\.batch_size: must be a positive whole number"),
        (lambda: MongoCollection("c", database=""), r"MongoCollection\.database: must be a non-empty"),
        (lambda: LakeTable("s3://b/t", partition_by="day"), r"LakeTable\.partition_by: must be a list"),
        (lambda: LakeTable("s3://b/t", vacuum_retention_hours=-1), r"LakeTable\.vacuum_retention_hours"),
        (lambda: FileExport("s3://b/x", format="parquet"), r"FileExport\.format: .*LakeTable"),  # type: ignore[arg-type]
    ],
)
def test_a_sink_refuses_a_bad_field_when_built_naming_it(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize(
    ("sink", "mode", "partition", "message"),
    [
        (
            FileExport("s3://b/x"),
            "append",
            None,
            r"FileExport has no mode 'append': its modes are \('replace',\)",
        ),
        (FileExport("s3://b/x"), "upsert", None, r"FileExport has no mode 'upsert'"),
        (SqlTable("t"), "insert", None, r"mode must be one of .*'append'.*got 'insert'"),
        (MongoCollection("c"), "upsert", None, r"MongoCollection: mode='upsert' needs keys"),
        (
            LakeTable("s3://b/t"),
            "replace_partition",
            None,
            r"LakeTable: mode='replace_partition' needs partition",
        ),
        (SqlTable("t"), "replace", {"day": "d"}, r"SqlTable: partition= is for mode='replace_partition'"),
    ],
)
def test_a_mode_the_sink_does_not_have_is_refused_when_the_task_is_built(
    sink: Any, mode: str, partition: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LoadOperator(task_id="l", input_uri="x", sink=sink, conn_id="c", mode=mode, partition=partition)  # type: ignore[arg-type]


def test_one_vocabulary_default_modes_and_connections() -> None:
    def mode(sink: Any, conn_id: str | None = "c") -> str:
        return LoadOperator(task_id="l", input_uri="x", sink=sink, conn_id=conn_id).mode  # type: ignore[return-value]

    assert mode(SqlTable("t")) == "append"
    assert mode(SqlTable("t", keys=["id"])) == "upsert"
    assert mode(MongoCollection("c")) == "append"  # MongoDB's former "insert"
    assert mode(MongoCollection("c", keys=["id"])) == "upsert"
    assert mode(LakeTable("s3://b/t"), None) == "replace"
    assert mode(LakeTable("s3://b/t", keys=["id"]), None) == "upsert"
    assert mode(FileExport("s3://b/x"), None) == "replace"
    with pytest.raises(ValueError, match="A SqlTable sink needs conn_id"):
        LoadOperator(task_id="l", input_uri="x", sink=SqlTable("t"))
    spec = SqlTable("t")
    with pytest.raises(AttributeError):
        spec.table = "u"  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"Invalid arguments were:\n\*\*kwargs: \{'table'"):
        LoadOperator(task_id="l", input_uri="x", sink=spec, conn_id="c", table="t")  # type: ignore[call-arg]


def test_each_sink_is_its_outlet_asset_when_known_at_parse_time() -> None:
    def outlets(sink: Any, conn_id: str | None = "wh") -> list[str]:
        return [a.uri for a in LoadOperator(task_id="l", input_uri="x", sink=sink, conn_id=conn_id).outlets]

    assert outlets(SqlTable("sales")) == ["x-mlops-sql://wh/sales"]
    assert outlets(MongoCollection("docs", database="app")) == ["x-mlops-mongo://wh/app/docs"]
    assert outlets(LakeTable("s3://lake/sales"), None) == ["s3://lake/sales"]
    assert outlets(FileExport("s3://exports/sales/"), None) == ["s3://exports/sales"]
    assert outlets(SqlTable("sales_{{ ds_nodash }}")) == []
    assert outlets(LakeTable("staging://lake/sales"), None) == []


def test_a_sink_of_another_kind_than_the_connection_fails_naming_both(tmp_path: Path) -> None:
    conn = set_connection("sink_kind_sqlite", conn_type="sqlite", host=str(tmp_path / "k.db"))
    uri = _input(tmp_path, [{"id": 1}])
    for sink in (MongoCollection("c"), LakeTable((tmp_path / "lake").as_uri())):
        op = LoadOperator(task_id="l", input_uri=uri, sink=sink, conn_id=conn)
        with pytest.raises(
            AirflowFailException,
            match=rf"writes a SQL table: give sink=SqlTable\(...\), not {type(sink).__name__}",
        ):
            op.execute(_context())
    assert not (tmp_path / "lake").exists()


def test_templates_inside_the_sink_are_rendered_when_the_task_runs(tmp_path: Path) -> None:
    conn = set_connection("sink_render_sqlite", conn_type="sqlite", host=str(tmp_path / "r.db"))
    uri = _input(tmp_path, [{"id": 1, "day": "2026-01-01"}, {"id": 2, "day": "2026-01-01"}])
    op = LoadOperator(
        task_id="l",
        input_uri=uri,
        sink=SqlTable("daily_{{ ds_nodash }}", keys=["id"]),
        conn_id=conn,
    )
    op.render_template_fields({"ds_nodash": "20260101", "ds": "2026-01-01"})  # type: ignore[arg-type]
    assert op.sink == SqlTable("daily_20260101", keys=["id"])
    result = op.execute(_context())
    assert (result["rows"], result["inserted"], result["target"]) == (2, 2, "daily_20260101")
    with sqlite3.connect(tmp_path / "r.db") as db:
        assert db.execute("SELECT id, day FROM daily_20260101 ORDER BY id").fetchall() == [
            (1, "2026-01-01"),
            (2, "2026-01-01"),
        ]
    export = LoadOperator(
        task_id="x", input_uri=uri, sink=FileExport((tmp_path / "out").as_uri() + "/{{ ds }}", format="jsonl")
    )
    export.render_template_fields({"ds": "2026-01-01"})  # type: ignore[arg-type]
    done = export.execute(_context())
    assert done["rows"] == 2 and done["target"].endswith("/out/2026-01-01/part-00000.jsonl")
    lines = (tmp_path / "out" / "2026-01-01" / "part-00000.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"id": 1' in lines[0].replace('":1', '": 1')


def test_a_mongo_collection_takes_the_same_modes(mongo_conn_id: str, tmp_path: Path) -> None:
    from airflow_provider_mlops.hooks.mongo import MongoBatchHook

    name = f"sink_{uuid.uuid4().hex[:8]}"
    day1 = _input(tmp_path, [{"id": 1, "ds": "d1", "v": "a"}, {"id": 2, "ds": "d1", "v": "b"}], "d1")
    day2 = _input(tmp_path, [{"id": 3, "ds": "d2", "v": "c"}], "d2")
    fix1 = _input(tmp_path, [{"id": 4, "ds": "d1", "v": "A"}], "fix1")

    def load(uri: str, **kw: Any) -> dict[str, Any]:
        sink = MongoCollection(name, database="mlops_test", keys=kw.pop("keys", None))
        return LoadOperator(task_id="m", input_uri=uri, sink=sink, conn_id=mongo_conn_id, **kw).execute(
            _context()
        )

    def stored() -> list[tuple[Any, ...]]:
        coll = MongoBatchHook(mongo_conn_id).get_conn()["mlops_test"][name]
        return [(d["id"], d["ds"], d["v"]) for d in coll.find({}, {"_id": 0}, sort=[("id", 1)])]

    assert load(day1, keys=["id"])["inserted"] == 2
    again = load(day1, keys=["id"])
    assert (again["inserted"], again["updated"], again["target"]) == (0, 2, name)
    assert load(day2, mode="append")["inserted"] == 1
    replaced = load(fix1, mode="replace_partition", partition={"ds": "d1"})
    assert (replaced["deleted"], replaced["inserted"]) == (2, 1)
    assert stored() == [(3, "d2", "c"), (4, "d1", "A")]
    assert load(day2, mode="replace")["deleted"] == 2
    assert stored() == [(3, "d2", "c")]


def test_load_takes_eight_own_arguments() -> None:
    import inspect

    own = [
        name
        for name, p in inspect.signature(LoadOperator.__init__).parameters.items()
        if name != "self" and p.kind is not p.VAR_KEYWORD
    ]
    assert own == [
        "input_uri",
        "sink",
        "conn_id",
        "mode",
        "partition",
        "on_empty",
        "input_format",
        "storage_conn_id",
    ]  # was 20 (issue 25)


def test_inputs_with_different_columns_are_refused_naming_the_column_not_dropped(tmp_path: Path) -> None:
    """Two days into one lake table, the second with a column the first lacks: nothing is dropped."""
    day1 = _input(tmp_path, [{"id": 1, "amount": 1.5}], name="day1")
    day2 = _input(tmp_path, [{"id": 2, "amount": 2.5, "coupon": "X"}], name="day2")
    lake = (tmp_path / "lake").as_uri()
    load = LoadOperator(task_id="l", input_uri=[day1, day2], sink=LakeTable(lake))
    with pytest.raises(AirflowFailException, match=r"day1@v0 has no column\(s\) \['coupon'\]"):
        load.execute(_context())
    assert not ObjectStorageHook(aws_conn_id=None).is_table(lake)  # nothing committed
    # the same columns in every input: all rows, every column
    day2b = _input(tmp_path, [{"id": 2, "amount": 2.5}], name="day2b")
    LoadOperator(task_id="l", input_uri=[day1, day2b], sink=LakeTable(lake)).execute(_context())
    rows = pa.Table.from_batches(list(ObjectStorageHook(aws_conn_id=None).iter_batches(lake))).to_pylist()
    assert sorted(rows, key=lambda r: r["id"]) == [{"id": 1, "amount": 1.5}, {"id": 2, "amount": 2.5}]


def test_a_failed_optimize_after_an_append_does_not_fail_the_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows are committed first; a failing compaction must not send the task into a retry that appends them again."""
    lake = (tmp_path / "lake").as_uri()
    day1 = _input(tmp_path, [{"id": 1}, {"id": 2}], name="day1")

    def conflict(self: ObjectStorageHook, uri: str, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError(
            "another writer compacted the table first"
        )  # injected: no server does it on demand

    monkeypatch.setattr(ObjectStorageHook, "optimize_dataset", conflict)
    result = LoadOperator(
        task_id="l", input_uri=day1, sink=LakeTable(lake, optimize=True), mode="append"
    ).execute(_context())
    assert result["rows"] == 2 and "another writer" in result["maintenance_error"]
    assert ObjectStorageHook(aws_conn_id=None).dataset_info(lake)["rows"] == 2  # appended once
