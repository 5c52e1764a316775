"""
One benchmark case per process: ``python -m benchmarks.cases NAME '{json args}'``.

Each case prints one JSON line: rows, seconds, rows_per_s and peak_rss_mb (the process's own
ru_maxrss, so imports count: that is what a worker pays).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CASES: dict[str, Callable[[dict[str, Any]], Any]] = {}
WARM_FOR: dict[str, tuple[str, ...]] = {}

# Imported before the clock starts, by every case: what a worker has loaded before execute() runs.
# The provider first, as Airflow's provider discovery imports it before any task code (it picks
# Arrow's allocator before pyarrow is imported).
WARM = (
    "airflow_provider_mlops",
    "airflow.sdk",
    "pyarrow",
    "pyarrow.parquet",
    "airflow_provider_mlops.utils.arrow",
    "airflow_provider_mlops.hooks.s3",
)
# ...and per system, the driver and hook the case's task imports anyway (their memory counts in its
# peak, their import time does not). pyarrow.dataset (and pandas with it) is not among them: a path
# that needs it pays for it on the clock.
PG = (
    "pyarrow.csv",
    "psycopg",
    "adbc_driver_manager",
    "adbc_driver_postgresql",
    "airflow_provider_mlops.hooks.postgres",
)
MONGO = ("pymongo", "airflow_provider_mlops.hooks.mongo")
S3 = ("boto3",)
HTTP = ("requests", "tenacity", "airflow_provider_mlops.hooks.http")
SQLITE = ("sqlite3", "airflow.providers.sqlite.hooks.sqlite", "airflow_provider_mlops.hooks.sql")


def case(*warm: str) -> Callable[[Callable[[dict[str, Any]], Any]], Callable[[dict[str, Any]], Any]]:
    def register(func: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        CASES[func.__name__] = func
        WARM_FOR[func.__name__] = warm
        return func

    return register


def _connections(args: dict[str, Any]) -> None:
    for conn_id, fields in args.get("connections", {}).items():
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(fields)


def _parquet_batches(path: str, batch_size: int = 50_000) -> Any:
    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

    return ObjectStorageHook(aws_conn_id=None).iter_batches(path, batch_size=batch_size)


# ------------------------------------------------------------------------------------------ postgres
@case(*PG)
def pg_load_copy(args: dict[str, Any]) -> int:
    """The provider: Parquet -> PostgresBatchHook.write_batches (COPY in one transaction)."""
    from airflow_provider_mlops.hooks.postgres import PostgresBatchHook

    hook = PostgresBatchHook(postgres_conn_id="bench_pg", load_engine=args.get("engine", "auto"))
    return hook.write_batches(
        args["table"],
        _parquet_batches(args["parquet"]),
        mode=args.get("mode", "append"),
        keys=args.get("keys"),
        staging=args.get("staging"),
    )["rows"]


@case(*PG)
def pg_raw_copy_text(args: dict[str, Any]) -> int:
    """Baseline: the same rows pre-serialized as COPY text, streamed with psycopg's copy.write."""
    import psycopg

    with psycopg.connect(args["dsn"]) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {args['table']} FROM STDIN") as copy, open(args["copy_text"], "rb") as handle:
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        conn.commit()
    return int(args["rows"])


@case(*PG)
def pg_insert_rows(args: dict[str, Any]) -> int:
    """Baseline: common-sql's insert_rows (executemany in commits of 1,000) on a subset."""
    import pyarrow.parquet as pq
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from airflow_provider_mlops.hooks.postgres import PostgresBatchHook

    table = pq.read_table(args["parquet"]).slice(0, int(args["subset"]))
    rows = [tuple(r.values()) for r in table.to_pylist()]
    hook = PostgresBatchHook(postgres_conn_id="bench_pg", log_sql=False)
    # common-sql's default is one INSERT per row; psycopg 3 pipelines executemany when enabled.
    hook.supports_executemany = bool(args.get("executemany", False))
    DbApiHook.insert_rows(hook, args["table"], rows, target_fields=table.column_names, commit_every=1000)
    return len(rows)


@case(*PG)
def pg_extract_parquet(args: dict[str, Any]) -> int:
    """The provider: PostgresBatchHook.iter_batches (read_engine ``auto``: ADBC, or ``copy``: CSV COPY) -> Parquet."""
    from airflow_provider_mlops.hooks.postgres import PostgresBatchHook
    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

    hook = PostgresBatchHook(postgres_conn_id="bench_pg", read_engine=args.get("engine", "auto"))
    return ObjectStorageHook(aws_conn_id=None).write_dataset(
        args["out"], hook.iter_batches(f"SELECT * FROM {args['table']}")
    )["rows"]


@case(*PG)
def pg_raw_copy_out(args: dict[str, Any]) -> int:
    """Baseline: raw COPY (query) TO STDOUT, bytes read and dropped."""
    import psycopg

    size = 0
    with (
        psycopg.connect(args["dsn"]) as conn,
        conn.cursor() as cur,
        cur.copy(f"COPY (SELECT * FROM {args['table']}) TO STDOUT") as copy,
    ):
        for chunk in copy:
            size += len(chunk)
    return int(args["rows"])


@case(*PG)
def adbc_extract_parquet(args: dict[str, Any]) -> int:
    """Comparison: ADBC record-batch stream -> Parquet."""
    import adbc_driver_postgresql.dbapi as adbc

    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

    with adbc.connect(args["uri"]) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {args['table']}")
        reader = cur.fetch_record_batch()
        return ObjectStorageHook(aws_conn_id=None).write_dataset(
            args["out"], iter(reader), schema=reader.schema
        )["rows"]


@case(*PG)
def adbc_load(args: dict[str, Any]) -> int:
    """Comparison: ADBC bulk ingest of the Parquet batches (append into an existing table)."""
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow as pa

    batches = _parquet_batches(args["parquet"])
    first = next(batches)

    def chained() -> Any:
        yield first
        yield from batches

    reader = pa.RecordBatchReader.from_batches(first.schema, chained())
    with adbc.connect(args["uri"]) as conn, conn.cursor() as cur:
        rows = cur.adbc_ingest(args["table"], reader, mode="create_append")
        conn.commit()
    return int(rows)


# ------------------------------------------------------------------------------------------ mongo / s3 / http
@case(*MONGO)
def mongo_load(args: dict[str, Any]) -> int:
    from airflow_provider_mlops.hooks.mongo import MongoBatchHook

    hook = MongoBatchHook(mongo_conn_id="bench_mongo")
    return hook.write_batches(
        args["collection"], _parquet_batches(args["parquet"], 20_000), chunk_size=5_000
    )["rows"]


@case(*MONGO)
def mongo_extract_parquet(args: dict[str, Any]) -> int:
    import pyarrow.parquet as pq

    from airflow_provider_mlops.hooks.mongo import MongoBatchHook
    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

    schema = pq.read_schema(args["parquet"])
    hook = MongoBatchHook(mongo_conn_id="bench_mongo")
    batches = hook.iter_batches(args["collection"], projection={"_id": 0}, batch_size=20_000, schema=schema)
    return ObjectStorageHook(aws_conn_id=None).write_dataset(args["out"], batches, schema=schema)["rows"]


@case(*MONGO)
def pymongoarrow_extract(args: dict[str, Any]) -> int:
    """Comparison: pymongoarrow's find_arrow_all (whole result in memory)."""
    import pymongo
    from pymongoarrow.api import find_arrow_all

    with pymongo.MongoClient(args["uri"]) as client:
        table = find_arrow_all(client["bench"][args["collection"]], {}, projection={"_id": 0})
    return table.num_rows


@case(*S3)
def s3_write(args: dict[str, Any]) -> int:
    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

    return ObjectStorageHook(aws_conn_id="bench_s3").write_dataset(
        args["uri"], _parquet_batches(args["parquet"])
    )["rows"]


@case(*S3)
def s3_read(args: dict[str, Any]) -> int:
    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

    return sum(b.num_rows for b in ObjectStorageHook(aws_conn_id="bench_s3").iter_batches(args["uri"]))


@case()
def delta_local_write(args: dict[str, Any]) -> int:
    """1M x 10 from a Parquet file to a Delta table in a local folder (the embedded default's lake)."""
    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

    return ObjectStorageHook(aws_conn_id=None).write_dataset(args["uri"], _parquet_batches(args["parquet"]))[
        "rows"
    ]


@case()
def delta_local_read(args: dict[str, Any]) -> int:
    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

    return sum(b.num_rows for b in ObjectStorageHook(aws_conn_id=None).iter_batches(args["uri"]))


@case()
def deltalake_write(args: dict[str, Any]) -> int:
    """Comparison: delta-rs's own writer (``write_deltalake``) on the same batches, local folder."""
    import itertools

    import deltalake
    import pyarrow as pa

    batches = _parquet_batches(args["parquet"])
    first = next(batches)
    rows = 0

    def counted() -> Any:
        nonlocal rows
        for batch in itertools.chain([first], batches):
            rows += batch.num_rows
            yield batch

    reader = pa.RecordBatchReader.from_batches(first.schema, counted())
    deltalake.write_deltalake(args["uri"], reader, mode="overwrite")  # a repeat replaces the table
    return rows


@case()
def deltalake_read(args: dict[str, Any]) -> int:
    """Comparison: delta-rs's streaming reader (DataFusion's ``QueryBuilder``; ``to_pyarrow_dataset``
    imports pandas and peaks higher)."""
    from deltalake import DeltaTable, QueryBuilder

    reader = QueryBuilder().register("t", DeltaTable(args["uri"])).execute("SELECT * FROM t")
    return sum(batch.num_rows for batch in reader)


@case(*HTTP)
def http_extract_parquet(args: dict[str, Any]) -> int:
    from airflow_provider_mlops.hooks.http import HttpApiHook
    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

    hook = HttpApiHook(http_conn_id="bench_http")
    batches = hook.iter_batches(
        "rows", records_path="data", pagination={"type": "cursor", "cursor_path": "next"}, batch_size=50_000
    )
    return ObjectStorageHook(aws_conn_id=None).write_dataset(args["out"], batches)["rows"]


# ------------------------------------------------------------------------------ generic SQL (SQLite)
@case(*SQLITE)
def sqlite_load(args: dict[str, Any]) -> int:
    """The generic common-sql sink: Parquet -> SqlBatchHook.write_batches (executemany, one transaction)."""
    from airflow_provider_mlops.hooks.sql import SqlBatchHook

    return SqlBatchHook("bench_sqlite").write_batches("rows", _parquet_batches(args["parquet"]))["rows"]


@case(*SQLITE)
def sqlite_extract_parquet(args: dict[str, Any]) -> int:
    """The generic common-sql source: SqlBatchHook.iter_batches (fetchmany) -> Parquet dataset."""
    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
    from airflow_provider_mlops.hooks.sql import SqlBatchHook

    batches = SqlBatchHook("bench_sqlite").iter_batches("SELECT * FROM rows")
    return ObjectStorageHook(aws_conn_id=None).write_dataset(args["out"], batches)["rows"]


# ------------------------------------------------------------------------------------------- serving
SERVE = ("requests",)


@case(*SERVE)
def serve_sizes(args: dict[str, Any]) -> dict[str, Any]:
    """
    ``dataframe_split`` requests of each size in ``sizes`` to each server in ``urls`` (``rounds`` timed
    requests per size and server after a warm-up, one keep-alive connection per server), the servers
    taking turns request by request (who goes first alternates), so a change in the machine's load
    falls on both alike. Per server and size: the median and the spread of every round, not the best
    of a few, so a garbage-collection pause or any other stall shows.
    """

    import requests

    sample = json.loads(Path(args["sample"]).read_text())
    headers = {"Content-Type": "application/json"}
    names = list(args["urls"])
    out: dict[str, Any] = {"rows": 0, **{name: {} for name in names}}
    sessions = {name: requests.Session() for name in names}
    try:
        for size in args["sizes"]:
            rows = sample["data"][:size]
            assert len(rows) == size, f"the sample holds {len(rows)} rows, not {size}"
            body = json.dumps({"dataframe_split": {"columns": sample["columns"], "data": rows}}).encode()
            rounds = args["rounds"] if size > 1 else args["single_rounds"]

            def post(name: str, body: bytes = body, size: int = size) -> float:
                start = time.perf_counter()
                answer = sessions[name].post(args["urls"][name], data=body, headers=headers, timeout=120)
                seconds = time.perf_counter() - start
                answer.raise_for_status()
                assert len(answer.json()["predictions"]) == size
                return seconds

            for _ in range(max(3, rounds // 20)):  # warm-up
                for name in names:
                    post(name)
            seconds: dict[str, list[float]] = {name: [] for name in names}
            for i in range(rounds):
                for name in names if i % 2 == 0 else reversed(names):
                    seconds[name].append(post(name))
            out["rows"] += size * rounds * len(names)
            for name in names:
                out[name][str(size)] = _spread(seconds[name], size)
    finally:
        for session in sessions.values():
            session.close()
    return out


def _spread(seconds: list[float], size: int) -> dict[str, Any]:
    """The median and spread (p10, p90, p99, max) of request times in ms, and rows/s at the median and slowest."""
    import statistics

    ordered = sorted(seconds)

    def pct(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    median = statistics.median(seconds)
    return {
        "rounds": len(seconds),
        "median_ms": round(1000 * median, 3),
        "p10_ms": pct(0.10),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(1000 * ordered[-1], 3),
        "median_rows_per_s": round(size / median),
        "slowest_rows_per_s": round(size / ordered[-1]),
    }


@case("airflow_provider_mlops.operators.predict", "sklearn")
def batch_predict(args: dict[str, Any]) -> int:
    """BatchPredictOperator over the scoring set (the trusted load is on the clock)."""
    from airflow_provider_mlops.operators.predict import BatchPredictOperator
    from tests.operators.helpers import task_context

    os.environ["AIRFLOW_CONN_BENCH_MLFLOW"] = json.dumps(
        {"conn_type": "mlops-mlflow", "host": "", "extra": {"tracking_uri": args["tracking_uri"]}}
    )
    result = BatchPredictOperator(
        task_id="score",
        input_uri=args["score_uri"],
        registered_model_name=args["name"],
        version=args["version"],
        output_uri=args["out"],
        batch_size=args.get("batch_size", 50_000),
        mlflow_conn_id="bench_mlflow",
    ).execute(task_context(Path(args["work"])))
    return int(result["rows"])


# ------------------------------------------------------------------------------------------ transform
# issue #24: the same steps in DuckDB SQL (today), in the provider's pyarrow expression language of
# before (run from the baseline commit's code: args["sys_path"]) and in pandas
TRANSFORM_SQL = [
    {"filter": "amount > 50 AND category <> 'beta'"},
    {"derive": {"yearly": "amount * 12", "score": "amount * ratio + 1", "flag": "active AND amount > 120"}},
    {"drop_duplicates": ["customer_id"]},
]
TRANSFORM_ARROW = [
    {"filter": "amount > 50 and category != 'beta'"},
    {"derive": {"yearly": "amount * 12", "score": "amount * ratio + 1", "flag": "active and amount > 120"}},
    {"drop_duplicates": ["customer_id"]},
]


def _transform(args: dict[str, Any], steps: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    from airflow_provider_mlops.operators.transform import TransformOperator

    try:
        from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
    except ImportError:  # the baseline commit's code (args["sys_path"]): the hook's name of then
        from airflow_provider_mlops.hooks.s3 import S3Hook as ObjectStorageHook  # type: ignore[attr-defined,no-redef]
    from tests.operators.helpers import task_context

    result = TransformOperator(
        task_id="transform", input_uri=args["uri"], steps=steps, output_uri=args["out"], **kwargs
    ).execute(task_context(Path(args["work"])))
    # the task's peak, before the check below (to_pylist of a timestamp column imports pandas: +40 MB)
    peak = peak_rss_mb()
    return {
        "rows": int(result["rows_in"]),
        "rows_out": int(result["rows"]),
        "digest": _digest(ObjectStorageHook(aws_conn_id=None), args["out"], args.get("sort", "id")),
        "peak_rss_mb": peak,
    }


def _digest(hook: Any, uri: str, key: str) -> str:
    """A hash of the output's rows in ``key`` order: two engines agree or they do not."""
    import hashlib

    import pyarrow as pa

    table = pa.Table.from_batches(list(hook.iter_batches(uri))).sort_by(key)
    digest = hashlib.sha256()
    for name in sorted(table.column_names):
        values = table.column(name).to_pylist()
        digest.update(repr([round(v, 6) if isinstance(v, float) else v for v in values]).encode())
    return digest.hexdigest()[:16]


@case("airflow_provider_mlops.operators.transform", "duckdb")
def transform_duckdb(args: dict[str, Any]) -> dict[str, Any]:
    """TransformOperator: a filter, three derives (SQL on DuckDB, per batch), a dedupe."""
    return _transform(args, TRANSFORM_SQL)


@case("airflow_provider_mlops.operators.transform", "pyarrow.dataset")
def transform_arrow_engine(args: dict[str, Any]) -> dict[str, Any]:
    """The same with the expression language of before #24 (baseline code, pyarrow.compute)."""
    return _transform(args, TRANSFORM_ARROW)


@case("pandas")
def transform_pandas(args: dict[str, Any]) -> dict[str, Any]:
    """The same in pandas, whole frame in memory (what a callable-only DAG does)."""
    import pandas as pd

    frame = pd.read_parquet(args["path"])
    rows = len(frame)
    frame = frame[(frame.amount > 50) & (frame.category != "beta")]
    frame = frame.assign(
        yearly=frame.amount * 12,
        score=frame.amount * frame.ratio + 1,
        flag=frame.active & (frame.amount > 120),
    )
    frame = frame.drop_duplicates(["customer_id"])
    Path(args["out_file"]).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args["out_file"])
    return {"rows": rows, "rows_out": len(frame)}


@case("airflow_provider_mlops.operators.transform", "duckdb")
def sql_join_aggregate(args: dict[str, Any]) -> dict[str, Any]:
    """A sql step joining the input with another dataset and aggregating, under a memory limit."""
    query = {
        "query": "SELECT r.label, count(*) AS n, sum(l.v) AS total FROM input AS l "
        "JOIN labels AS r USING (k) GROUP BY r.label",
        "inputs": {"labels": args["labels"]},
    }
    return _transform({**args, "sort": "label"}, [{"sql": query}], sql_memory_limit=args["memory_limit"])


def peak_rss_mb() -> float:
    """This process's RSS high-water mark (VmHWM): unlike ru_maxrss it does not inherit the parent's."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    import importlib

    name, raw = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "{}"
    args = json.loads(raw)
    if args.get("sys_path"):  # the provider's code of another commit (a baseline engine)
        sys.path.insert(0, args["sys_path"])
    _connections(args)
    for module in (*WARM, *WARM_FOR[name]):
        importlib.import_module(module)
    start = time.perf_counter()
    out = CASES[name](args)
    seconds = time.perf_counter() - start
    # A case returns its row count, or a dict with "rows" and extra figures (latency percentiles), and
    # its own "peak_rss_mb" when checks after the task's work (not the task's memory) follow it.
    extra = dict(out) if isinstance(out, dict) else {"rows": out}
    peak = extra.pop("peak_rss_mb", None) or peak_rss_mb()
    rows = int(extra.pop("rows"))
    print(
        json.dumps(
            {
                "case": name,
                "rows": rows,
                "seconds": round(seconds, 3),
                "rows_per_s": round(rows / seconds) if seconds else None,
                "peak_rss_mb": round(peak, 1),
                **extra,
            }
        )
    )


if __name__ == "__main__":
    main()
