"""
ExtractOperator(source=<spec>): the specs refuse bad fields when built, each kind is read by its
connection's hook with the run's window, and a template inside a spec is rendered when the task runs.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.operators.extract import ExtractOperator
from airflow_provider_mlops.sources import Files, HttpPages, MongoFind, SqlQuery
from tests.conftest import set_connection
from tests.operators.dag_files import dag_from_source, xcom_value

DAY = {
    "data_interval_start": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    "data_interval_end": dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
}


def _context(**more: Any) -> dict[str, Any]:
    return {
        "ti": SimpleNamespace(dag_id="d", task_id="t", map_index=-1),
        "ds": "2026-01-01",
        "run_id": "r",
    } | more


def _rows(uri: str) -> list[dict[str, Any]]:
    return pa.Table.from_batches(list(ObjectStorageHook(aws_conn_id=None).iter_batches(uri))).to_pylist()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SqlQuery(""), r"SqlQuery\.sql: must be a non-empty string, got ''"),
        (
            lambda: SqlQuery("SELECT 1", parameters=5),
            r"SqlQuery\.parameters: must be a list or a dict, got int",
        ),
        (
            lambda: SqlQuery("SELECT 1", parameters={"a": 1}, watermark_column="ts"),
            r"SqlQuery\.parameters: watermark_column works with positional parameters",
        ),
        (
            lambda: SqlQuery("SELECT 1", batch_size=0),
            r"SqlQuery\.batch_size: must be a positive whole number",
        ),
        (
            lambda: SqlQuery("SELECT 1", watermark_start="2026-01-01"),
            r"SqlQuery\.watermark_start: a window's bounds need watermark_column",
        ),
        (
            lambda: Files("/data/x", watermark_end="2026-01-01"),
            r"Files\.watermark_end: a window's bounds need watermark_column",
        ),
        (lambda: MongoFind("orders", nested="xml"), r"MongoFind\.nested: must be json or struct, got 'xml'"),
        (
            lambda: MongoFind("orders", filter={"a": 1}, pipeline=[{"$match": {}}]),
            r"MongoFind\.filter: an aggregation pipeline replaces find",
        ),
        (
            lambda: MongoFind("orders", pipeline={"$match": {}}),
            r"MongoFind\.pipeline: must be a list of stages",
        ),
        (lambda: HttpPages("items", max_pages=0), r"HttpPages\.max_pages: must be a positive whole number"),
        (lambda: HttpPages("items", params=[1]), r"HttpPages\.params: must be a dict, got list"),
        (
            lambda: Files("/data/x", format="xlsx"),
            r"Files\.format: must be parquet, csv or jsonl, got 'xlsx'",
        ),
    ],
)
def test_a_spec_refuses_a_bad_field_when_built_naming_it(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_specs_are_frozen_and_the_operator_takes_only_a_spec() -> None:
    spec = SqlQuery("SELECT 1")
    with pytest.raises(AttributeError):
        spec.sql = "SELECT 2"  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"source must be a spec of airflow_provider_mlops\.sources"):
        ExtractOperator(task_id="e", source_conn_id="db", source={"sql": "SELECT 1"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Invalid arguments were:\n\*\*kwargs: \{'sql'"):
        ExtractOperator(task_id="e", source_conn_id="db", source=spec, sql="SELECT 1")  # type: ignore[call-arg]


def test_a_spec_of_another_kind_than_the_connection_fails_naming_both(tmp_path: Path) -> None:
    conn = set_connection("kind_sqlite", conn_type="sqlite", host=str(tmp_path / "k.db"))
    op = ExtractOperator(
        task_id="e", source_conn_id=conn, source=HttpPages("items"), output_uri=(tmp_path / "o").as_uri()
    )
    with pytest.raises(
        AirflowFailException, match=r"reads a SQL database: give source=SqlQuery\(...\), not HttpPages"
    ):
        op.execute(_context())


def test_templates_inside_the_spec_are_rendered_with_the_operator_s_jinja() -> None:
    op = ExtractOperator(
        task_id="e",
        source_conn_id="db",
        source=SqlQuery(
            "SELECT '{{ ds }}'",
            parameters=["{{ ds }}"],
            watermark_column="ts",
            watermark_start="{{ ds }}T00:00:00Z",
        ),
    )
    op.render_template_fields({"ds": "2026-01-02"})  # type: ignore[arg-type]
    assert op.source == SqlQuery(
        "SELECT '2026-01-02'",
        parameters=["2026-01-02"],
        watermark_column="ts",
        watermark_start="2026-01-02T00:00:00Z",
    )


DAG_FILE = """
import datetime as dt
from airflow.sdk import DAG
from airflow_provider_mlops.operators.extract import ExtractOperator
from airflow_provider_mlops.sources import Files, SqlQuery

with DAG("{dag_id}", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
    ExtractOperator(
        task_id="sql",
        source_conn_id="render_sqlite",
        source=SqlQuery("SELECT id FROM t WHERE day = '{{ ds }}'"),
        output_uri="OUT/sql",
    )
    ExtractOperator(
        task_id="files",
        source_conn_id=None,
        source=Files("DATA/{{ ds }}/in.jsonl", format="jsonl"),
        output_uri="OUT/files",
    )
"""


def test_a_template_inside_a_spec_is_rendered_when_the_task_runs(
    airflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "r.db") as conn:
        conn.execute("CREATE TABLE t (id INTEGER, day TEXT)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?)", [(1, "2026-01-01"), (2, "2026-01-02"), (3, "2026-01-02")]
        )
    set_connection("render_sqlite", conn_type="sqlite", host=str(tmp_path / "r.db"))
    (tmp_path / "data" / "2026-01-02").mkdir(parents=True)
    (tmp_path / "data" / "2026-01-02" / "in.jsonl").write_text('{"id": 7}\n')
    out = (tmp_path / "out").as_uri()
    source = DAG_FILE.replace("OUT", out).replace("DATA", str(tmp_path / "data"))
    dag = dag_from_source(source, tmp_path / "dags", monkeypatch, prefix="extract_render")
    run = dag.test(logical_date=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    assert run.state == "success"
    assert xcom_value(dag.dag_id, run.run_id, "sql", "return_value")["rows"] == 2
    assert _rows(f"{out}/sql") == [{"id": 2}, {"id": 3}]
    assert _rows(f"{out}/files") == [{"id": 7}]


def test_http_pages_keep_the_run_s_window_client_side(httpserver: Any, tmp_path: Path) -> None:
    from werkzeug import Response

    records = [{"id": i, "at": f"2026-01-0{d}T12:00:00Z"} for i, d in enumerate((1, 1, 2, 3))]
    httpserver.expect_request("/items").respond_with_response(
        Response(json.dumps({"data": records}), content_type="application/json")
    )
    set_connection("window_api", conn_type="mlops-http", host=httpserver.url_for("/").rstrip("/"))
    result = ExtractOperator(
        task_id="e",
        source_conn_id="window_api",
        source=HttpPages("items", records_path="data", watermark_column="at"),
        output_uri=(tmp_path / "o").as_uri(),
    ).execute(_context(**DAY))
    assert result["rows"] == 2
    assert [r["id"] for r in _rows(result["uri"])] == [0, 1]


def test_mongo_find_and_pipeline_keep_the_run_s_window_in_the_query(
    mongo_conn_id: str, tmp_path: Path
) -> None:
    from airflow_provider_mlops.hooks.mongo import MongoBatchHook

    collection = f"win_{uuid.uuid4().hex[:8]}"
    docs = [
        {"_id": i, "kind": k, "at": dt.datetime(2026, 1, d, 12, tzinfo=dt.UTC)}
        for i, (k, d) in enumerate((("a", 1), ("b", 1), ("a", 2), ("a", 1)))
    ]
    MongoBatchHook(mongo_conn_id).get_conn()["mlops_test"][collection].insert_many(docs)

    def ids(spec: MongoFind, name: str) -> list[int]:
        result = ExtractOperator(
            task_id="e", source_conn_id=mongo_conn_id, source=spec, output_uri=(tmp_path / name).as_uri()
        ).execute(_context(**DAY))
        return sorted(int(r["_id"]) for r in _rows(result["uri"]))

    assert ids(MongoFind(collection, filter={"kind": "a"}, watermark_column="at"), "find") == [0, 3]
    pipeline = [{"$match": {"kind": "b"}}]
    assert ids(MongoFind(collection, pipeline=pipeline, watermark_column="at"), "pipeline") == [1]
    assert ids(MongoFind(collection, filter={"kind": "a"}), "all") == [0, 2, 3]


def test_a_files_source_is_named_by_the_uri_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__MLOPS__STAGING_URI", tmp_path.as_uri())
    ObjectStorageHook(aws_conn_id=None).write_dataset(
        f"{tmp_path.as_uri()}/landing", [pa.RecordBatch.from_pydict({"id": [1, 2]})]
    )
    op = ExtractOperator(
        task_id="e",
        source_conn_id=None,
        source=Files("staging://landing"),
        output_uri=(tmp_path / "o").as_uri(),
    )
    assert op.execute(_context())["rows"] == 2
    lineage = op.get_openlineage_facets_on_complete(None)
    assert lineage.inputs[0].name == str(tmp_path / "landing")
