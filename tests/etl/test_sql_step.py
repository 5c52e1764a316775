"""The sql step: one SELECT over the whole input and other datasets, sandboxed, out of core."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from airflow_provider_mlops.etl.expressions import ExpressionError
from airflow_provider_mlops.etl.sql import check_query
from airflow_provider_mlops.etl.steps import Pipeline, StepError

ORDERS = pa.table(
    {
        "order_id": [1, 2, 3, 4, 5, 6],
        "customer_id": [10, 10, 20, 30, 20, 10],
        "amount": [5.0, 7.5, 3.0, 10.0, 4.0, 1.0],
        "updated_at": [1, 2, 1, 1, 3, 3],
    }
)
CUSTOMERS = pa.table({"customer_id": [10, 20, 30], "plan": ["pro", "free", "pro"]})


def run(steps: list, data: pa.Table = ORDERS, datasets: dict | None = None, **kwargs: Any) -> pa.Table:
    datasets = {"s3://lake/customers": CUSTOMERS, **(datasets or {})}
    pipeline = Pipeline(
        steps,
        open_dataset=lambda uri: iter(datasets[uri].to_batches(max_chunksize=2)),
        **kwargs,
    )
    batches = list(pipeline.apply(data.to_batches(max_chunksize=2)))
    return pa.Table.from_batches(batches)


def test_join_aggregate_with_another_dataset_by_name() -> None:
    out = run(
        [
            {"filter": "amount > 2"},
            {
                "sql": {
                    "query": "SELECT c.plan, sum(o.amount) AS spent, count(*) AS orders "
                    "FROM input AS o JOIN customers AS c USING (customer_id) GROUP BY c.plan ORDER BY c.plan",
                    "inputs": {"customers": "s3://lake/customers"},
                }
            },
            {"derive": {"average": "spent / orders"}},
        ]
    )
    assert out.to_pylist() == [
        {"plan": "free", "spent": 7.0, "orders": 2, "average": 3.5},
        {"plan": "pro", "spent": 22.5, "orders": 3, "average": 7.5},
    ]


def test_deduplicate_by_the_newest_row_and_windows() -> None:
    newest = run(
        [
            {
                "sql": "SELECT * FROM input QUALIFY row_number() OVER "
                "(PARTITION BY customer_id ORDER BY updated_at DESC) = 1 ORDER BY customer_id"
            }
        ]
    )
    assert newest.column("order_id").to_pylist() == [6, 5, 4]
    running = run(
        [
            {
                "sql": "SELECT order_id, sum(amount) OVER (PARTITION BY customer_id ORDER BY order_id) AS "
                "running FROM input ORDER BY order_id"
            }
        ]
    )
    assert running.column("running").to_pylist() == [5.0, 12.5, 3.0, 10.0, 7.0, 13.5]


def test_the_query_runs_once_over_the_whole_stream_and_counts() -> None:
    pipeline = Pipeline([{"sql": "SELECT count(*) AS n FROM input"}])
    out = list(pipeline.apply(ORDERS.to_batches(max_chunksize=2)))
    assert pa.Table.from_batches(out).column("n").to_pylist() == [6]
    assert pipeline.rows_in == 6 and pipeline.rows_out == 1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", r"table function read_csv\(\) is not allowed"),
        ("SELECT * FROM input, read_parquet('/x.parquet')", "table function read_parquet"),
        ("SELECT * FROM glob('/*')", "table function glob"),
        ("SELECT * FROM query('SELECT 1')", "table function query"),
        ("SELECT * FROM duckdb_settings()", "table function duckdb_settings"),
        ("SELECT * FROM information_schema.tables", "unknown table 'information_schema.tables'"),
        ("SELECT * FROM orders", r"unknown table 'orders'.*reads 'input'"),
        ("SELECT * FROM input; SELECT 1", "got 2 statements"),
        ("SELECT * FROM input; COPY input TO '/tmp/x.csv'", "only a SELECT|2 statements"),
        ("COPY input TO '/tmp/x.csv'", "only a SELECT"),
        ("ATTACH '/tmp/x.db' AS x", "only a SELECT"),
        ("INSTALL httpfs", "only a SELECT"),
        ("LOAD httpfs", "only a SELECT"),
        ("PRAGMA version", "only a SELECT"),
        ("SET memory_limit = '100GB'", "only a SELECT"),
        ("CREATE TABLE t AS SELECT * FROM input", "only a SELECT"),
        ("SELECT * FROM input -- ; DROP TABLE input", None),  # a comment: accepted, harmless
        ("SELECT * FROM (SELECT * FROM read_text('/etc/hostname'))", "table function read_text"),
        ("WITH x AS (SELECT * FROM read_blob('/etc/hostname')) SELECT * FROM x", "table function read_blob"),
        ("SELECT * FRM input", "syntax error"),
    ],
)
def test_the_sandbox_refuses_anything_but_one_select_over_the_named_inputs(
    query: str, message: str | None
) -> None:
    if message is None:
        assert check_query(query, []) == ["input"]
        return
    with pytest.raises(ExpressionError, match=message):
        check_query(query, ["customers"])


def test_ctes_and_unions_read_the_inputs() -> None:
    query = (
        "WITH big AS (SELECT * FROM input WHERE amount > 4) "
        "SELECT customer_id FROM big UNION SELECT customer_id FROM Customers"
    )
    assert check_query(query, ["customers"]) == ["input", "customers"]
    out = run([{"sql": {"query": query + " ORDER BY 1", "inputs": {"customers": "s3://lake/customers"}}}])
    assert out.column("customer_id").to_pylist() == [10, 20, 30]


def test_errors_name_the_step_and_the_way_out() -> None:
    with pytest.raises(ExpressionError, match=r"^Step 'sql': query .*Division by zero"):
        run([{"sql": "SELECT amount // (customer_id - customer_id) AS x FROM input"}])
    with pytest.raises(ExpressionError, match=r"scanned once.*MATERIALIZED"):
        run([{"sql": "SELECT count(*) FROM input AS a JOIN input AS b USING (order_id)"}])
    with pytest.raises(ExpressionError, match=r"Referenced column \"nope\" not found"):
        run([{"sql": "SELECT nope FROM input"}])
    for bad in (
        [{"sql": 42}],
        [{"sql": {"query": "SELECT 1", "inputs": {"input": "x"}}}],
        [{"sql": {"q": 1}}],
    ):
        with pytest.raises(StepError, match="Step 0: Step 'sql'"):
            Pipeline(bad)


def test_a_self_join_reads_the_input_once_through_a_materialized_cte() -> None:
    out = run(
        [
            {
                "sql": "WITH i AS MATERIALIZED (SELECT * FROM input) "
                "SELECT count(*) AS pairs FROM i AS a JOIN i AS b USING (customer_id)"
            }
        ]
    )
    assert out.column("pairs").to_pylist() == [3 * 3 + 2 * 2 + 1]


def test_a_join_and_aggregate_spills_under_a_small_memory_limit_with_the_same_result(tmp_path: Path) -> None:
    # 1M rows joined and grouped by a 1M-key label under 100 MB (2 threads): DuckDB spills to the
    # directory it is given (~17 MB measured), and the result equals an unconstrained run's.
    rng = np.random.default_rng(0)
    n = keys = 1_000_000
    left = pa.table({"k": rng.integers(0, keys, n), "v": rng.random(n)})
    right = pa.table({"k": np.arange(keys), "label": pa.array([f"label-{i:08d}" for i in range(keys)])})
    query = {
        "query": "SELECT r.label, count(*) AS n, sum(l.v) AS total FROM input AS l JOIN right_side AS r "
        "USING (k) GROUP BY r.label",
        "inputs": {"right_side": "mem://right"},
    }
    spill = tmp_path / "spill"
    spill.mkdir()

    def pipeline(limit: str, directory: str | None) -> Pipeline:
        return Pipeline(
            [{"sql": query}],
            open_dataset=lambda uri: iter(right.to_batches(max_chunksize=50_000)),
            sql_memory_limit=limit,
            sql_temp_directory=directory,
            sql_threads=2,
        )

    batches, spilled = [], []
    for batch in pipeline("100MB", str(spill)).apply(left.to_batches(max_chunksize=50_000)):
        spilled.append(sum(f.stat().st_size for f in spill.rglob("*") if f.is_file()))
        batches.append(batch)
    constrained = pa.Table.from_batches(batches).sort_by("label")
    free = pa.Table.from_batches(list(pipeline("4GB", None).apply(left.to_batches()))).sort_by("label")
    assert max(spilled) > 1_000_000  # it spilled
    assert constrained.num_rows == free.num_rows > 600_000
    assert constrained.column("label").equals(free.column("label"))
    assert constrained.column("n").equals(free.column("n"))
    assert np.allclose(constrained.column("total").to_numpy(), free.column("total").to_numpy())


def test_transform_operator_sql_step_reads_an_upstream_dataset_and_validates(tmp_path: Path) -> None:
    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
    from airflow_provider_mlops.operators.transform import TransformOperator

    hook = ObjectStorageHook(aws_conn_id=None)
    orders, customers = (tmp_path / "orders").as_uri(), (tmp_path / "customers").as_uri()
    hook.write_dataset(orders, ORDERS.to_batches())
    customers_result = hook.write_dataset(customers, CUSTOMERS.to_batches())
    op = TransformOperator(
        task_id="t",
        input_uri=orders,
        steps=[
            {
                "sql": {
                    "query": "SELECT o.customer_id, c.plan, sum(o.amount) AS spent FROM input AS o "
                    "JOIN customers AS c USING (customer_id) GROUP BY ALL",
                    "inputs": {"customers": {"uri": customers_result["uri"]}},
                }
            }
        ],
        expected_schema={"columns": {"spent": {"type": "float64", "max": 12}}},
        on_violation="quarantine",
        output_uri=(tmp_path / "out").as_uri(),
        sql_memory_limit="64MB",
    )
    context = {
        "ti": SimpleNamespace(dag_id="d", task_id="t", map_index=-1),
        "ds": "2026-01-01",
        "run_id": "r",
    }
    result = op.execute(context)
    good = pa.Table.from_batches(list(hook.iter_batches(result["uri"]))).sort_by("customer_id")
    assert good.to_pylist() == [
        {"customer_id": 20, "plan": "free", "spent": 7.0},
        {"customer_id": 30, "plan": "pro", "spent": 10.0},
    ]
    assert result["rows_in"] == 6 and result["bad_rows"] == 1
    bad = pa.Table.from_batches(list(hook.iter_batches(result["quarantine_uri"])))
    assert bad.column("customer_id").to_pylist() == [10] and bad.column("_violations").to_pylist() == [
        "spent:max=12"
    ]
    assert customers_result["uri"] in op._lineage["inputs"]
