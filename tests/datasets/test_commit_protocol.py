"""
The dataset commit protocol against a real S3 server (moto) and local folders, with faults injected
by a proxy in front of the server: a reader sees the last committed version or a clear error, never a
partial or empty one, and a failed write never destroys the previous version.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_mlops.datasets import (
    ATTEMPTS,
    MANIFEST,
    DatasetCorruptError,
    NoCommittedDatasetError,
)
from airflow_provider_mlops.hooks.s3 import S3Hook
from airflow_provider_mlops.storage.uri import parse_uri
from tests.conftest import set_connection
from tests.harness.proxy import Fault, Request, start_proxy
from tests.harness.servers import S3Server


def _table(n: int, *, start: int = 0, tag: str = "v") -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table({"id": ids, "s": [f"{tag} row {i}\nwith newline" for i in ids]})


def _checksum(table: pa.Table) -> str:
    digest = hashlib.sha256()
    for row in table.sort_by("id").to_pylist():
        digest.update(repr(sorted(row.items())).encode())
    return digest.hexdigest()


def _read(hook: S3Hook, uri: str) -> pa.Table:
    batches = list(hook.iter_batches(uri))
    schema = hook.read_schema(uri)
    return pa.Table.from_batches(batches, schema=schema)


@pytest.fixture
def proxied(s3_server: S3Server) -> Iterator[tuple[S3Hook, list]]:
    """An S3Hook whose requests pass through the fault proxy; set ``rules[0]`` to inject faults."""
    rules: list = [None]
    with start_proxy(s3_server.endpoint_url, rule=lambda r: rules[0](r) if rules[0] else None) as proxy:
        conn_id = set_connection(
            f"s3_proxy_{proxy.port}",
            conn_type="mlops_s3",
            login=s3_server.access_key,
            password=s3_server.secret_key,
            extra={"endpoint_url": proxy.endpoint_url, "region_name": s3_server.region},
        )
        yield S3Hook(aws_conn_id=conn_id), rules


@pytest.fixture
def prefix(s3_server: S3Server) -> str:
    return f"s3://{s3_server.bucket}/commit/{uuid.uuid4().hex[:10]}"


def _is_put_of(name: str) -> callable:
    def rule(request: Request) -> Fault | None:
        path = request.path.split("?", 1)[0]
        if request.method == "PUT" and path.endswith(name) and f"/{ATTEMPTS}/" in path:
            return Fault.fail(500)
        return None

    return rule


def test_failed_upload_keeps_the_previous_version(proxied, prefix: str) -> None:
    hook, rules = proxied
    old = _table(300)
    hook.write_dataset(prefix, old.to_batches(max_chunksize=50), max_rows_per_file=100)
    before = hook.read_manifest(prefix)

    rules[0] = _is_put_of("part-00001.parquet")  # every try of the second file fails
    with pytest.raises(Exception, match=r"500|InternalError"):
        hook.write_dataset(prefix, _table(300, tag="new").to_batches(max_chunksize=50), max_rows_per_file=100)
    rules[0] = None

    assert hook.read_manifest(prefix) == before
    back = _read(hook, prefix)
    assert back.num_rows == 300 and _checksum(back) == _checksum(old)
    # the failed attempt left no file behind
    files = hook.list_uris(prefix)
    assert sorted(f[len(prefix) + 1 :] for f in files) == sorted([MANIFEST, *before["files"]])


def test_failed_multipart_part_keeps_the_previous_version(proxied, prefix: str) -> None:
    hook, rules = proxied
    old = _table(10)
    hook.write_dataset(prefix, old.to_batches())
    # ~12 MB of incompressible bytes: a multipart upload of two 8 MB parts; part 2 always fails.
    big = pa.table({"id": list(range(12)), "s": [os.urandom(1 << 20).hex()[: 1 << 20] for _ in range(12)]})
    rules[0] = lambda r: Fault.fail(503) if r.method == "PUT" and "partNumber=2" in r.path else None
    with pytest.raises(Exception, match=r"503|SlowDown|ServiceUnavailable|InternalError"):
        hook.write_dataset(prefix, big.to_batches(), compression=None)
    rules[0] = None
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
    result = hook.write_dataset(prefix, table.to_batches(max_chunksize=40), max_rows_per_file=100)
    rules[0] = None
    assert failures["left"] == 0
    assert result["rows"] == 250
    assert _checksum(_read(hook, prefix)) == _checksum(table)


@pytest.mark.parametrize("where", ["s3", "local"])
def test_a_reader_during_a_write_sees_the_previous_version(where: str, s3_conn_id, prefix, tmp_path) -> None:
    hook = S3Hook(aws_conn_id=s3_conn_id)
    uri = prefix if where == "s3" else (tmp_path / "ds").as_uri()
    old = _table(120)
    hook.write_dataset(uri, old.to_batches(max_chunksize=40), max_rows_per_file=50)
    seen: list[str] = []

    def slow_batches() -> Iterator[pa.RecordBatch]:
        for i, batch in enumerate(_table(200, tag="new").to_batches(max_chunksize=40)):
            yield batch
            if i == 3:  # two files of the new version are complete by now
                seen.append(_checksum(_read(S3Hook(aws_conn_id=s3_conn_id), uri)))

    hook.write_dataset(uri, slow_batches(), max_rows_per_file=50)
    assert seen == [_checksum(old)]
    assert _read(hook, uri).num_rows == 200


@pytest.mark.parametrize("where", ["s3", "local"])
def test_nothing_committed_is_an_error_never_zero_rows(where: str, s3_conn_id, prefix, tmp_path) -> None:
    hook = S3Hook(aws_conn_id=s3_conn_id)
    uri = prefix if where == "s3" else (tmp_path / "ds").as_uri()

    def failing() -> Iterator[pa.RecordBatch]:
        yield from _table(100).to_batches(max_chunksize=30)
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError, match="source died"):
        hook.write_dataset(uri, failing(), max_rows_per_file=40)
    with pytest.raises(NoCommittedDatasetError, match=r"No committed dataset|Nothing at"):
        list(hook.iter_batches(uri))
    assert hook.read_manifest(uri) is None


def test_part_files_without_a_manifest_are_refused(tmp_path: Path) -> None:
    """What a writer before the commit protocol left after a failure: never read as complete."""
    folder = tmp_path / "legacy"
    folder.mkdir()
    pq.write_table(_table(5), folder / "part-00000.parquet")
    with pytest.raises(NoCommittedDatasetError, match="never committed"):
        list(S3Hook(aws_conn_id=None).iter_batches(folder.as_uri()))
    # a user's own file there is plain data
    pq.write_table(_table(3), folder / "export.parquet")
    assert sum(b.num_rows for b in S3Hook(aws_conn_id=None).iter_batches(folder.as_uri())) == 8


def test_before_commit_can_refuse_and_nothing_changes(tmp_path: Path) -> None:
    hook = S3Hook(aws_conn_id=None)
    uri = (tmp_path / "ds").as_uri()
    hook.write_dataset(uri, _table(10).to_batches())

    def refuse(manifest) -> None:
        assert manifest.rows == 20
        raise ValueError("validation failed")

    with pytest.raises(ValueError, match="validation failed"):
        hook.write_dataset(uri, _table(20).to_batches(), before_commit=refuse)
    assert _read(hook, uri).num_rows == 10
    assert sorted(p.name for p in (tmp_path / "ds" / ATTEMPTS).iterdir()) == [
        hook.read_manifest(uri)["attempt"]
    ]


def test_a_changed_committed_file_is_detected(tmp_path: Path) -> None:
    hook = S3Hook(aws_conn_id=None)
    uri = (tmp_path / "ds").as_uri()
    result = hook.write_dataset(uri, _table(100).to_batches(), max_rows_per_file=60)
    victim = tmp_path / "ds" / result["files"][1]
    pq.write_table(_table(7), victim)
    with pytest.raises(DatasetCorruptError, match=r"bytes|rows"):
        list(hook.iter_batches(uri))
    victim.unlink()
    with pytest.raises(DatasetCorruptError, match="missing"):
        list(hook.iter_batches(uri))


def test_fields_that_appear_late_become_columns(tmp_path: Path) -> None:
    hook = S3Hook(aws_conn_id=None)
    uri = (tmp_path / "ds").as_uri()
    first = pa.record_batch({"id": [1, 2], "x": [1, 2]})
    second = pa.record_batch({"id": [3], "x": [3.5], "tags": [["a", "b"]]})
    third = pa.record_batch({"id": [4]})
    result = hook.write_dataset(uri, iter([first, second, third]))
    assert len(result["files"]) == 2  # a new file when the schema evolved
    back = _read(hook, uri)
    assert back.schema.names == ["id", "x", "tags"]
    assert back.column("x").type == pa.float64()
    assert back.to_pylist() == [
        {"id": 1, "x": 1.0, "tags": None},
        {"id": 2, "x": 2.0, "tags": None},
        {"id": 3, "x": 3.5, "tags": ["a", "b"]},
        {"id": 4, "x": None, "tags": None},
    ]


@pytest.mark.parametrize("where", ["s3", "local"])
def test_storage_paths_keep_hash_question_mark_percent_and_space(where, s3_conn_id, prefix, tmp_path) -> None:
    hook = S3Hook(aws_conn_id=s3_conn_id)
    base = parse_uri(prefix if where == "s3" else str(tmp_path))
    names = ["run#1", "run#2", "a b", "a%20b", "q?x=1", "100%"]
    for i, name in enumerate(names):
        hook.write_dataset(base.join(name), _table(i + 1, tag=name).to_batches())
    for i, name in enumerate(names):
        back = _read(hook, base.join(name))
        assert back.num_rows == i + 1, name
        assert back.column("s")[0].as_py().startswith(f"{name} row"), name


def test_a_type_conflict_turned_to_text_is_read_as_text(tmp_path: Path) -> None:
    hook = S3Hook(aws_conn_id=None)
    uri = (tmp_path / "ds").as_uri()
    batches = [pa.record_batch({"code": [1, 2]}), pa.record_batch({"code": ["A7", None]})]
    with pytest.raises(Exception, match="code"):
        hook.write_dataset(uri, iter(batches))
    assert hook.read_manifest(uri) is None
    hook.write_dataset(uri, iter(batches), type_conflict="string")
    assert _read(hook, uri).column("code").to_pylist() == ["1", "2", "A7", None]


def test_connection_resets_on_uploads_are_retried_or_keep_the_previous_version(proxied, prefix: str) -> None:
    """The S3 endpoint drops the connection (no answer at all) on part uploads: transient, then persistent."""
    hook, rules = proxied
    old = _table(120)
    hook.write_dataset(prefix, old.to_batches(max_chunksize=40), max_rows_per_file=50)
    before = hook.read_manifest(prefix)

    drops = {"left": 2}

    def transient(request: Request) -> Fault | None:
        if request.method == "PUT" and f"/{ATTEMPTS}/" in request.path and drops["left"] > 0:
            drops["left"] -= 1
            return Fault.reset()
        return None

    rules[0] = transient
    new = _table(150, tag="new")
    hook.write_dataset(prefix, new.to_batches(max_chunksize=40), max_rows_per_file=50)
    rules[0] = None
    assert drops["left"] == 0
    assert _checksum(_read(hook, prefix)) == _checksum(new)

    committed = hook.read_manifest(prefix)
    rules[0] = lambda r: Fault.reset() if r.method == "PUT" and "part-00001" in r.path else None
    with pytest.raises(Exception, match=r"(?i)connection|reset|closed|endpoint"):
        hook.write_dataset(prefix, _table(150, tag="lost").to_batches(max_chunksize=40), max_rows_per_file=50)
    rules[0] = None
    assert hook.read_manifest(prefix) == committed != before
    assert _checksum(_read(hook, prefix)) == _checksum(new)
