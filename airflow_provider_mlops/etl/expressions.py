"""
DuckDB SQL expressions over a batch's columns, evaluated in process in a sandbox.

Used by the ``filter`` and ``derive`` steps (and a model's ``derive`` features):
``"age >= 18 AND country IN ('FR', 'DE')"``, ``"monthly_charges * 12"``,
``"\"Island Name\" = 'Biscoe'"``. The text is one SQL *expression* (not a statement): it is placed
as the single select-list item of a ``SELECT ... FROM batch`` built here, DuckDB's own parser reads
that statement (``json_serialize_sql``) and anything but that one SELECT with that one expression is
refused (a second statement, a subquery, a table function, a window, ``COPY``, ``ATTACH``,
``INSTALL``, ``PRAGMA``, ``SET`` ...). It then runs on a DuckDB connection that reaches no file,
network or extension (:func:`connect`), one Arrow batch at a time. The language is documented in
docs/operators/transform.rst.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator, Sequence

    import duckdb
    import pyarrow as pa


class ExpressionError(ValueError):
    """The expression is not one SQL expression over the columns, does not bind, or fails on the data."""


MAX_LENGTH = 10_000  # characters of expression text

BATCH = "batch"  # the name the batch has in the statement built around an expression
_VALUE = "value"
_PREFIX = "SELECT (\n"  # the expression starts on line 2: DuckDB's error positions map back by line
_SUFFIX = f'\n) AS "{_VALUE}" FROM {BATCH}'
_CHECKED_DIVISOR = "__mlops_checked_divisor"  # a macro of every sandbox connection, see connect()
_DIVISIONS = {"/", "//", "%", "divide", "mod", "fmod", "fdiv"}
# Expression classes of DuckDB's syntax tree that are not row by row or reach beyond the batch.
_REFUSED = {
    "SUBQUERY": "a subquery",
    "WINDOW": "a window function",
    "STAR": "a star expression (*, COLUMNS(...))",
    "PARAMETER": "a parameter",
    "DEFAULT": "DEFAULT",
    "POSITIONAL_REFERENCE": "a positional reference",
}
_NOWHERE = 2**64 - 1  # DuckDB's query_location when a node has none


# --------------------------------------------------------------------------------------------------
# the sandbox
# --------------------------------------------------------------------------------------------------
def connect(
    *,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
    threads: int | None = None,
    insertion_order: bool = True,
) -> duckdb.DuckDBPyConnection:
    """
    A new in-memory DuckDB connection that user SQL cannot escape: no file or network access
    (``enable_external_access=false``: ``read_csv``, ``COPY``, ``ATTACH``, ``INSTALL`` fail), no
    extension installed or loaded on demand, and the configuration locked (``SET`` fails). Python
    objects reach it only through ``register``.

    :param memory_limit: DuckDB's memory limit (e.g. ``"200MB"``); past it operators spill.
    :param temp_directory: where it spills (DuckDB itself writes there; user SQL still cannot).
    :param threads: worker threads (default: DuckDB's, the number of cores).
    :param insertion_order: keep the input's order where the query has no ORDER BY (false lets
        large joins and aggregates run in less memory; ORDER BY is always honoured).
    """
    import duckdb

    config: dict[str, Any] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
    }
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if temp_directory is not None:
        config["temp_directory"] = temp_directory
    if threads is not None:
        config["threads"] = threads
    if not insertion_order:
        config["preserve_insertion_order"] = False
    connection = duckdb.connect(":memory:", config=config)
    # A TIMESTAMPTZ comes back as timestamp[..., tz=UTC], not in the machine's zone (ICU is built in).
    connection.execute("SET GLOBAL TimeZone = 'UTC'")  # cursors inherit it
    connection.execute("SET enable_progress_bar = false")  # a task log is no terminal
    # A zero divisor fails the evaluation (see _check_divisors); DuckDB gives +-inf for '/' on floats.
    connection.execute(
        f"CREATE MACRO {_CHECKED_DIVISOR}(d) AS CASE WHEN d = 0 THEN error('Division by zero') ELSE d END"
    )
    # Set last: once external access is off and the configuration locked, nothing user SQL can
    # run turns them back on.
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
    return connection


_local = threading.local()
_lock = threading.Lock()
_database: list[duckdb.DuckDBPyConnection] = []


def _connection() -> duckdb.DuckDBPyConnection:
    """
    This thread's sandbox connection for expressions: a cursor of one in-memory database per process
    (a database costs ~20 MB, a cursor little; a connection is not thread-safe, and names registered
    on a cursor are its own).
    """
    connection = getattr(_local, "connection", None)
    if connection is None:
        with _lock:
            if not _database:
                _database.append(connect(threads=1))
            connection = _local.connection = _database[0].cursor()
    return connection


def quote_name(name: str) -> str:
    """The double-quoted SQL identifier for a column name: ``Island Name`` -> ``"Island Name"``."""
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------------------------------
# parsing and checking
# --------------------------------------------------------------------------------------------------
def _clip(text: str, limit: int = 200) -> str:
    """``repr(text)``, shortened: messages quote the expression, which may be 10,000 characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def _fail(text: str, message: str, position: int | None = None, what: str | None = None) -> ExpressionError:
    if position is not None and position > len(text):  # in the SQL around it: the expression ended early
        position = len(text)
    where = f" at character {position}" if position is not None and position >= 0 else ""
    near = ""
    if where:
        snippet = text[position : position + 30].splitlines()[0] if text[position:].strip() else ""
        near = f" (near {snippet!r})" if snippet else " (at the end)"
    subject = f"{what}: " if what else ""
    return ExpressionError(f"{subject}expression {_clip(text)}{where}{near}: {message}")


def _location(node: dict[str, Any]) -> int | None:
    """The position of a syntax-tree node in the expression text (None when DuckDB has none)."""
    location = node.get("query_location", _NOWHERE)
    if not isinstance(location, int) or location == _NOWHERE:
        return None
    return location - len(_PREFIX)


def _serialize(text: str) -> dict[str, Any]:
    """DuckDB's syntax tree of the SELECT built around ``text``, checked to be just that SELECT."""
    if not isinstance(text, str):
        raise ExpressionError(f"An expression is SQL text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"Expression is too long ({len(text)} characters, limit {MAX_LENGTH}): {_clip(text)}"
        )
    if not text.strip():
        raise ExpressionError("An expression is SQL text, got an empty string")
    if "\x00" in text:
        raise ExpressionError(f"Expression {_clip(text)} holds a NUL character")
    sql = _PREFIX + text + _SUFFIX
    try:
        serialized = _connection().execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0]
        tree = json.loads(serialized)
    except RecursionError:
        raise ExpressionError(f"Expression is nested too deeply: {_clip(text)}") from None
    except Exception as error:  # duckdb.Error; DuckDB reports parse errors in the JSON
        raise _fail(text, _first_line(error)) from None
    if tree.get("error") and "Only SELECT statements" in str(tree.get("error_message")):
        tree = {}  # a second statement of another kind: refused below like any other
    if tree.get("error"):
        position = tree.get("position")
        position = int(position) - len(_PREFIX) if str(position or "").isdigit() else None
        message = str(tree.get("error_message", "does not parse"))
        raise _fail(text, f"{message}{_quote_hint(text)}", position)
    statements = tree.get("statements") or []
    node = statements[0].get("node", {}) if len(statements) == 1 else {}
    well_formed = (
        node.get("type") == "SELECT_NODE"
        and len(node.get("select_list", ())) == 1
        and node.get("from_table", {}).get("type") == "BASE_TABLE"
        and node["from_table"].get("table_name") == BATCH
        and node["from_table"].get("alias", "") == ""
        and node["from_table"].get("schema_name", "") == ""
        and not node.get("modifiers")
        and not (node.get("cte_map") or {}).get("map")
        and node.get("where_clause") is None
        and not node.get("group_expressions")
        and not node.get("group_sets")
        and node.get("having") is None
        and node.get("qualify") is None
        and node.get("sample") is None
        and node["select_list"][0].get("alias") == _VALUE
    )
    if not well_formed:
        raise _fail(
            text,
            "not one SQL expression: a parenthesis, a quote or a comment closes it early, or it holds "
            'a second statement (one expression over the batch\'s columns, such as "a" * 2 > "b", '
            "is accepted)",
        )
    expression = node["select_list"][0]
    if expression.get("function_name") == "row" and not expression.get("arguments"):
        raise _fail(text, "no expression (only a comment?)")
    _check_nodes(text, expression)
    return expression


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every expression node under ``node`` (iterative: a deep tree must not exhaust the stack)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "class" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_nodes(text: str, expression: dict[str, Any]) -> None:
    for node in _walk(expression):
        kind = node.get("class")
        if kind in _REFUSED:
            raise _fail(
                text,
                f"{_REFUSED[kind]} is not allowed in a row-by-row expression (the sql step takes "
                "whole queries: joins, windows, aggregates)",
                _location(node),
            )
        if kind == "FUNCTION" and (node.get("schema") or node.get("catalog")):
            raise _fail(text, "a function is called by its name only, without a schema", _location(node))
        if kind == "FUNCTION" and node.get("function_name", "").lower() in _aggregates():
            raise _fail(
                text,
                f"{node['function_name']}() is an aggregate, and an expression gives one value per row "
                "(row-wise minimum / maximum: least(a, b) / greatest(a, b); aggregates: the sql step)",
                _location(node),
            )


@functools.cache
def _aggregates() -> frozenset[str]:
    """Names that are only aggregate functions in DuckDB (``sum``, ``max``; not ``list_sum``)."""
    rows = (
        _connection()
        .execute(
            "SELECT function_name, bool_and(function_type = 'aggregate') FROM duckdb_functions() "
            "WHERE function_type IN ('scalar', 'aggregate', 'macro') GROUP BY function_name"
        )
        .fetchall()
    )
    return frozenset(name.lower() for name, only_aggregate in rows if only_aggregate)


def _references(expression: dict[str, Any]) -> list[tuple[str, int | None]]:
    """(column name, position) of every column reference, lambda parameters excluded."""
    found: list[tuple[str, int | None]] = []

    def visit(node: Any, bound: frozenset[str]) -> None:
        stack = [(node, bound)]
        while stack:
            item, names = stack.pop()
            if isinstance(item, list):
                stack.extend((child, names) for child in item)
                continue
            if not isinstance(item, dict):
                continue
            kind = item.get("class")
            if kind == "COLUMN_REF":
                parts = item.get("column_names") or []
                # "batch"."x" is the column x; s.f (a struct field) reads the column s
                name = parts[1] if len(parts) > 1 and parts[0] == BATCH else parts[0] if parts else ""
                if name.lower() not in names:
                    found.append((name, _location(item)))
                continue
            if kind == "LAMBDA":
                parameters = {
                    ref["column_names"][-1].lower()
                    for ref in _walk(item.get("lhs"))
                    if ref.get("class") == "COLUMN_REF" and ref.get("column_names")
                }
                stack.append((item.get("expr"), names | parameters))
                continue
            stack.extend((child, names) for child in item.values() if isinstance(child, dict | list))

    visit(expression, frozenset())
    found.sort(key=lambda pair: -1 if pair[1] is None else pair[1])
    return found


def _quote_hint(text: str, columns: Collection[str] = ()) -> str:
    for name in sorted(columns):
        if (
            not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)
            and name in text
            and quote_name(name) not in text
        ):
            return f"; a column name with spaces or punctuation goes in double quotes: {quote_name(name)}"
    return ""


def _first_line(error: BaseException) -> str:
    message = str(error).split("\n\nLINE ")[0].strip() or type(error).__name__
    return message if len(message) < 600 else message[:600] + "..."


def referenced_columns(text: str) -> list[str]:
    """
    The column names ``text`` reads, in order of first appearance (lambda parameters excluded).

    :raises ExpressionError: for anything the language refuses (it is parsed and checked, not bound).
    """
    return list(_referenced_columns(text))


@functools.lru_cache(maxsize=512)  # a model's derive step asks at every prediction
def _referenced_columns(text: str) -> tuple[str, ...]:
    names: list[str] = []
    for name, _ in _references(_serialize(text)):
        if name not in names:
            names.append(name)
    return tuple(names)


# --------------------------------------------------------------------------------------------------
# compiling against a schema
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Compiled:
    """An expression checked and bound against a schema: the SQL to run and its result's type."""

    text: str
    sql: str  # SELECT <item> AS "value" FROM batch
    item: str  # the select-list item of ``sql``, to combine several expressions in one query
    type: Any  # the DuckDB type of the result
    arrow_type: Any  # the Arrow type of the result
    is_boolean: bool
    zero_division: str


def compile_expression(
    text: str, schema: pa.Schema, *, zero_division: str = "error", what: str | None = None
) -> Compiled:
    """
    Check ``text`` and bind it to ``schema``'s columns.

    :param text: the expression.
    :param schema: the batch's schema.
    :param zero_division: ``error`` (a zero divisor of ``/``, ``//``, ``%`` fails the evaluation: the
        ETL's rule) or ``null`` (the result is null on that row: a model's derive step, where one row
        must not fail a whole request).
    :param what: the step and column it belongs to, for messages (``derive 'yearly'``).
    :raises ExpressionError: naming the expression, the position and the column when known.
    """
    if zero_division not in ("error", "null"):
        raise ValueError(f"zero_division must be 'error' or 'null', got {zero_division!r}")
    try:
        return _compile(text, schema, zero_division)
    except ExpressionError as error:
        if what:
            raise ExpressionError(f"{what}: {error}") from None
        raise


@functools.lru_cache(maxsize=256)  # steps bind the same text to the same schema for every batch
def _compile(text: str, schema: pa.Schema, zero_division: str) -> Compiled:
    expression = _serialize(text)
    columns = schema.names
    lowered: dict[str, list[str]] = {}
    for name in columns:
        lowered.setdefault(name.lower(), []).append(name)
    for name, position in _references(expression):
        twins = lowered.get(name.lower(), [])
        if not twins:
            near = difflib.get_close_matches(name, columns, n=3) or [
                c for c in columns if c.lower() == name.lower()
            ]
            hint = f"; did you mean {', '.join(quote_name(c) for c in near)}?" if near else ""
            more = f" and {len(columns) - 50} more" if len(columns) > 50 else ""
            raise _fail(
                text,
                f"unknown column {name!r}{hint}{_quote_hint(text, columns)} Columns: {columns[:50]}{more}",
                position,
            )
        if len(twins) > 1:
            raise _fail(
                text,
                f"columns {twins} differ only by case, and SQL names are case-insensitive (quoted or "
                "not): rename one first (a rename step)",
                position,
            )
    original = _PREFIX + text + _SUFFIX
    connection = _connection()
    import pyarrow as pa

    connection.register(BATCH, pa.Table.from_batches([], schema=schema))
    try:
        relation = connection.sql(original)
        result_type = relation.types[0]
        arrow_type = relation.to_arrow_table().schema.field(0).type  # of no rows: nothing to fail
    except Exception as error:  # duckdb.Error: a bind error (a function, types)
        position = _error_position(error, text)
        if position is None:  # the relation API leaves out where; execute() says it
            try:
                connection.execute(original).fetchall()
            except Exception as located:
                position = _error_position(located, text)
        raise _fail(text, _first_line(error) + _quote_hint(text, columns), position) from None
    finally:
        connection.unregister(BATCH)
    sql = original
    divisions = [
        n
        for n in _walk(expression)
        if n.get("class") == "FUNCTION" and n.get("function_name", "").lower() in _DIVISIONS
    ]
    if divisions:
        sql = _check_divisors(expression, divisions, zero_division)
    head, tail = "SELECT ", f' AS "{_VALUE}" FROM {BATCH}'
    if not (sql.startswith(head) and sql.endswith(tail)):  # DuckDB's rendering of a tree changed
        raise AssertionError(f"Unexpected form of the statement built for an expression: {sql!r}")
    item = sql[len(head) : -len(tail)]
    return Compiled(text, sql, item, result_type, arrow_type, str(result_type) == "BOOLEAN", zero_division)


def _check_divisors(expression: dict[str, Any], divisions: list[dict[str, Any]], zero_division: str) -> str:
    """
    The statement with every divisor wrapped: ``a / b`` becomes ``a / __mlops_checked_divisor(b)``
    (an error where b is 0) or ``a / nullif(b, 0)`` (null there). DuckDB raises on ``//`` and ``%``
    by zero but gives +-inf or NaN for ``/``; the ETL's rule is an error for all three.
    """
    wrapper = _CHECKED_DIVISOR if zero_division == "error" else "nullif"
    expression = json.loads(json.dumps(expression))  # the cached tree stays as parsed
    for node in _walk(expression):
        if node.get("class") == "FUNCTION" and node.get("function_name", "").lower() in _DIVISIONS:
            arguments = node.get("arguments") or []
            if len(arguments) != 2:
                continue
            divisor = arguments[1]["expression"]
            extra = [{"name": "", "expression": _constant_zero()}] if wrapper == "nullif" else []
            arguments[1]["expression"] = {
                **_function_template(),
                "function_name": wrapper,
                "qualified_name": {"path": [wrapper]},
                "arguments": [{"name": "", "expression": divisor}, *extra],
            }
    statement = {
        "error": False,
        "statements": [{"node": _statement_template(expression)}],
    }
    rows = _connection().execute("SELECT json_deserialize_sql(?)", [json.dumps(statement)]).fetchall()
    return str(rows[0][0])


@functools.cache
def _template_tree() -> dict[str, Any]:
    sql = "SELECT nullif(a, 0) AS value FROM batch"
    return json.loads(_connection().execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])


def _function_template() -> dict[str, Any]:
    node = _template_tree()["statements"][0]["node"]["select_list"][0]
    return {k: v for k, v in node.items() if k not in ("arguments", "alias")} | {"alias": ""}


def _constant_zero() -> dict[str, Any]:
    node = _template_tree()["statements"][0]["node"]["select_list"][0]
    return json.loads(json.dumps(node["arguments"][1]["expression"]))


def _statement_template(expression: dict[str, Any]) -> dict[str, Any]:
    node = json.loads(json.dumps(_template_tree()["statements"][0]["node"]))
    node["select_list"] = [expression]
    return node


_CONTEXT = re.compile(r"\n\nLINE (\d+): (.*)\n( *)\^")


def _error_position(error: BaseException, text: str) -> int | None:
    """The position in ``text`` DuckDB's error context points at (it shows a window of one line)."""
    match = _CONTEXT.search(str(error))
    if not match:
        return None
    line_number, context = int(match.group(1)), match.group(2)
    column = len(match.group(3)) - len(f"LINE {line_number}: ")
    lines = text.split("\n")
    index = line_number - 2  # line 1 is "SELECT ("
    if not 0 <= index < len(lines):
        return None
    line = lines[index]
    if context.startswith("..."):
        window = context[3:]
        if window.endswith("..."):
            window = window[:-3]
        start = line.find(window) if window else -1
        if start < 0 or line.find(window, start + 1) >= 0:  # not found, or not only once: unknown
            return None
        column = start + column - 3
    return sum(len(earlier) + 1 for earlier in lines[:index]) + column


# --------------------------------------------------------------------------------------------------
# evaluating
# --------------------------------------------------------------------------------------------------
def _table(data: pa.RecordBatch | pa.Table) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data


def evaluate_column(
    data: pa.RecordBatch | pa.Table, text: str, *, zero_division: str = "error", what: str | None = None
) -> pa.ChunkedArray:
    """The values of expression ``text`` for every row of ``data`` (see :func:`compile_expression`)."""
    table = _table(data)
    compiled = compile_expression(text, table.schema, zero_division=zero_division, what=what)
    return _run(compiled, table, what)


def evaluate_columns(
    data: pa.RecordBatch | pa.Table,
    expressions: Sequence[tuple[str, str]],
    *,
    zero_division: str = "error",
    what: str | None = None,
) -> dict[str, pa.ChunkedArray]:
    """
    The values of several ``(column, expression)`` pairs, in order (an expression may read the column
    an earlier one made, or replaced), computed in one query: a derive step's columns for a batch,
    or for a one-row request in the model server, where a query per expression would cost ~1 ms each.

    :param what: the step, for messages (``Step 'derive'``): a failure names the column too.
    """
    import pyarrow as pa

    table = _table(data)
    schema = table.schema
    steps: list[tuple[str, Compiled]] = []
    for name, text in expressions:
        label = f"{what} column {name!r}" if what else f"column {name!r}"
        compiled = compile_expression(text, schema, zero_division=zero_division, what=label)
        steps.append((name, compiled))
        index = schema.get_field_index(name)
        field = pa.field(name, compiled.arrow_type)
        schema = schema.set(index, field) if index >= 0 else schema.append(field)
    if not steps:
        return {}
    lowered = [n.lower() for n in schema.names]
    if len(set(lowered)) != len(lowered) or len(set(schema.names)) != len(schema.names):
        # names SQL cannot tell apart: one query per expression (each refuses an ambiguous read)
        return _evaluate_one_by_one(table, steps, what)
    known = set(table.schema.names)
    source = BATCH
    for level, (name, compiled) in enumerate(steps):
        column = quote_name(name)
        if name in known:
            query = f"SELECT * REPLACE ({compiled.item} AS {column}) FROM {source}"
        else:
            query = f"SELECT *, {compiled.item} AS {column} FROM {source}"
            known.add(name)
        source = f"({query}) AS __step{level}"
    names = list(dict.fromkeys(name for name, _ in steps))
    query = f"SELECT {', '.join(quote_name(n) for n in names)} FROM {source}"
    connection = _connection()
    connection.register(BATCH, table)
    try:
        result = connection.sql(query).to_arrow_table()
    except Exception:  # duckdb.Error: evaluate one by one, to say which expression failed and why
        result = None
    finally:
        connection.unregister(BATCH)
    if result is None or result.num_rows != table.num_rows:
        return _evaluate_one_by_one(table, steps, what)
    return {name: result.column(i) for i, name in enumerate(names)}


def _evaluate_one_by_one(
    table: pa.Table, steps: list[tuple[str, Compiled]], what: str | None
) -> dict[str, pa.ChunkedArray]:
    out: dict[str, pa.ChunkedArray] = {}
    for name, compiled in steps:
        label = f"{what} column {name!r}" if what else f"column {name!r}"
        compiled = compile_expression(
            compiled.text, table.schema, zero_division=compiled.zero_division, what=label
        )
        values = _run(compiled, table, label)
        out[name] = values
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, values) if index >= 0 else table.append_column(name, values)
    return out


def filter_rows(data: pa.RecordBatch | pa.Table, text: str, *, what: str | None = "filter") -> pa.Table:
    """The rows of ``data`` for which condition ``text`` is true (a null result drops the row)."""
    table = _table(data)
    compiled = compile_expression(text, table.schema, what=what)
    if not compiled.is_boolean:
        raise ExpressionError(
            f"{what}: expression {_clip(text)} gives {compiled.type}, and a filter is a condition "
            '(BOOLEAN), e.g. "age" >= 18'
        )
    mask = _run(compiled, table, what)
    return table.filter(mask)


def _run(compiled: Compiled, table: pa.Table, what: str | None) -> pa.ChunkedArray:
    connection = _connection()
    connection.register(BATCH, table)
    try:
        result = connection.sql(compiled.sql).to_arrow_table()
    except Exception as error:  # duckdb.Error: overflow, division by zero, a conversion of a value
        message = _first_line(error)
        hint = ""
        if "overflow" in message.lower():
            hint = (
                " (integer arithmetic is checked: cast to a wider type first, e.g. CAST(x AS HUGEINT) "
                "or CAST(x AS DOUBLE))"
            )
        elif "division by zero" in message.lower():
            hint = " (guard the divisor: a / NULLIF(b, 0) gives NULL where b is 0)"
            message = message.split(". Use TRY(")[0]
        subject = f"{what}: " if what else ""
        raise ExpressionError(
            f"{subject}expression {_clip(compiled.text)} failed on the data: {message}{hint}"
        ) from error
    finally:
        connection.unregister(BATCH)
    if result.num_rows != table.num_rows:  # defensive: the checks above leave one value per row
        raise ExpressionError(
            f"expression {_clip(compiled.text)} gave {result.num_rows} values for {table.num_rows} rows"
        )
    return result.column(0)
