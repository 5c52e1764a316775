from __future__ import annotations

import datetime as dt
import uuid

import pyarrow as pa
import pymongo
import pytest
from bson import ObjectId

from airflow_provider_mlops.hooks.mongo import MongoBatchHook
from airflow_provider_mlops.sinks.contract import WriteContractError
from airflow_provider_mlops.utils.arrow import SchemaMismatchError
from tests.conftest import set_connection
from tests.harness.servers import MongoServer, free_port


@pytest.fixture
def hook(mongo_conn_id: str) -> MongoBatchHook:
    return MongoBatchHook(mongo_conn_id=mongo_conn_id)


@pytest.fixture
def collection() -> str:
    return f"c_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def raw(mongo_server: MongoServer):
    client = pymongo.MongoClient(mongo_server.uri, tz_aware=True)
    yield client["mlops_test"]
    client.close()


def test_test_connection_succeeds(hook: MongoBatchHook) -> None:
    ok, message = hook.test_connection()
    assert ok, message


def test_wrong_password_is_reported_without_the_secret(mongo_server: MongoServer) -> None:
    if not mongo_server.direct:
        pytest.skip("credentials come from MONGO_URI")
    secret = "Wr0ng-Mongo-pw-42"
    conn_id = set_connection(
        "mongo_wrong_pw",
        conn_type="mongo",
        host=mongo_server.host,
        port=mongo_server.port,
        login=mongo_server.user,
        password=secret,
        schema="x",
        extra={"directConnection": "true", "authSource": "admin", "serverSelectionTimeoutMS": "3000"},
    )
    ok, message = MongoBatchHook(conn_id).test_connection()
    assert not ok
    assert "Authentication failed" in message
    assert secret not in message


def test_closed_port_is_reported_readably() -> None:
    port = free_port()
    conn_id = set_connection(
        "mongo_closed",
        conn_type="mongo",
        host="127.0.0.1",
        port=port,
        login="u",
        password="s3cret-mongo",
        extra={"directConnection": True, "serverSelectionTimeoutMS": 500},
    )
    ok, message = MongoBatchHook(conn_id).test_connection()
    assert not ok
    assert f"127.0.0.1:{port}" in message
    assert "refused" in message.lower()
    assert "s3cret-mongo" not in message
    assert len(message) < 200, "the topology dump is cut"


def test_extras_are_typed_and_uris_are_built_correctly() -> None:
    conn_id = set_connection(
        "mongo_typed",
        conn_type="mongo",
        host="a.example.com,b.example.com:27018",
        port=27017,
        login="us@r",
        password="p:w/d?",
        schema="app",
        extra={
            "replicaSet": "rs0",
            "tls": "false",
            "ssl": "false",
            "retryWrites": "0",
            "serverSelectionTimeoutMS": "1500",
        },
    )
    hook = MongoBatchHook(conn_id)
    assert hook.get_uri() == "mongodb://us%40r:p%3Aw%2Fd%3F@a.example.com:27017,b.example.com:27018/app"
    options = hook._client_options()
    assert "tls" not in options, "a false toggle leaves TLS to pymongo (off for mongodb://)"
    assert options["retryWrites"] is False
    assert options["serverSelectionTimeoutMS"] == 1500
    assert options["replicaSet"] == "rs0"

    srv = MongoBatchHook(
        set_connection(
            "mongo_srv",
            conn_type="mongo",
            host="cluster0.abc.mongodb.net",
            port=27017,
            login="u",
            password="p",
            schema="db",
            extra={"srv": "true"},
        )
    )
    assert srv.get_uri() == "mongodb+srv://u:p@cluster0.abc.mongodb.net/db"

    bad = MongoBatchHook(set_connection("mongo_badbool", conn_type="mongo", host="h", extra={"tls": "maybe"}))
    with pytest.raises(ValueError, match="'tls' must be a boolean"):
        bad._client_options()


def test_upsert_twice_leaves_the_same_documents(hook, collection, raw) -> None:
    batch = pa.RecordBatch.from_pydict({"id": [1, 2, 3], "v": ["a", "b", "c"]})
    first = hook.write_batches(collection, [batch], mode="upsert", keys=["id"])
    assert first["upserted"] == 3
    snapshot = sorted((d["id"], d["v"], d["_id"]) for d in raw[collection].find())
    second = hook.write_batches(collection, [batch], mode="upsert", keys=["id"])
    assert second["upserted"] == 0
    assert second["matched"] == 3
    assert sorted((d["id"], d["v"], d["_id"]) for d in raw[collection].find()) == snapshot


def test_insert_in_chunks_and_replace_partition(hook, collection, raw) -> None:
    batch = pa.RecordBatch.from_pydict({"ds": ["d1"] * 2500, "n": list(range(2500))})
    counts = hook.write_batches(collection, [batch], chunk_size=1000)
    assert counts["inserted"] == 2500
    assert raw[collection].count_documents({}) == 2500
    other = pa.RecordBatch.from_pydict({"ds": ["d2"], "n": [0]})
    hook.write_batches(collection, [other])
    counts = hook.write_batches(
        collection, [batch.slice(0, 10)], mode="replace_partition", partition={"ds": "d1"}
    )
    assert counts["deleted"] == 2500
    assert counts["inserted"] == 10
    assert raw[collection].count_documents({"ds": "d1"}) == 10
    assert raw[collection].count_documents({"ds": "d2"}) == 1


@pytest.mark.parametrize("transactions", [True, False])
@pytest.mark.parametrize("kind", ["date", "timestamp"])
def test_replace_partition_of_a_date_column_by_the_ds_string(
    hook, collection, raw, transactions, kind
) -> None:
    # The docs' pattern partition={"day": "{{ ds }}"} on a DATE (or timestamp) column: the documents
    # hold BSON dates, so the partition is matched as one; re-running the day converges.
    def day(value: str, ids: list[int]) -> pa.RecordBatch:
        when = dt.date.fromisoformat(value)
        column = (
            pa.array([when] * len(ids), pa.date32())
            if kind == "date"
            else pa.array(
                [dt.datetime(when.year, when.month, when.day)] * len(ids), pa.timestamp("us", "UTC")
            )
        )
        return pa.RecordBatch.from_arrays([pa.array(ids, pa.int64()), column], names=["id", "day"])

    hook.write_batches(
        collection, [day("2026-01-01", [1, 2]), day("2026-01-02", [3])], transactions=transactions
    )
    for _ in range(2):
        counts = hook.write_batches(
            collection,
            [day("2026-01-01", [4, 5, 6])],
            mode="replace_partition",
            partition={"day": "2026-01-01"},
            transactions=transactions,
        )
        assert counts["rows"] == 3
    assert sorted(d["id"] for d in raw[collection].find()) == [3, 4, 5, 6]
    # a row of another day is still refused
    with pytest.raises(WriteContractError, match="must belong to the partition"):
        hook.write_batches(
            collection,
            [day("2026-01-02", [7])],
            mode="replace_partition",
            partition={"day": "2026-01-01"},
            transactions=transactions,
        )
    assert sorted(d["id"] for d in raw[collection].find()) == [3, 4, 5, 6]


def test_find_and_aggregate_stream_bounded_batches(hook, collection, raw) -> None:
    raw[collection].insert_many([{"n": i, "g": i % 3, "sub": {"x": i}} for i in range(1000)])
    batches = list(
        hook.iter_batches(collection, filter={"n": {"$gte": 100}}, projection={"_id": 0}, batch_size=128)
    )
    assert sum(b.num_rows for b in batches) == 900
    assert max(b.num_rows for b in batches) <= 128
    assert batches[0].schema.field("sub").type == pa.string()
    agg = pa.Table.from_batches(
        list(
            hook.iter_batches(
                collection,
                pipeline=[{"$group": {"_id": "$g", "total": {"$sum": "$n"}}}, {"$sort": {"_id": 1}}],
            )
        )
    )
    assert agg.to_pylist() == [
        {"_id": 0, "total": 166833},
        {"_id": 1, "total": 166167},
        {"_id": 2, "total": 166500},
    ]
    nested = next(hook.iter_batches(collection, batch_size=5, nested="struct", sort=[("n", 1)]))
    assert pa.types.is_struct(nested.schema.field("sub").type)
    assert isinstance(nested.column("_id")[0].as_py(), str)
    assert ObjectId.is_valid(nested.column("_id")[0].as_py())


def test_a_field_most_documents_have_but_the_first_ones_lack_is_kept(hook, collection, raw) -> None:
    # the case: `tags` on 280 of 300 documents, the first 20 without it
    raw[collection].insert_many(
        [{"n": i} if i < 20 else {"n": i, "tags": [f"t{i}", "x"], "meta": {"src": "api"}} for i in range(300)]
    )
    (batch,) = hook.iter_batches(collection, projection={"_id": 0}, sort=[("n", 1)])
    assert batch.schema.names == ["n", "tags", "meta"]
    assert batch.column("tags").null_count == 20
    assert batch.column("tags")[20].as_py() == '["t20","x"]'
    batches = hook.iter_batches(
        collection, projection={"_id": 0}, sort=[("n", 1)], nested="struct", batch_size=7
    )
    # the first batches lack the columns (readers fill them with null, as concat_tables does)
    structs = pa.concat_tables([pa.Table.from_batches([b]) for b in batches], promote_options="default")
    assert structs.column("tags").to_pylist()[299] == ["t299", "x"]
    assert structs.column("meta").to_pylist()[:21] == [None] * 20 + [{"src": "api"}]


def test_a_field_appearing_late_becomes_a_column_and_conflicts_name_the_document(
    hook, collection, raw
) -> None:
    raw[collection].insert_many([{"n": i} for i in range(10)] + [{"n": 10, "late": "x"}])
    batches = list(hook.iter_batches(collection, projection={"_id": 0}, batch_size=5, sort=[("n", 1)]))
    assert [b.schema.names for b in batches] == [["n"], ["n"], ["n", "late"]]
    assert batches[-1].column("late").to_pylist() == ["x"]

    # An explicit schema is a contract: an undeclared field is an error, or ignored by choice.
    schema = pa.schema([("n", pa.int64())])
    with pytest.raises(SchemaMismatchError, match=r"'late' of record 10 is not in the schema"):
        list(hook.iter_batches(collection, projection={"_id": 0}, schema=schema, sort=[("n", 1)]))
    table = pa.Table.from_batches(
        list(hook.iter_batches(collection, projection={"_id": 0}, schema=schema, extra="ignore"))
    )
    assert table.schema == schema
    assert table.num_rows == 11

    # A type that no lossless type holds is named with the document's _id and value.
    other = raw[f"{collection}_conflict"]
    ids = other.insert_many([{"v": 1}, {"v": 2.5}, {"v": "n/a"}]).inserted_ids
    with pytest.raises(SchemaMismatchError, match=rf"'v'.*'n/a'.*record 2 \(_id='{ids[2]}'\)"):
        list(hook.iter_batches(f"{collection}_conflict", sort=[("_id", 1)], batch_size=2))
    text = pa.Table.from_batches(
        list(hook.iter_batches(f"{collection}_conflict", sort=[("_id", 1)], type_conflict="string"))
    )
    assert text.column("v").to_pylist() == ["1", "2.5", "n/a"]
