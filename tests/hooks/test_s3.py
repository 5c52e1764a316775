from __future__ import annotations

import os
import uuid

import boto3
import pyarrow as pa
import pytest

from airflow_provider_mlops.datasets import DELTA_LOG
from airflow_provider_mlops.hooks.s3 import ObjectStorageHook, parse_uri
from tests.conftest import set_connection
from tests.harness.servers import S3Server, free_port


@pytest.fixture
def hook(s3_conn_id: str) -> ObjectStorageHook:
    return ObjectStorageHook(aws_conn_id=s3_conn_id)


@pytest.fixture
def prefix(s3_server: S3Server) -> str:
    return f"s3://{s3_server.bucket}/t/{uuid.uuid4().hex[:10]}"


def _table(n: int) -> pa.Table:
    return pa.table({"id": list(range(n)), "s": [f"row {i}" for i in range(n)]})


def test_parse_uri() -> None:
    assert parse_uri("s3://bkt/a/b.parquet").path == "bkt/a/b.parquet"
    assert parse_uri("file:///tmp/x%20y").key == "/tmp/x y"
    assert parse_uri("s3://bkt/run#1?x=%20").key == "run#1?x=%20"
    assert parse_uri("file:///tmp/run#1").key == "/tmp/run#1"
    assert parse_uri("/tmp/a b%c#d?e").uri == "file:///tmp/a%20b%25c%23d%3Fe"
    assert parse_uri("relative/dir").key == os.path.abspath("relative/dir")
    with pytest.raises(ValueError, match="Unsupported storage URI"):
        parse_uri("gs://bucket/x")


def test_test_connection_succeeds(hook: ObjectStorageHook) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    assert "mlops-test" in message


def test_missing_bucket_wrong_secret_and_closed_port(s3_auth_server: S3Server) -> None:
    s3_server = s3_auth_server
    base = {"conn_type": "aws", "login": s3_server.access_key}
    missing = set_connection(
        "s3_missing",
        **base,
        password=s3_server.secret_key,
        extra={"endpoint_url": s3_server.endpoint_url, "bucket": "no-such-bucket"},
    )
    ok, message = ObjectStorageHook(missing).test_connection()
    assert not ok
    assert message == "Bucket 'no-such-bucket' does not exist"

    wrong = set_connection(
        "s3_wrong",
        **base,
        password="Wr0ng-S3-secret-value",
        extra={"endpoint_url": s3_server.endpoint_url, "bucket": s3_server.bucket},
    )
    ok, message = ObjectStorageHook(wrong).test_connection()
    assert not ok
    assert "Access denied" in message
    assert "Wr0ng-S3-secret-value" not in message

    port = free_port()
    closed = set_connection(
        "s3_closed",
        **base,
        password="Wr0ng-S3-secret-value",
        extra={"endpoint_url": f"http://127.0.0.1:{port}", "bucket": "b"},
    )
    ok, message = ObjectStorageHook(closed).test_connection()
    assert not ok
    assert f"127.0.0.1:{port}" in message
    assert "Wr0ng-S3-secret-value" not in message


def _names(files: list[str]) -> list[str]:
    return [f.rsplit("/", 1)[1] for f in files]


def test_rewriting_a_dataset_replaces_it(hook: ObjectStorageHook, prefix: str) -> None:
    first = hook.write_dataset(prefix, _table(25).to_batches(max_chunksize=7))
    assert first["rows"] == 25 and first["version"] == 0 and first["format"] == "delta"
    assert all(f.startswith("part-") and f.endswith(".parquet") for f in first["files"])
    second = hook.write_dataset(prefix, _table(5).to_batches())
    assert second["version"] == 1 and second["rows"] == 5
    assert pa.Table.from_batches(list(hook.iter_batches(prefix))).num_rows == 5
    info = hook.dataset_info(prefix)
    assert info["rows"] == 5 and info["files"] == second["files"]
    assert info["schema"][0] == {"name": "id", "type": "int64", "nullable": True}
    # the replaced version's files stay for time travel until a vacuum removes them
    assert sum(b.num_rows for b in hook.iter_batches(f"{prefix}@v0")) == 25
    keys = [u[len(prefix) + 1 :] for u in hook.list_uris(prefix)]
    assert sorted(k for k in keys if k.startswith(DELTA_LOG)) == [
        f"{DELTA_LOG}/00000000000000000000.json",
        f"{DELTA_LOG}/00000000000000000001.json",
    ]
    assert sorted(k for k in keys if not k.startswith(DELTA_LOG)) == sorted(first["files"] + second["files"])
    assert hook.vacuum_dataset(prefix, retention_hours=0, dry_run=True) == first["files"]


def test_empty_dataset_keeps_its_schema(hook: ObjectStorageHook, prefix: str) -> None:
    schema = pa.schema([("id", pa.int64())])
    result = hook.write_dataset(prefix, iter(()), schema=schema)
    assert result["rows"] == 0
    assert list(hook.iter_batches(prefix)) == []
    assert hook.dataset_info(prefix)["schema"] == [{"name": "id", "type": "int64", "nullable": True}]


def test_multipart_upload_of_a_large_object(
    hook: ObjectStorageHook, prefix: str, s3_server: S3Server
) -> None:
    data = os.urandom(12 << 20)
    stream = hook.open_output_stream(f"{prefix}/big.bin", part_size=5 << 20)
    for offset in range(0, len(data), 1 << 20):
        stream.write(data[offset : offset + (1 << 20)])
    assert not hook.exists(f"{prefix}/big.bin"), "nothing is visible before close"
    stream.close()
    assert len(stream.__dict__["parts"]) == 3
    assert hook.get_bytes(f"{prefix}/big.bin") == data


def test_aborted_stream_leaves_nothing(hook: ObjectStorageHook, prefix: str, tmp_path) -> None:
    for uri in (f"{prefix}/aborted.bin", (tmp_path / "aborted.bin").as_uri()):
        stream = hook.open_output_stream(uri, part_size=5 << 20)
        stream.write(os.urandom(6 << 20))
        stream.abort()
        assert not hook.exists(uri)
    assert list(tmp_path.iterdir()) == []


def test_objects_put_get_copy_list_delete(hook: ObjectStorageHook, prefix: str, tmp_path) -> None:
    local = (tmp_path / "a" / "b.txt").as_uri()
    hook.put_bytes(local, b"hello")
    hook.copy(local, f"{prefix}/copied/b.txt")
    hook.copy(f"{prefix}/copied/b.txt", f"{prefix}/copied/c.txt")
    hook.copy(f"{prefix}/copied/c.txt", (tmp_path / "back.txt").as_uri())
    assert (tmp_path / "back.txt").read_bytes() == b"hello"
    assert [u.rsplit("/", 1)[1] for u in hook.list_uris(f"{prefix}/copied")] == ["b.txt", "c.txt"]
    assert hook.delete_prefix(f"{prefix}/copied") == 2
    assert hook.list_uris(f"{prefix}/copied") == []


def test_local_and_s3_datasets_read_each_format(hook: ObjectStorageHook, prefix: str, tmp_path) -> None:
    table = _table(100)
    for fmt in ("parquet", "csv", "jsonl"):
        for uri in (f"{prefix}/{fmt}", (tmp_path / fmt).as_uri()):
            hook.write_dataset(uri, table.to_batches(max_chunksize=30), format=fmt)
            back = pa.Table.from_batches(
                list(hook.iter_batches(uri, format=fmt, batch_size=16, schema=table.schema))
            )
            assert back.sort_by("id").equals(table), (fmt, uri)


def test_boto_and_pyarrow_see_the_same_objects(
    hook: ObjectStorageHook, prefix: str, s3_server: S3Server
) -> None:
    hook.write_dataset(prefix, _table(3).to_batches())
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name="us-east-1",
    )
    location = parse_uri(prefix)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=location.bucket, Prefix=location.key)["Contents"]]
    files = hook.dataset_info(prefix)["files"]
    assert sorted(k[len(location.key) + 1 :] for k in keys) == sorted(
        [f"{DELTA_LOG}/00000000000000000000.json", *files]
    )


def test_role_arn_and_profile_of_an_aws_connection_are_used(
    s3_server: S3Server, tmp_path, monkeypatch
) -> None:
    """The amazon provider's extras are honoured (moto's STS issues the role's keys), never ignored."""
    role = set_connection(
        "s3_role",
        conn_type="aws",
        login=s3_server.access_key,
        password=s3_server.secret_key,
        extra={
            "endpoint_url": s3_server.endpoint_url,
            "role_arn": "arn:aws:iam::123456789012:role/mlops-writer",
            "region_name": "us-east-1",
        },
    )
    hook = ObjectStorageHook(role)
    assert hook.settings["access_key"] != s3_server.access_key
    assert hook.settings["session_token"]
    uri = f"s3://{s3_server.bucket}/role/{uuid.uuid4().hex[:8]}"
    hook.write_dataset(uri, _table(3).to_batches())
    assert sum(b.num_rows for b in hook.iter_batches(uri)) == 3

    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[mlops]\naws_access_key_id = {s3_server.access_key}\naws_secret_access_key = {s3_server.secret_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    profile = set_connection(
        "s3_profile", conn_type="aws", extra={"endpoint_url": s3_server.endpoint_url, "profile_name": "mlops"}
    )
    assert ObjectStorageHook(profile).settings["access_key"] == s3_server.access_key

    saml = set_connection(
        "s3_saml", conn_type="aws", extra={"role_arn": "arn:x", "assume_role_method": "assume_role_with_saml"}
    )
    with pytest.raises(ValueError, match=r"assume_role_with_saml.*not supported"):
        ObjectStorageHook(saml).settings


def test_a_hand_off_is_split_into_files_of_max_rows_per_file(hook: ObjectStorageHook, prefix: str) -> None:
    from airflow_provider_mlops.datasets.delta import add_actions, open_table

    result = hook.write_dataset(prefix, _table(25).to_batches(max_chunksize=7), max_rows_per_file=10)
    actions = add_actions(open_table(hook, prefix)).sort_by("path")
    assert actions.column("num_records").to_pylist() == [10, 10, 5]
    assert sorted(actions.column("path").to_pylist()) == result["files"]
    assert pa.Table.from_batches(list(hook.iter_batches(prefix))).column("id").to_pylist() == list(range(25))
