"""ETL operators' own behaviour: empty-source policies, schema violations, quarantine, lineage, assets."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSkipException

from airflow_provider_mlops.etl.validation import SchemaViolation
from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.operators.extract import ExtractOperator
from airflow_provider_mlops.operators.load import LoadOperator
from airflow_provider_mlops.operators.transform import TransformOperator
from airflow_provider_mlops.sinks import LakeTable, SqlTable
from airflow_provider_mlops.sources import Files, SqlQuery
from tests.conftest import set_connection


def _context(task_id: str = "t") -> dict[str, Any]:
    return {
        "ti": SimpleNamespace(dag_id="d", task_id=task_id, map_index=-1),
        "ds": "2026-01-01",
        "run_id": "r1",
    }


@pytest.fixture
def sqlite_conn(tmp_path: Path) -> str:
    path = tmp_path / "src.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE empty_t (id INTEGER, v TEXT)")
        conn.execute("CREATE TABLE people (id INTEGER, age INTEGER, plan TEXT, ts TEXT)")
        conn.executemany(
            "INSERT INTO people VALUES (?, ?, ?, ?)",
            [
                (1, 30, "pro", "2026-01-01 10:00:00"),
                (2, -4, "pro", "2026-01-01 23:59:59"),
                (3, 40, "gold", "2026-01-02 00:00:00"),
                (4, 50, "free", "2025-12-31 23:59:59"),
            ],
        )
    return set_connection("ops_sqlite", conn_type="sqlite", host=str(path))


@pytest.mark.parametrize("policy", ["succeed", "skip", "fail"])
def test_empty_source_follows_the_policy(policy: str, sqlite_conn: str, tmp_path: Path) -> None:
    out = (tmp_path / "out").as_uri()
    op = ExtractOperator(
        task_id="e",
        source_conn_id=sqlite_conn,
        source=SqlQuery("SELECT * FROM empty_t"),
        output_uri=out,
        on_empty=policy,
    )
    if policy == "succeed":
        assert op.execute(_context())["rows"] == 0
    else:
        with pytest.raises(AirflowSkipException if policy == "skip" else AirflowException, match="no rows"):
            op.execute(_context())
    manifest = ObjectStorageHook(aws_conn_id=None).dataset_info(out)
    if policy == "fail":
        # refused before the commit: nothing is committed (a previous version would stay)
        assert manifest is None
    else:
        assert manifest["rows"] == 0


def test_watermark_window_is_half_open(sqlite_conn: str, tmp_path: Path) -> None:
    op = ExtractOperator(
        task_id="e",
        source_conn_id=sqlite_conn,
        source=SqlQuery(
            "SELECT * FROM people",
            watermark_column="ts",
            watermark_start="2026-01-01T00:00:00+00:00",
            watermark_end="2026-01-02T00:00:00+00:00",
        ),
        output_uri=(tmp_path / "w").as_uri(),
    )
    result = op.execute(_context())
    ids = (
        pa.Table.from_batches(list(ObjectStorageHook(aws_conn_id=None).iter_batches(result["uri"])))
        .column("id")
        .to_pylist()
    )
    assert sorted(ids) == [1, 2]


def test_zero_length_data_interval_is_a_clear_error(sqlite_conn: str) -> None:
    op = ExtractOperator(
        task_id="e",
        source_conn_id=sqlite_conn,
        source=SqlQuery(
            "SELECT * FROM people",
            watermark_column="ts",
            watermark_start="2026-01-01T00:00:00+00:00",
            watermark_end="2026-01-01T00:00:00+00:00",
        ),
    )
    # bad configuration: AirflowFailException (no retries), the message and cause kept
    with pytest.raises(AirflowFailException, match="CronDataIntervalTimetable") as failed:
        op.execute(_context())
    assert isinstance(failed.value.__cause__, ValueError)


def test_extract_windows_on_the_run_s_data_interval_unless_the_spec_gives_bounds(
    sqlite_conn: str, tmp_path: Path
) -> None:
    import datetime as dt

    context = _context() | {
        "data_interval_start": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "data_interval_end": dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
    }

    def ids(source: SqlQuery, name: str) -> list[int]:
        result = ExtractOperator(
            task_id="e", source_conn_id=sqlite_conn, source=source, output_uri=(tmp_path / name).as_uri()
        ).execute(context)
        table = pa.Table.from_batches(list(ObjectStorageHook(aws_conn_id=None).iter_batches(result["uri"])))
        return sorted(table.column("id").to_pylist())

    assert ids(SqlQuery("SELECT * FROM people", watermark_column="ts"), "interval") == [1, 2]
    bounds = SqlQuery(
        "SELECT * FROM people",
        watermark_column="ts",
        watermark_start="2025-12-31T00:00:00+00:00",
        watermark_end="2026-01-01T12:00:00+00:00",
    )
    assert ids(bounds, "bounds") == [1, 4]


def _extract_people(sqlite_conn: str, tmp_path: Path) -> dict[str, Any]:
    return ExtractOperator(
        task_id="e",
        source_conn_id=sqlite_conn,
        source=SqlQuery("SELECT * FROM people"),
        output_uri=(tmp_path / "raw").as_uri(),
    ).execute(_context())


SPEC = {"columns": {"age": {"min": 0}, "plan": {"allowed": ["free", "pro"]}}}


def test_schema_violation_fails_naming_the_column_and_leaves_no_output(
    sqlite_conn: str, tmp_path: Path
) -> None:
    raw = _extract_people(sqlite_conn, tmp_path)
    out = (tmp_path / "clean").as_uri()
    op = TransformOperator(task_id="t", input_uri=raw, expected_schema=SPEC, output_uri=out)
    with pytest.raises(
        AirflowFailException, match=r"2 of 4 rows.*column 'age' rule min=0: 1 bad row"
    ) as failed:
        op.execute(_context())
    assert isinstance(failed.value.__cause__, SchemaViolation)
    assert ObjectStorageHook(aws_conn_id=None).dataset_info(out) is None  # nothing committed


def test_quarantine_routes_bad_rows(sqlite_conn: str, tmp_path: Path) -> None:
    raw = _extract_people(sqlite_conn, tmp_path)
    op = TransformOperator(
        task_id="t",
        input_uri=raw,
        expected_schema=SPEC,
        on_violation="quarantine",
        steps=[{"derive": {"age_next_year": "age + 1"}}],
        output_uri=(tmp_path / "c").as_uri(),
    )
    result = op.execute(_context())
    assert result["rows"] == 2 and result["bad_rows"] == 2
    hook = ObjectStorageHook(aws_conn_id=None)
    bad = pa.Table.from_batches(list(hook.iter_batches(result["quarantine_uri"])))
    assert sorted(zip(bad.column("id").to_pylist(), bad.column("_violations").to_pylist(), strict=True)) == [
        (2, "age:min=0"),
        (3, "plan:allowed"),
    ]
    good = pa.Table.from_batches(list(hook.iter_batches(result["uri"])))
    assert sorted(good.column("age_next_year").to_pylist()) == [31, 51]


def test_load_declares_its_target_as_asset_and_writes_an_empty_table(
    sqlite_conn: str, tmp_path: Path
) -> None:
    empty = ExtractOperator(
        task_id="e",
        source_conn_id=sqlite_conn,
        source=SqlQuery("SELECT * FROM empty_t"),
        output_uri=(tmp_path / "empty").as_uri(),
    ).execute(_context())
    op = LoadOperator(
        task_id="l", input_uri=empty, conn_id=sqlite_conn, sink=SqlTable("copy_of_empty"), on_empty="replace"
    )
    assert [a.uri for a in op.outlets] == ["x-mlops-sql://ops_sqlite/copy_of_empty"]
    assert op.execute(_context())["rows"] == 0
    with sqlite3.connect(Path(tmp_path / "src.db")) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(copy_of_empty)")]
    assert columns == ["id", "v"]


def test_load_needs_a_sink_spec() -> None:
    with pytest.raises(TypeError, match="SqlTable, MongoCollection, LakeTable or FileExport"):
        LoadOperator(task_id="l", input_uri="x", sink="a", conn_id="c")  # type: ignore[arg-type]


def test_openlineage_facets_when_the_provider_is_installed(sqlite_conn: str, tmp_path: Path) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    op = ExtractOperator(
        task_id="e",
        source_conn_id=sqlite_conn,
        source=SqlQuery("SELECT * FROM people"),
        output_uri=(tmp_path / "ol").as_uri(),
    )
    op.execute(_context())
    lineage = op.get_openlineage_facets_on_complete(None)
    assert lineage.outputs[0].namespace == "file"
    assert [f.name for f in lineage.outputs[0].facets["schema"].fields] == ["id", "age", "plan", "ts"]


def _jsonl(path: Path, records: list[dict[str, Any]]) -> str:
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def test_extract_keeps_fields_the_first_records_lack_and_takes_nested_as_chosen(tmp_path: Path) -> None:
    records = [{"id": 0}] + [
        {"id": i, "temp": i / 2, "tags": ["a", "b"], "doc": {"k": i}} for i in range(1, 50)
    ]
    source = _jsonl(tmp_path / "in.jsonl", records)
    for nested, doc_type in (("struct", pa.struct([("k", pa.int64())])), ("json", pa.string())):
        out = (tmp_path / f"out_{nested}").as_uri()
        ExtractOperator(
            task_id="e",
            source_conn_id=None,
            source=Files(source, format="jsonl", nested=nested),
            output_uri=out,
        ).execute(_context())
        table = pa.Table.from_batches(list(ObjectStorageHook(aws_conn_id=None).iter_batches(out)))
        assert table.num_rows == 50
        assert table.schema.field("doc").type == doc_type
        assert table.column("temp").to_pylist() == [None] + [i / 2 for i in range(1, 50)]


def test_extract_with_a_schema_contract_names_an_unexpected_field_or_ignores_it(tmp_path: Path) -> None:
    source = _jsonl(tmp_path / "in.jsonl", [{"id": 1, "at": "2026-01-01T00:00:00Z"}, {"id": 2, "oops": 1}])
    schema = [{"name": "id", "type": "int64"}, {"name": "at", "type": "timestamp[us, tz=UTC]"}]
    out = (tmp_path / "out").as_uri()
    op = ExtractOperator(
        task_id="e", source_conn_id=None, source=Files(source, format="jsonl"), output_uri=out, schema=schema
    )
    with pytest.raises(Exception, match=r"'oops' of record 1 is not in the schema"):
        op.execute(_context())
    ExtractOperator(
        task_id="e",
        source_conn_id=None,
        source=Files(source, format="jsonl"),
        output_uri=out,
        schema={"id": "int64", "at": "timestamp[us, tz=UTC]"},
        extra="ignore",
    ).execute(_context())
    table = pa.Table.from_batches(list(ObjectStorageHook(aws_conn_id=None).iter_batches(out)))
    assert table.schema == pa.schema([("id", pa.int64()), ("at", pa.timestamp("us", tz="UTC"))])
    assert table.column("id").to_pylist() == [1, 2]


@pytest.mark.parametrize("target", ["table", "files"])
@pytest.mark.parametrize("on_empty", ["skip", "replace", "fail"])
def test_load_of_an_empty_dataset_follows_on_empty(
    target: str, on_empty: str, sqlite_conn: str, tmp_path: Path
) -> None:
    """The same outcome for a table and a file prefix (MongoDB and the others: test_write_contract)."""
    storage = ObjectStorageHook(aws_conn_id=None)
    full = (tmp_path / "full").as_uri()
    storage.write_dataset(full, [pa.RecordBatch.from_pydict({"id": [1, 2], "v": ["a", "b"]})])
    empty = (tmp_path / "empty").as_uri()
    storage.write_dataset(empty, [], schema=pa.schema([("id", pa.int64()), ("v", pa.string())]))
    out = (tmp_path / "out").as_uri()
    where: dict[str, Any] = (
        {"conn_id": sqlite_conn, "sink": SqlTable("loaded"), "mode": "replace"}
        if target == "table"
        else {"sink": LakeTable(out)}
    )
    LoadOperator(task_id="l", input_uri=full, **where).execute(_context())

    def stored() -> int:
        if target == "files":
            return sum(b.num_rows for b in storage.iter_batches(out))
        with sqlite3.connect(tmp_path / "src.db") as conn:
            return conn.execute("SELECT count(*) FROM loaded").fetchone()[0]

    op = LoadOperator(task_id="l", input_uri=empty, on_empty=on_empty, **where)
    if on_empty == "fail":
        with pytest.raises(AirflowFailException, match="no rows"):
            op.execute(_context())
        assert stored() == 2
        return
    if on_empty == "skip":  # skipped: no Asset event for an untouched target (test_load_empty.py)
        with pytest.raises(AirflowSkipException, match="not touched"):
            op.execute(_context())
        assert stored() == 2
        return
    assert op.execute(_context())["rows"] == 0
    assert stored() == 0


def test_load_with_null_or_repeated_keys_fails_without_retries(sqlite_conn: str, tmp_path: Path) -> None:
    storage = ObjectStorageHook(aws_conn_id=None)
    for name, ids in (("nulls", [1, None, 3]), ("dups", [1, 2, 1])):
        uri = (tmp_path / name).as_uri()
        storage.write_dataset(
            uri, [pa.RecordBatch.from_pydict({"id": pa.array(ids, pa.int64()), "v": ["a"] * 3})]
        )
        op = LoadOperator(
            task_id="l", input_uri=uri, conn_id=sqlite_conn, sink=SqlTable("keyed", keys=["id"])
        )
        with pytest.raises(AirflowFailException, match=r"NULL|more than once"):
            op.execute(_context())
    with sqlite3.connect(tmp_path / "src.db") as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'keyed'").fetchall() in (
            [],
            [("keyed",)],
        )
        if conn.execute("SELECT name FROM sqlite_master WHERE name = 'keyed'").fetchall():
            assert conn.execute("SELECT count(*) FROM keyed").fetchone()[0] == 0


def test_load_refuses_an_unknown_on_empty() -> None:
    with pytest.raises(ValueError, match="on_empty"):
        LoadOperator(task_id="l", input_uri="x", sink=LakeTable("file:///tmp/x"), on_empty="truncate")


def test_a_downstream_task_reads_the_version_its_upstream_committed_not_a_later_one(
    sqlite_conn: str, tmp_path: Path
) -> None:
    # The extract hands over {"uri", "version"}; when the table moves on before the transform runs
    # (a zombie attempt of the extract, another writer), the transform still reads the rows handed over.
    out = (tmp_path / "raw").as_uri()
    handed = ExtractOperator(
        task_id="e", source_conn_id=sqlite_conn, source=SqlQuery("SELECT id, age FROM people"), output_uri=out
    ).execute(_context("e"))
    storage = ObjectStorageHook(aws_conn_id=None)
    assert handed["version"] == storage.table_version(out) == 0
    storage.write_dataset(out, pa.table({"id": [9], "age": [99]}).to_batches())  # version 1: one row
    cleaned = TransformOperator(
        task_id="t", input_uri=handed, output_uri=(tmp_path / "clean").as_uri()
    ).execute(_context("t"))
    assert cleaned["rows"] == 4 and cleaned["version"] == 0
    rows = pa.Table.from_batches(list(storage.iter_batches(cleaned["uri"]))).to_pydict()
    assert sorted(rows["id"]) == [1, 2, 3, 4]


def test_lineage_links_a_pinned_hand_off_to_the_dataset_its_upstream_wrote(
    sqlite_conn: str, tmp_path: Path
) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    extract = ExtractOperator(
        task_id="e",
        source_conn_id=sqlite_conn,
        source=SqlQuery("SELECT id FROM people"),
        output_uri=(tmp_path / "raw").as_uri(),
    )
    handed = extract.execute(_context("e"))
    transform = TransformOperator(task_id="t", input_uri=handed, output_uri=(tmp_path / "clean").as_uri())
    transform.execute(_context("t"))
    written = extract.get_openlineage_facets_on_complete(None).outputs[0]
    read = transform.get_openlineage_facets_on_complete(None).inputs[0]
    # the same dataset (not one named ".../raw@v0"), with the version read as its version facet
    assert (read.namespace, read.name) == (written.namespace, written.name)
    assert read.facets["version"].datasetVersion == "0"
