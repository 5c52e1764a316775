"""
The ``sql`` step: one SELECT over the whole input and other datasets, run by DuckDB out of core.

A step ``{"sql": "SELECT ... FROM input ..."}`` or, with other datasets read by name::

    {"sql": {
        "query": "SELECT c.customer_id, c.plan, sum(a.amount) AS spent "
                 "FROM input AS a JOIN customers AS c USING (customer_id) GROUP BY ALL",
        "inputs": {"customers": "s3://lake/customers"},   # a URI or an upstream task's XCom
    }}

``input`` is the stream of batches reaching the step (the dataset after the steps before it); each
name of ``inputs`` is an upstream dataset, read batch by batch through the storage hook. Both are
Arrow streams DuckDB scans once: joins, windows, aggregates (``GROUP BY``), deduplication by the
newest row (``QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1``) and
``ORDER BY`` work on any size, within a memory limit, spilling to a temporary directory beyond it.
The result streams on to the next steps, ``expected_schema`` validation and quarantine.

The query runs in the sandbox of :mod:`airflow_provider_mlops.etl.expressions` (no file, network or
extension; configuration locked) and is checked first: one statement, a SELECT (``WITH``, ``UNION``
included), reading only ``input``, the named datasets and its own CTEs (no table function such as
``read_csv``, no catalog table).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.etl.expressions import ExpressionError, _clip, _connection, _first_line, connect

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    import pyarrow as pa

INPUT = "input"
DEFAULT_MEMORY_LIMIT = "512MB"
_STATEMENT_NODES = ("SELECT_NODE", "SET_OPERATION_NODE", "CTE_NODE", "RECURSIVE_CTE_NODE")


def _fail(query: str, message: str) -> ExpressionError:
    return ExpressionError(f"Step 'sql': query {_clip(query)}: {message}")


def check_query(query: Any, names: Iterable[str]) -> list[str]:
    """
    Check that ``query`` is one SELECT reading only ``input``, ``names`` and its own CTEs.

    :returns: the datasets it reads (``input`` and names of ``names``), in order of first use.
    :raises ExpressionError: naming what is refused.
    """
    if not isinstance(query, str) or not query.strip():
        raise ExpressionError(f"Step 'sql' needs a SELECT statement (text), got {query!r}")
    allowed = {INPUT, *names}
    lowered = {name.lower(): name for name in allowed}
    try:
        tree = json.loads(_connection().execute("SELECT json_serialize_sql(?)", [query]).fetchall()[0][0])
    except RecursionError:
        raise _fail(query, "nested too deeply") from None
    except Exception as error:  # duckdb.Error
        raise _fail(query, _first_line(error)) from None
    if tree.get("error"):
        message = str(tree.get("error_message", "does not parse"))
        if "Only SELECT statements" in message:
            message = "only a SELECT is accepted (no COPY, ATTACH, INSTALL, LOAD, PRAGMA, SET, CREATE ...)"
        position = tree.get("position")
        where = f" at character {position}" if str(position or "").isdigit() else ""
        raise _fail(query, f"{message}{where}")
    statements = tree.get("statements") or []
    if len(statements) != 1:
        raise _fail(query, f"one SELECT statement is accepted, got {len(statements)} statements")
    node = statements[0].get("node", {})
    if node.get("type") not in _STATEMENT_NODES:
        raise _fail(query, f"only a SELECT is accepted, got {node.get('type')}")
    ctes: set[str] = set()
    refs: list[dict[str, Any]] = []
    stack: list[Any] = [node]
    while stack:  # iterative: a deep tree must not exhaust the stack
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        cte_map = item.get("cte_map")
        if isinstance(cte_map, dict):
            ctes.update(str(entry.get("key", "")).lower() for entry in cte_map.get("map") or [])
        if item.get("type") == "TABLE_FUNCTION":
            function = (item.get("function") or {}).get("function_name", "?")
            raise _fail(
                query,
                f"table function {function}() is not allowed: the query reads {INPUT!r} and the datasets "
                f"named in the step's inputs ({sorted(names) or 'none'})",
            )
        if item.get("type") == "BASE_TABLE":
            refs.append(item)
        stack.extend(value for value in item.values() if isinstance(value, dict | list))
    read: list[str] = []
    for ref in sorted(refs, key=lambda r: r.get("query_location", 0)):
        table = str(ref.get("table_name", ""))
        qualified = ref.get("schema_name") or ref.get("catalog_name")
        if not qualified and table.lower() in ctes:
            continue
        if qualified or table.lower() not in lowered:
            shown = ".".join(p for p in (ref.get("catalog_name"), ref.get("schema_name"), table) if p)
            raise _fail(
                query,
                f"unknown table {shown!r}: the query reads {INPUT!r} (the step's input) and the datasets "
                f"named in the step's inputs ({sorted(names) or 'none'})",
            )
        name = lowered[table.lower()]
        if name not in read:
            read.append(name)
    return read


def _reader(name: str, batches: Iterable[pa.RecordBatch], schema: pa.Schema | None) -> pa.RecordBatchReader:
    """An Arrow stream of ``batches`` (the schema from the first batch when not given)."""
    import pyarrow as pa

    iterator = iter(batches)
    first = next(iterator, None)
    if first is None and schema is None:
        raise ExpressionError(f"Step 'sql': dataset {name!r} has no batch to take its columns from")
    schema = schema or first.schema  # type: ignore[union-attr]

    def stream() -> Iterator[pa.RecordBatch]:
        if first is not None:
            yield first
        yield from iterator

    return pa.RecordBatchReader.from_batches(schema, stream())


def run_query(
    query: str,
    source: Iterable[pa.RecordBatch],
    datasets: Mapping[str, Callable[[], Iterable[pa.RecordBatch]]],
    *,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    temp_directory: str | None = None,
    batch_size: int = 50_000,
    threads: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """
    Stream the result of ``query`` over ``source`` (as ``input``) and ``datasets`` (name -> a function
    giving the dataset's batches, called only for the datasets the query reads).

    :param memory_limit: DuckDB's memory limit; beyond it joins, aggregates and sorts spill.
    :param temp_directory: where they spill (the task's temporary directory).
    :param batch_size: rows per output batch.
    :raises ExpressionError: the query is refused, or fails (naming DuckDB's error).
    """
    read = check_query(query, datasets)
    connection = connect(
        memory_limit=memory_limit, temp_directory=temp_directory, threads=threads, insertion_order=False
    )
    try:
        for name in read:
            batches = source if name == INPUT else datasets[name]()
            connection.register(name, _reader(name, batches, None))
        try:
            reader = connection.sql(query).to_arrow_reader(batch_size)
            yield from reader
        except ExpressionError:
            raise
        except Exception as error:  # duckdb.Error
            message = _first_line(error)
            if "already been consumed" in message:
                message = (
                    f"{message}. A dataset is scanned once: read it in one CTE and use that twice, e.g. "
                    f"WITH i AS MATERIALIZED (SELECT * FROM {INPUT}) SELECT ... FROM i JOIN i AS j ..."
                )
            elif "out of memory" in message.lower():
                message += f" (memory_limit {memory_limit}: raise it, or make the query spill-friendly)"
            raise _fail(query, message) from error
    finally:
        connection.close()
