"""
Datasets as Delta tables against a real S3 server (moto) and local folders, with faults injected by a
proxy in front of the server: a reader sees the last committed version or a clear error, never a
partial or empty one; a failed write never destroys the previous version; a zombie and its retry
racing on one table both commit complete versions or one fails with a conflict.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from airflow_provider_mlops.datasets import (
    DELTA_LOG,
    DatasetConflictError,
    DatasetCorruptError,
    DatasetError,
    NoCommittedDatasetError,
)
from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.storage.uri import parse_uri
from tests.conftest import set_connection
from tests.harness.proxy import Fault, Request, start_proxy
from tests.harness.servers import S3Server

SCHEMA = pa.schema([("id", pa.int64()), ("s", pa.string())])


def _table(n: int, *, start: int = 0, tag: str = "v") -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table({"id": ids, "s": [f"{tag} row {i}\nwith newline" for i in ids]})


def _checksum(table: pa.Table) -> str:
    digest = hashlib.sha256()
    for row in table.sort_by("id").to_pylist():
        digest.update(repr(sorted(row.items())).encode())
    return digest.hexdigest()


def _read(hook: ObjectStorageHook, uri: str) -> pa.Table:
    batches = list(hook.iter_batches(uri))
    schema = hook.read_schema(uri.split("@v")[0])
    return pa.Table.from_batches(batches, schema=schema)


@pytest.fixture
def proxied(s3_server: S3Server) -> Iterator[tuple[ObjectStorageHook, list]]:
    """An ObjectStorageHook whose requests pass through the fault proxy; set ``rules[0]`` to inject faults."""
    rules: list = [None]
    with start_proxy(s3_server.endpoint_url, rule=lambda r: rules[0](r) if rules[0] else None) as proxy:
        conn_id = set_connection(
            f"s3_proxy_{proxy.port}",
            conn_type="mlops_s3",
            login=s3_server.access_key,
            password=s3_server.secret_key,
            extra={"endpoint_url": proxy.endpoint_url, "region_name": s3_server.region},
        )
        yield ObjectStorageHook(aws_conn_id=conn_id), rules


@pytest.fixture
def prefix(s3_server: S3Server) -> str:
    return f"s3://{s3_server.bucket}/commit/{uuid.uuid4().hex[:10]}"


def _is_data_put(request: Request) -> bool:
    path = request.path.split("?", 1)[0]
    return request.method in ("PUT", "POST") and ".parquet" in path and f"/{DELTA_LOG}/" not in path


def test_moto_honours_conditional_puts(s3_server: S3Server) -> None:
    """What delta-rs's S3 commits rely on (no lock service): the second create-if-absent put fails."""
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name="us-east-1",
    )
    key = f"cond/{uuid.uuid4().hex}"
    client.put_object(Bucket=s3_server.bucket, Key=key, Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=s3_server.bucket, Key=key, Body=b"second", IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert client.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read() == b"first"


def test_failed_upload_keeps_the_previous_version(proxied, prefix: str) -> None:
    hook, rules = proxied
    old = _table(300)
    first = hook.write_dataset(prefix, old.to_batches(max_chunksize=50))

    rules[0] = lambda r: Fault.fail(500) if _is_data_put(r) else None  # every try of every data file
    with pytest.raises(Exception, match=r"500|Internal|Server|retr"):
        hook.write_dataset(prefix, _table(300, tag="new").to_batches(max_chunksize=50))
    rules[0] = None

    assert hook.table_version(prefix) == first["version"] == 0
    back = _read(hook, prefix)
    assert back.num_rows == 300 and _checksum(back) == _checksum(old)


def test_failed_log_commit_keeps_the_previous_version(proxied, prefix: str) -> None:
    """The data files are written, the commit (the log entry) is refused: nothing changes for readers."""
    hook, rules = proxied
    old = _table(50)
    hook.write_dataset(prefix, old.to_batches())
    rules[0] = lambda r: Fault.fail(500) if r.method == "PUT" and f"/{DELTA_LOG}/" in r.path else None
    with pytest.raises(Exception, match=r"500|Internal|Server|retr"):
        hook.write_dataset(prefix, _table(70, tag="new").to_batches())
    rules[0] = None
    assert hook.table_version(prefix) == 0
    assert _checksum(_read(hook, prefix)) == _checksum(old)


def test_transient_faults_are_retried_to_one_clean_version(proxied, prefix: str) -> None:
    hook, rules = proxied
    failures = {"left": 2}

    def flaky(request: Request) -> Fault | None:
        if request.method == "PUT" and failures["left"] > 0:
            failures["left"] -= 1
            return Fault.fail(500)
        return None

    rules[0] = flaky
    table = _table(250)
    result = hook.write_dataset(prefix, table.to_batches(max_chunksize=40))
    rules[0] = None
    assert failures["left"] == 0
    assert result["rows"] == 250 and result["version"] == 0
    assert _checksum(_read(hook, prefix)) == _checksum(table)


@pytest.mark.parametrize("where", ["s3", "local"])
def test_a_reader_during_a_write_sees_the_previous_version(where: str, s3_conn_id, prefix, tmp_path) -> None:
    hook = ObjectStorageHook(aws_conn_id=s3_conn_id)
    uri = prefix if where == "s3" else (tmp_path / "ds").as_uri()
    old = _table(120)
    hook.write_dataset(uri, old.to_batches(max_chunksize=40))
    seen: list[str] = []

    def slow_batches() -> Iterator[pa.RecordBatch]:
        for i, batch in enumerate(_table(200, tag="new").to_batches(max_chunksize=40)):
            yield batch
            if i == 3:
                seen.append(_checksum(_read(ObjectStorageHook(aws_conn_id=s3_conn_id), uri)))

    hook.write_dataset(uri, slow_batches(), schema=old.schema)  # streamed straight into the table
    assert seen == [_checksum(old)]
    assert _read(hook, uri).num_rows == 200


@pytest.mark.parametrize("where", ["s3", "local"])
@pytest.mark.parametrize("schema", [None, "fixed"])
def test_nothing_committed_is_an_error_never_zero_rows(where, schema, s3_conn_id, prefix, tmp_path) -> None:
    hook = ObjectStorageHook(aws_conn_id=s3_conn_id)
    uri = prefix if where == "s3" else (tmp_path / "ds").as_uri()

    def failing() -> Iterator[pa.RecordBatch]:
        yield from _table(100).to_batches(max_chunksize=30)
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError, match="source died"):
        hook.write_dataset(uri, failing(), schema=SCHEMA if schema else None)
    with pytest.raises(NoCommittedDatasetError, match=r"No committed dataset|never committed|Nothing at"):
        list(hook.iter_batches(uri))
    assert hook.dataset_info(uri) is None and not hook.is_table(uri)


def test_data_files_of_a_write_that_never_committed_are_refused(tmp_path: Path) -> None:
    """Delta's part files without a log are a half-written table, never read as complete."""
    folder = tmp_path / "orphan"
    folder.mkdir()
    pq.write_table(_table(5), folder / f"part-00000-{uuid.uuid4()}-c000.zstd.parquet")
    with pytest.raises(NoCommittedDatasetError, match="never committed"):
        list(ObjectStorageHook(aws_conn_id=None).iter_batches(folder.as_uri()))
    # a user's own file there is plain data
    pq.write_table(_table(3), folder / "export.parquet")
    assert sum(b.num_rows for b in ObjectStorageHook(aws_conn_id=None).iter_batches(folder.as_uri())) == 8


def test_a_spark_output_folder_with_its_success_marker_is_read_whole(tmp_path: Path) -> None:
    """
    Spark (Hadoop's FileOutputCommitter) names its files like a Delta write's and marks a finished
    job with ``_SUCCESS``: with the marker it is committed data, without it a job that did not finish.
    """
    folder = tmp_path / "spark_out"
    folder.mkdir()
    job = uuid.uuid4()
    for part, rows in enumerate((4, 7)):
        name = f"part-{part:05d}-{job}-c000.snappy.parquet"
        pq.write_table(_table(rows, start=100 * part), folder / name, compression="snappy")
        (folder / f".{name}.crc").write_bytes(b"crc")  # Spark's local checksum files
    hook = ObjectStorageHook(aws_conn_id=None)
    with pytest.raises(NoCommittedDatasetError, match=r"never committed.*_SUCCESS"):
        list(hook.iter_batches(folder.as_uri()))
    (folder / "_SUCCESS").write_bytes(b"")
    (folder / "._SUCCESS.crc").write_bytes(b"crc")
    read = pa.Table.from_batches(list(hook.iter_batches(folder.as_uri())))
    assert read.num_rows == 11
    assert sorted(read.column("id").to_pylist()) == sorted(
        _table(4).column("id").to_pylist() + _table(7, start=100).column("id").to_pylist()
    )


def test_a_write_finds_its_own_version_behind_many_later_commits(tmp_path: Path) -> None:
    """The version a write reports (and a hand-off XCom pins) is its own, however many writers followed."""
    from airflow_provider_mlops.datasets import delta

    hook = ObjectStorageHook(aws_conn_id=None)
    uri = (tmp_path / "busy").as_uri()
    for i in range(30):
        hook.write_dataset(uri, _table(1, start=i).to_batches(), mode="append")
    first = delta.commit_info(hook, uri, 0)[delta.WRITE_ID_KEY]
    assert delta._version_of(hook, uri, delta.open_table(hook, uri), first) == 0
    assert delta._version_of(hook, uri, delta.open_table(hook, uri), "no-such-write") is None


def test_a_failed_log_read_after_the_commit_neither_fails_the_write_nor_names_another_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write has landed: failing now would make a retry append the rows twice."""
    hook = ObjectStorageHook(aws_conn_id=None)
    uri = (tmp_path / "appended").as_uri()
    hook.write_dataset(uri, _table(1).to_batches(), mode="append")
    real = hook.get_bytes
    failures = {"left": 1}

    def flaky(entry: str) -> bytes:  # one GET of the new log entry fails: retried, the version found
        if entry.endswith("01.json") and failures["left"]:
            failures["left"] -= 1
            raise OSError("connection reset")
        return real(entry)

    monkeypatch.setattr(hook, "get_bytes", flaky)
    assert hook.write_dataset(uri, _table(1, start=1).to_batches(), mode="append")["version"] == 1

    def broken(entry: str) -> bytes:  # the log cannot be read at all: no version, no error
        raise OSError("connection reset")

    monkeypatch.setattr(hook, "get_bytes", broken)
    out = hook.write_dataset(uri, _table(1, start=2).to_batches(), mode="append")
    assert out["version"] is None and out["rows_written"] == 1
    monkeypatch.setattr(hook, "get_bytes", real)
    assert hook.table_version(uri) == 2
    assert sorted(_read(hook, uri).column("id").to_pylist()) == [0, 1, 2]


@pytest.mark.parametrize("schema", [None, "fixed"])
def test_before_commit_can_refuse_and_nothing_changes(tmp_path: Path, schema) -> None:
    hook = ObjectStorageHook(aws_conn_id=None)
    uri = (tmp_path / "ds").as_uri()
    hook.write_dataset(uri, _table(10).to_batches())

    def refuse(pending) -> None:
        assert pending.rows == 20
        raise ValueError("validation failed")

    with pytest.raises(ValueError, match="validation failed"):
        hook.write_dataset(
            uri, _table(20).to_batches(), before_commit=refuse, schema=SCHEMA if schema else None
        )
    assert _read(hook, uri).num_rows == 10
    assert hook.table_version(uri) == 0


def test_a_removed_committed_file_is_detected(tmp_path: Path) -> None:
    hook = ObjectStorageHook(aws_conn_id=None)
    uri = (tmp_path / "ds").as_uri()
    result = hook.write_dataset(uri, _table(100).to_batches())
    (tmp_path / "ds" / result["files"][0]).unlink()
    with pytest.raises((DatasetCorruptError, OSError), match=r"(?i)missing|not found|no such file"):
        list(hook.iter_batches(uri))


def test_fields_that_appear_late_become_columns(tmp_path: Path) -> None:
    hook = ObjectStorageHook(aws_conn_id=None)
    uri = (tmp_path / "ds").as_uri()
    first = pa.record_batch({"id": [1, 2], "x": [1, 2]})
    second = pa.record_batch({"id": [3], "x": [3.5], "tags": [["a", "b"]]})
    third = pa.record_batch({"id": [4]})
    hook.write_dataset(uri, iter([first, second, third]))
    back = _read(hook, uri)
    assert back.schema.names == ["id", "x", "tags"]
    assert back.column("x").type == pa.float64()
    assert back.sort_by("id").to_pylist() == [
        {"id": 1, "x": 1.0, "tags": None},
        {"id": 2, "x": 2.0, "tags": None},
        {"id": 3, "x": 3.5, "tags": ["a", "b"]},
        {"id": 4, "x": None, "tags": None},
    ]


def test_appending_a_wider_type_is_refused_by_name_never_cast(tmp_path: Path) -> None:
    """delta-rs would store 1.5 into an int64 column as 1: the write fails naming the column instead."""
    hook = ObjectStorageHook(aws_conn_id=None)
    uri = (tmp_path / "lake").as_uri()
    hook.write_dataset(uri, pa.table({"id": [1], "x": [1]}).to_batches())
    with pytest.raises(DatasetError, match=r"'x' is int64 .* double"):
        hook.write_dataset(uri, pa.table({"id": [2], "x": [1.5]}).to_batches(), mode="append")
    hook.write_dataset(uri, pa.table({"id": [3], "x": [3], "new": ["n"]}).to_batches(), mode="append")
    assert _read(hook, uri).sort_by("id").to_pylist() == [
        {"id": 1, "x": 1, "new": None},
        {"id": 3, "x": 3, "new": "n"},
    ]


@pytest.mark.parametrize("where", ["s3", "local"])
def test_storage_paths_keep_hash_question_mark_percent_and_space(where, s3_conn_id, prefix, tmp_path) -> None:
    hook = ObjectStorageHook(aws_conn_id=s3_conn_id)
    base = parse_uri(prefix if where == "s3" else str(tmp_path))
    names = ["run#1", "run#2", "a b", "q?x=1", "ünï 🚀"]
    for i, name in enumerate(names):
        hook.write_dataset(base.join(name), _table(i + 1, tag=name).to_batches())
    for i, name in enumerate(names):
        back = _read(hook, base.join(name))
        assert back.num_rows == i + 1, name
        assert back.column("s")[0].as_py().startswith(f"{name} row"), name
    # delta-rs reads a table path holding "%20" as " " on some calls: refused before anything is written
    for name in ("a%20b", "100%"):
        with pytest.raises(DatasetError, match="holds '%'"):
            hook.write_dataset(base.join(name), _table(1).to_batches())
        assert not hook.list_uris(base.join(name))


def test_a_type_conflict_turned_to_text_is_read_as_text(tmp_path: Path) -> None:
    hook = ObjectStorageHook(aws_conn_id=None)
    uri = (tmp_path / "ds").as_uri()
    batches = [pa.record_batch({"code": [1, 2]}), pa.record_batch({"code": ["A7", None]})]
    with pytest.raises(Exception, match="code"):
        hook.write_dataset(uri, iter(batches))
    assert hook.dataset_info(uri) is None
    hook.write_dataset(uri, iter(batches), type_conflict="string")
    assert sorted(_read(hook, uri).column("code").to_pylist(), key=str) == ["1", "2", "A7", None]


def test_connection_resets_on_uploads_are_retried_or_keep_the_previous_version(proxied, prefix: str) -> None:
    """The S3 endpoint drops the connection (no answer at all) on uploads: transient, then persistent."""
    hook, rules = proxied
    old = _table(120)
    hook.write_dataset(prefix, old.to_batches(max_chunksize=40))

    drops = {"left": 2}

    def transient(request: Request) -> Fault | None:
        if _is_data_put(request) and drops["left"] > 0:
            drops["left"] -= 1
            return Fault.reset()
        return None

    rules[0] = transient
    new = _table(150, tag="new")
    hook.write_dataset(prefix, new.to_batches(max_chunksize=40))
    rules[0] = None
    assert drops["left"] == 0
    assert _checksum(_read(hook, prefix)) == _checksum(new)

    rules[0] = lambda r: Fault.reset() if _is_data_put(r) else None
    with pytest.raises(Exception, match=r"(?i)connection|reset|closed|endpoint|retr|error"):
        hook.write_dataset(prefix, _table(150, tag="lost").to_batches(max_chunksize=40))
    rules[0] = None
    assert hook.table_version(prefix) == 1
    assert _checksum(_read(hook, prefix)) == _checksum(new)


@pytest.mark.parametrize("where", ["s3", "local"])
def test_a_retry_converges_and_every_version_stays_readable(where, s3_conn_id, prefix, tmp_path) -> None:
    """A task's retry replaces its own output: the clean run's rows; older versions by @vN / version=."""
    hook = ObjectStorageHook(aws_conn_id=s3_conn_id)
    uri = prefix if where == "s3" else (tmp_path / "ds").as_uri()
    clean = _table(80, tag="day1")
    hook.write_dataset(uri, clean.to_batches(max_chunksize=30))
    hook.write_dataset(uri, clean.to_batches(max_chunksize=30))  # the retry
    assert _checksum(_read(hook, uri)) == _checksum(clean)
    hook.write_dataset(uri, _table(10, tag="day1-rerun").to_batches())
    assert hook.table_version(uri) == 2
    assert _checksum(_read(hook, f"{uri}@v1")) == _checksum(clean)
    assert _checksum(pa.Table.from_batches(list(hook.iter_batches(uri, version=0)))) == _checksum(clean)
    assert hook.dataset_info(f"{uri}@v0")["rows"] == 80
    with pytest.raises(DatasetError, match="no version 7"):
        list(hook.iter_batches(uri, version=7))


@pytest.mark.parametrize("where", ["s3", "local"])
@pytest.mark.parametrize("mode", ["overwrite", "append"])
def test_a_zombie_and_its_retry_racing_on_one_table(where, mode, s3_conn_id, prefix, tmp_path) -> None:
    """
    Two writers of one table, interleaved so that both finish their data files before either
    commits: each commits a complete version or fails with a conflict; no committed version names a
    file that is gone, and the table holds one writer's complete rows (overwrite) or both (append).
    """
    hook = ObjectStorageHook(aws_conn_id=s3_conn_id)
    uri = prefix if where == "s3" else (tmp_path / "ds").as_uri()
    hook.write_dataset(uri, _table(40, tag="before").to_batches())
    barrier = threading.Barrier(2, timeout=60)
    tables = {"zombie": _table(300, start=1000, tag="zombie"), "retry": _table(300, start=2000, tag="retry")}
    outcome: dict[str, object] = {}

    def writer(name: str) -> None:
        def batches() -> Iterator[pa.RecordBatch]:
            yield from tables[name].to_batches(max_chunksize=100)
            barrier.wait()  # both have streamed every row: the commits race

        try:
            outcome[name] = ObjectStorageHook(aws_conn_id=s3_conn_id).write_dataset(
                uri, batches(), schema=tables[name].schema, mode=mode
            )["version"]
        except DatasetConflictError as err:
            outcome[name] = err

    threads = [threading.Thread(target=writer, args=(n,)) for n in tables]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    committed = [n for n, v in outcome.items() if isinstance(v, int)]
    assert committed, outcome
    assert all(isinstance(v, (int, DatasetConflictError)) for v in outcome.values()), outcome
    latest = hook.table_version(uri)
    assert latest == len(committed)
    for version in range(latest + 1):  # every committed version is complete and readable
        rows = _read(hook, f"{uri}@v{version}").num_rows
        assert rows in (40, 300, 340, 600, 640), (version, rows)
    final = _read(hook, uri)
    if mode == "overwrite":
        assert _checksum(final) in {_checksum(tables[n]) for n in committed}
    else:
        expected = pa.concat_tables([_table(40, tag="before"), *[tables[n] for n in committed]])
        assert _checksum(final) == _checksum(expected)


def test_large_files_go_up_in_parts_and_a_failed_part_keeps_the_previous_version(proxied, prefix) -> None:
    hook, rules = proxied
    old = _table(10)
    hook.write_dataset(prefix, old.to_batches())
    # ~12 MB of incompressible text: delta-rs uploads it in parts; part 2 always fails.
    big = pa.table({"id": list(range(12)), "s": [os.urandom(1 << 20).hex()[: 1 << 20] for _ in range(12)]})
    parts: list[str] = []

    def rule(request: Request) -> Fault | None:
        if "partNumber=" in request.path:
            parts.append(request.path)
            if "partNumber=2" in request.path:
                return Fault.fail(503)
        return None

    rules[0] = rule
    with pytest.raises(Exception, match=r"(?i)503|SlowDown|ServiceUnavailable|retr|error"):
        hook.write_dataset(prefix, big.to_batches(), compression=None)
    rules[0] = None
    assert parts, "no multipart upload was made"
    assert _checksum(_read(hook, prefix)) == _checksum(old)


def test_no_rows_and_no_columns_empties_a_table_or_commits_nothing(tmp_path: Path) -> None:
    """A record source that returned nothing: Delta needs a column, so only an existing table is emptied."""
    hook = ObjectStorageHook(aws_conn_id=None)
    uri = (tmp_path / "ds").as_uri()
    assert hook.write_dataset(uri, iter(()))["version"] is None
    with pytest.raises(NoCommittedDatasetError):
        list(hook.iter_batches(uri))
    hook.write_dataset(uri, _table(5).to_batches())
    emptied = hook.write_dataset(uri, iter(()))
    assert (emptied["version"], emptied["rows"]) == (1, 0)
    assert list(hook.iter_batches(uri)) == [] and hook.read_schema(uri) == SCHEMA


@pytest.mark.parametrize("where", ["s3", "local"])
def test_a_hand_off_keeps_the_order_of_its_rows(where, s3_conn_id, prefix, tmp_path) -> None:
    """delta-rs's writer interleaves the batches of one write; a hand-off is written in order."""
    hook = ObjectStorageHook(aws_conn_id=s3_conn_id)
    uri = prefix if where == "s3" else (tmp_path / "ds").as_uri()
    table = _table(20_000)
    hook.write_dataset(uri, table.to_batches(max_chunksize=700))  # staged (no schema)
    assert pa.Table.from_batches(list(hook.iter_batches(uri, batch_size=3_000))).column(
        "id"
    ).to_pylist() == list(range(20_000))
    hook.write_dataset(uri, reversed(table.to_batches(max_chunksize=900)), schema=SCHEMA)  # streamed
    ids = pa.Table.from_batches(list(hook.iter_batches(uri))).column("id").to_pylist()
    assert ids == [
        i for b in reversed(table.to_batches(max_chunksize=900)) for i in b.column("id").to_pylist()
    ]


def test_a_commit_whose_answer_is_lost_keeps_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The log entry lands but the call fails afterwards (an answer lost, a timeout just after): the
    version it made stays readable; its files are not deleted under it. The fault is injected (no
    storage server loses an answer on demand); the commit itself is delta-rs's, for real.
    """
    from deltalake import DeltaTable

    hook = ObjectStorageHook(aws_conn_id=None)
    uri = (tmp_path / "ds").as_uri()
    hook.write_dataset(uri, _table(40).to_batches())
    real = DeltaTable.create_write_transaction

    def commit_then_fail(self: DeltaTable, *args: object, **kwargs: object) -> None:
        real(self, *args, **kwargs)
        raise TimeoutError("the answer to the commit was lost")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", commit_then_fail)
    new = _table(60, tag="new")
    with pytest.raises(TimeoutError):
        hook.write_dataset(uri, new.to_batches(max_chunksize=20))
    monkeypatch.undo()
    assert hook.table_version(uri) == 1
    assert _checksum(_read(hook, uri)) == _checksum(new)  # every file of version 1 is there


def test_a_lost_commit_answer_behind_many_other_commits_keeps_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The commit lands, 60 other writers commit before the failed call is looked into: the write still
    finds its own commit (it searches every version since it began, not the newest few) and keeps
    its files, so the version it made stays whole.
    """
    from deltalake import DeltaTable

    hook = ObjectStorageHook(aws_conn_id=None)
    uri = (tmp_path / "busy").as_uri()
    hook.write_dataset(uri, _table(5).to_batches())
    real = DeltaTable.create_write_transaction
    others = {"running": False}

    def commit_then_others_then_fail(self: DeltaTable, *args: object, **kwargs: object) -> None:
        real(self, *args, **kwargs)
        if others["running"]:
            return
        others["running"] = True
        for i in range(60):
            hook.write_dataset(uri, _table(1, start=1000 + i).to_batches(), mode="append")
        raise TimeoutError("the answer to the commit was lost")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", commit_then_others_then_fail)
    mine = _table(30, start=500, tag="mine")
    with pytest.raises(TimeoutError):
        hook.write_dataset(uri, mine.to_batches(max_chunksize=10), mode="append")
    monkeypatch.undo()
    assert hook.table_version(uri) == 61
    read = _read(hook, uri)
    assert read.num_rows == 5 + 30 + 60  # every file of every version is there
    assert sorted(r for r in read.column("id").to_pylist() if 500 <= r < 530) == list(range(500, 530))


def test_a_column_of_distinct_values_is_not_held_in_a_dictionary(tmp_path: Path) -> None:
    """
    A hand-off of mostly distinct text (names, notes, ids as text) is written in plain pages once its
    dictionary passes 128 KB (Arrow's 1 MB let one row group's dictionary hold every value: hashing
    for nothing and a larger file); a column of few values keeps its dictionary; both read back exactly.
    """
    hook = ObjectStorageHook(aws_conn_id=None)
    uri = (tmp_path / "ds").as_uri()
    n = 40_000
    table = pa.table(
        {
            "unique": [hashlib.sha1(str(i).encode()).hexdigest()[:16] for i in range(n)],
            "few": ["a", "b", "c", "d"] * (n // 4),
        }
    )
    hook.write_dataset(uri, table.to_batches())
    assert pa.Table.from_batches(list(hook.iter_batches(uri))).equals(table)
    (part,) = (tmp_path / "ds").glob("*.parquet")
    chunks = pq.ParquetFile(part).metadata.row_group(0)
    dictionary_bytes = {
        chunks.column(i).path_in_schema: chunks.column(i).data_page_offset
        - chunks.column(i).dictionary_page_offset
        for i in range(chunks.num_columns)
    }
    assert dictionary_bytes["unique"] <= 140_000  # 128 KB of values (compressed), not all 40,000
    assert 0 < dictionary_bytes["few"] < 1_000
