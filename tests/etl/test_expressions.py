"""filter / derive expressions in DuckDB SQL: values, quoted names, the sandbox, overflow, errors."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from airflow_provider_mlops.etl import expressions
from airflow_provider_mlops.etl.expressions import (
    ExpressionError,
    evaluate_column,
    filter_rows,
    quote_name,
    referenced_columns,
)
from airflow_provider_mlops.etl.steps import Pipeline

BATCH = pa.RecordBatch.from_pydict(
    {"age": [10, 25, None, 70], "country": ["FR", "DE", "US", None], "charges": [10.0, 20.0, 30.0, 40.0]}
)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Few examples, same ones every run: the CI suite stays fast and a failure reproduces.
PROPERTY = settings(
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)


def values(text: str, data: pa.RecordBatch | pa.Table = BATCH) -> list:
    return evaluate_column(data, text).to_pylist()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("age >= 18", [False, True, None, True]),
        ("age >= 18 AND country IN ('FR', 'DE')", [False, True, False, None]),  # null and false = false
        ("NOT (country = 'US')", [True, True, False, None]),
        ("age IS NULL OR age > 60", [False, False, True, True]),
        ("country NOT IN ('FR')", [False, True, True, None]),  # SQL: null NOT IN (...) is null
        ("age BETWEEN 18 AND 65", [False, True, None, False]),
        ("charges * 12 > 300", [False, False, True, True]),
        ("starts_with(lower(country), 'f')", [True, False, False, None]),
        ('"age" >= 18', [False, True, None, True]),
        ("-age", [-10, -25, None, -70]),
        ("abs(-age)", [10, 25, None, 70]),
        ("greatest(age, 20, 15)", [20, 25, 20, 70]),
        ("CASE WHEN age < 18 THEN 'minor' ELSE 'adult' END", ["minor", "adult", "adult", "adult"]),
        ("coalesce(age, 0) % 7", [3, 4, 0, 0]),
        ("charges / 4", [2.5, 5.0, 7.5, 10.0]),
        ("round(charges / 3, 1)", [3.3, 6.7, 10.0, 13.3]),
        ("age // 7", [1, 3, None, 10]),
        ("country || '-' || CAST(age AS VARCHAR)", ["FR-10", "DE-25", None, None]),
        ("regexp_matches(country, '^[A-E]')", [False, True, False, None]),
    ],
)
def test_sql_expressions_evaluate_per_batch(text: str, expected: list) -> None:
    assert values(text) == expected


def test_a_filter_keeps_the_rows_where_the_condition_is_true() -> None:
    assert filter_rows(BATCH, "age >= 18 AND country <> 'US'").column("age").to_pylist() == [25]
    with pytest.raises(ExpressionError, match=r"gives BIGINT, and a filter is a condition \(BOOLEAN\)"):
        filter_rows(BATCH, "age + 1")


def test_types_of_the_batch_are_kept() -> None:
    data = pa.table(
        {
            "d": pa.array([pa.scalar(19723, pa.date32()).as_py()]),
            "ts": pa.array([0], pa.timestamp("us", tz="UTC")),
            "n": pa.array([3], pa.int32()),
        }
    )
    assert values("year(d) * 100 + month(d)", data) == [202401]
    assert evaluate_column(data, "n + 1").type == pa.int32()
    assert evaluate_column(data, "ts").type == pa.timestamp("us", tz="UTC")


# --------------------------------------------------------------------------------- the sandbox
INJECTED = "not one SQL expression|syntax error"  # refused either way; which depends on the text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # a second statement, or the SELECT around the expression closed early
        ("age; SELECT 1", "syntax error"),
        ('age) AS "value" FROM batch; SELECT (1', INJECTED),
        ("age) AS \"value\" FROM batch; COPY batch TO '/tmp/out.csv'; SELECT (1", INJECTED),
        ("age) AS \"value\" FROM batch; ATTACH '/tmp/x.db'; SELECT (1", "not one SQL expression"),
        ('age) AS "value" FROM batch; INSTALL httpfs; SELECT (1', INJECTED),
        ('age) AS "value" FROM batch; LOAD httpfs; SELECT (1', INJECTED),
        ('age) AS "value" FROM batch; PRAGMA version; SELECT (1', INJECTED),
        ("age) AS \"value\" FROM batch; SET memory_limit='1TB'; SELECT (1", INJECTED),
        ('age) AS "value" FROM batch UNION ALL SELECT (1', INJECTED),
        ('age) AS "value", (1', INJECTED),
        ("age) AS \"value\" FROM batch, read_csv('/etc/passwd') AS t --", INJECTED),
        ("age) AS \"value\" FROM read_parquet('/x.parquet') AS batch --", INJECTED),
        ('age) AS "value" FROM batch WHERE (true', INJECTED),
        ('age) AS "value" FROM batch ORDER BY (1', INJECTED),
        ("age /*", "unterminated /\\* comment"),  # a comment cannot swallow the end of the SELECT
        # table functions and subqueries: only the batch is in reach
        ("(SELECT * FROM read_csv('/etc/passwd'))", "a subquery is not allowed"),
        ("(SELECT count(*) FROM glob('/*'))", "a subquery is not allowed"),
        ("EXISTS (SELECT 1 FROM duckdb_settings())", "a subquery is not allowed"),
        ("age IN (SELECT 1)", "a subquery is not allowed"),
        ("(FROM query('SELECT 1'))", "a subquery is not allowed"),
        # not row by row
        ("sum(age) OVER ()", "a window function is not allowed"),
        ("max(age)", r"max\(\) is an aggregate"),
        ("count(*)", "is an aggregate"),
        ("COLUMNS(*)", "star expression"),
        ("*", "star expression"),
        ("?", "parameter|syntax"),
        ("main.lower(country)", "without a schema"),
        ("getenv('HOME')", "getenv does not exist"),
        # form
        ("unknown_col > 1", "unknown column 'unknown_col'"),
        ("age >", "syntax error"),
        ("lower(age)", "No function matches"),
        ("", "empty string"),
        ("age\x00", "NUL character"),
        (42, "is SQL text"),
    ],
)
def test_anything_but_one_expression_over_the_batch_is_refused(text: object, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate_column(BATCH, text)  # type: ignore[arg-type]
    assert re.search(message, str(info.value)), str(info.value)


def test_comments_are_comments() -> None:
    # A comment closed inside the expression (or ended by its line) is just text: what it holds never runs.
    assert values("age /* ) AS value FROM batch; COPY batch TO 'x' -- */ + 1") == [11, 26, None, 71]
    assert values("1 -- ) AS value FROM batch; DROP TABLE batch") == [1, 1, 1, 1]


def test_the_sandbox_reaches_no_file_setting_or_extension(tmp_path) -> None:
    connection = expressions.connect()
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    for statement in (
        f"SELECT * FROM read_csv('{secret}')",
        f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
        f"ATTACH '{tmp_path / 'x.db'}'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
    ):
        with pytest.raises(Exception, match=r"disabled|locked|Permission|Cannot"):
            connection.execute(statement)
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "x.db").exists()


def test_current_setting_cannot_change_anything() -> None:
    # Reading a setting is harmless; the point is that it answers from the locked sandbox.
    assert values("current_setting('enable_external_access')")[0] is False


# --------------------------------------------------------------------------------- quoted names
ISLANDS = pa.table(
    {"Island Name": ["Biscoe", "Dream", "Biscoe", None], "body mass (g)": [3750, 3800, 3250, 4000]}
)


def test_double_quotes_name_any_column() -> None:
    assert filter_rows(ISLANDS, "\"Island Name\" = 'Biscoe'").num_rows == 2
    assert values('"body mass (g)" / 1000', ISLANDS) == [3.75, 3.8, 3.25, 4.0]
    assert values('"Island Name"=\'Dream\'AND"body mass (g)">3000', ISLANDS) == [False, True, False, None]


def test_a_doubled_quote_is_a_quote_in_the_name() -> None:
    data = pa.table({'a"b': [1, 2], '""': [10, 20]})
    assert quote_name('a"b') == '"a""b"'
    assert values('"a""b" + """"""', data) == [11, 22]


def test_quotes_inside_strings_and_comments_are_text() -> None:
    data = pa.table({"s": ['"x"', "y", "it's"], "n": [1, 2, 3]})
    assert values("s = '\"x\"'", data) == [True, False, False]
    assert values("s = 'it''s' OR n > 1 -- a \" in a comment", data) == [False, True, True]


def test_unknown_columns_name_the_position_and_near_names() -> None:
    with pytest.raises(ExpressionError) as info:
        filter_rows(ISLANDS, '"body mass (g)" > 0 AND "Island Nam" = \'Biscoe\'')
    message = str(info.value)
    assert "Step" not in message and message.startswith("filter: expression")
    assert "at character 24" in message and "unknown column 'Island Nam'" in message
    assert 'did you mean "Island Name"?' in message
    assert "Columns: ['Island Name', 'body mass (g)']" in message
    with pytest.raises(ExpressionError, match=r"at character 7 \(near \"Name = 'Biscoe'\"\): syntax error"):
        filter_rows(ISLANDS, "Island Name = 'Biscoe'")
    # SQL names are case-insensitive, quoted or not
    assert filter_rows(ISLANDS, "\"island name\" = 'Biscoe'").num_rows == 2


def test_a_string_in_double_quotes_is_a_column_name() -> None:
    # SQL: double quotes name a column. A misspelt one is an unknown column, not a string.
    with pytest.raises(ExpressionError, match="unknown column 'Biscoe'"):
        filter_rows(ISLANDS, '"Island Name" = "Biscoe"')


def test_names_that_differ_only_by_case_are_refused_when_read() -> None:
    data = pa.table({"Plan": ["a"], "plan": ["b"], "n": [1]})
    with pytest.raises(ExpressionError, match=r"\['Plan', 'plan'\] differ only by case"):
        values("\"plan\" = 'b'", data)
    assert values("n + 1", data) == [2]
    assert values("N + 1", data) == [2]  # SQL names are case-insensitive


def test_unicode_names() -> None:
    data = pa.table({"ﬁ": [1], "café": [5], "Ünïcödé 名前 😀": [7]})
    assert values('"ﬁ" * 100 + café + "Ünïcödé 名前 😀"', data) == [112]


def test_referenced_columns_in_order_without_lambda_parameters() -> None:
    text = 'coalesce("rain mm", 0) + humidity + list_sum(list_transform(l, lambda x: x + humidity))'
    assert referenced_columns(text) == ["rain mm", "humidity", "l"]


def test_filter_and_derive_steps_name_the_step_and_column() -> None:
    pipeline = Pipeline(
        [{"filter": "\"Island Name\" = 'Biscoe'"}, {"derive": {"kg": '"body mass (g)" / 1000'}}]
    )
    out = pa.Table.from_batches(list(pipeline.apply(ISLANDS.to_batches())))
    assert out.column("kg").to_pylist() == [3.75, 3.25]
    assert pipeline.filtered_out == 2
    with pytest.raises(ExpressionError, match=r"^Step 'derive' column 'kg': expression '\"mass\" / 1000'"):
        list(Pipeline([{"derive": {"kg": '"mass" / 1000'}}]).apply(ISLANDS.to_batches()))


# Names built to break quoting: spaces, quotes, backticks, semicolons, dots, comment and escape
# characters, unicode, keywords, function names, the table's own name.
ADVERSARIAL = [
    "Island Name",
    "a`b",
    '"',
    '""',
    " ",
    "x; DROP TABLE t",
    "a.b",
    "'quoted'",
    '"dq"',
    "-- not a comment",
    "/* not a comment */",
    "back\\slash",
    "new\nline",
    "ﬁ",
    "Ünïcödé 名前 😀",
    "MixedCase",
    "and",
    "NULL",
    "select",
    "lower",
    "batch",
    "value",
]
names = st.one_of(
    st.sampled_from(ADVERSARIAL), st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s)
)


@PROPERTY
@given(name=names, other=names, data=st.lists(st.integers(-1000, 1000) | st.none(), min_size=1, max_size=5))
def test_any_name_round_trips_through_double_quotes(name: str, other: str, data: list) -> None:
    assume(name.lower() != other.lower())  # SQL names are case-insensitive: such pairs are refused
    table = pa.table({name: data, other: list(reversed(data))})
    column, second = table.column(name), table.column(other)
    expression = f"{quote_name(name)} * 2 + {quote_name(other)}"
    assert values(expression, table) == pc.add(pc.multiply(column, 2), second).to_pylist()
    assert filter_rows(table, f"{quote_name(name)} > 0") == table.filter(pc.greater(column, 0))
    assert referenced_columns(expression) == [name, other]


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@PROPERTY
@given(name=names, text=st.text(max_size=12).filter(lambda s: "\x00" not in s))
def test_string_literals_holding_quotes_and_comments_are_kept(name: str, text: str) -> None:
    table = pa.table({name: [text, text + "x", None]})
    assert values(f"{quote_name(name)} = {_sql_string(text)}", table) == [True, False, None]


# --------------------------------------------------------------------------------- overflow, zero
@pytest.mark.parametrize("text", ["x * 4", "x + x", "-x - x - x", "abs(y)", "-y", "y // -1"])
def test_integer_overflow_is_an_error_naming_the_expression(text: str) -> None:
    data = pa.table({"x": [2**62], "y": [INT64_MIN]})
    with pytest.raises(
        ExpressionError, match=re.escape(f"expression {text!r} failed on the data: Out of Range")
    ):
        values(text, data)


def test_narrow_integers_overflow_too() -> None:
    data = pa.table({"n": pa.array([2**30], pa.int32())})
    with pytest.raises(ExpressionError, match="Overflow in multiplication of INT32"):
        values("n * 4", data)
    assert values("CAST(n AS BIGINT) * 4", data) == [2**32]


@pytest.mark.parametrize(
    "text", ["a / b", "a // b", "a % b", "f / b", "f / (f - f)", "fmod(f, b)", "divide(a, b)"]
)
def test_division_by_zero_is_an_error_with_a_way_out(text: str) -> None:
    data = pa.table({"a": [1, 2], "b": [0, 2], "f": [1.5, 0.0]})
    with pytest.raises(ExpressionError, match=r"Division by zero \(guard the divisor: a / NULLIF\(b, 0\)"):
        values(text, data)


def test_guarded_division_and_the_null_rule_of_a_model() -> None:
    data = pa.table({"a": [1, 2, None, 7], "b": [0, 4, 1, -2]})
    assert values("a / NULLIF(b, 0)", data) == [None, 0.5, None, -3.5]
    assert values("CASE WHEN b = 0 THEN NULL ELSE a / b END", data) == [None, 0.5, None, -3.5]
    null = evaluate_column(data, "a / b", zero_division="null").to_pylist()
    assert null == [None, 0.5, None, -3.5]
    assert evaluate_column(data, "a % b", zero_division="null").to_pylist() == [None, 2, None, 1]


def test_floats_follow_ieee() -> None:
    data = pa.table({"f": [1e308, -1e308]})
    assert values("f * 10", data) == [float("inf"), float("-inf")]


int64s = st.integers(INT64_MIN, INT64_MAX)


@PROPERTY
@given(a=int64s, b=int64s, op=st.sampled_from(["+", "-", "*"]))
def test_integer_arithmetic_is_exact_or_an_error(a: int, b: int, op: str) -> None:
    exact = {"+": a + b, "-": a - b, "*": a * b}[op]
    table = pa.table({"a": [a], "b": [b]})
    if INT64_MIN <= exact <= INT64_MAX:
        assert values(f"a {op} b", table) == [exact]
    else:
        with pytest.raises(ExpressionError, match="Overflow"):
            values(f"a {op} b", table)


# --------------------------------------------------------------------------------- limits
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x + " * 3000 + "x", "too long"),
        ("(" * 3000 + "x" + ")" * 3000, "depth|deep|too long"),
        ("NOT " * 2400 + "x", "depth|deep"),
        ("-" * 5000 + "x", "no expression"),  # a line comment
    ],
)
def test_limits_are_expression_errors(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        values(text, pa.table({"x": [1]}))


def test_within_the_limits() -> None:
    columns = {f"c{i}": [i] for i in range(300)}
    assert values(" + ".join(columns), pa.table(columns)) == [sum(range(300))]
    assert values("c0 IN (" + ",".join(str(i) for i in range(1500)) + ")", pa.table(columns)) == [True]
    assert expressions.MAX_LENGTH == 10_000


def test_errors_quote_a_long_expression_shortened() -> None:
    with pytest.raises(ExpressionError) as info:
        values("x + " * 2400 + "y", pa.table({"x": [1]}))
    assert len(str(info.value)) < 800


GRAMMAR_ALPHABET = "xy\"'()+-*/%<>=!.,; 0123456789eEnotandorisNULL-\\\n_lwabsSELECTFROM"


@PROPERTY
@given(text=st.text(alphabet=GRAMMAR_ALPHABET, max_size=40) | st.text(max_size=20))
def test_any_text_evaluates_or_is_an_expression_error(text: str) -> None:
    table = pa.table({"x": [1, -2, None], "y": [0.5, 0.0, 3.0]})
    try:
        result = evaluate_column(table, text)
    except ExpressionError:
        return
    assert len(result) == 3  # one value per row, never a crash of another kind


def test_a_derive_step_runs_its_columns_in_order_in_one_query_and_names_the_one_that_fails() -> None:
    data = pa.table({"x": [1, 2], "y": [10, 0]})
    pipeline = Pipeline([{"derive": {"x": "x * 100", "z": "x + y", "w": "z * 2", "Y2": "y"}}])
    out = pa.Table.from_batches(list(pipeline.apply(data.to_batches())))
    assert out.to_pydict() == {"x": [100, 200], "y": [10, 0], "z": [110, 200], "w": [220, 400], "Y2": [10, 0]}
    failing = Pipeline([{"derive": {"ok": "x + 1", "bad": "x / y", "later": "ok * 2"}}])
    with pytest.raises(
        ExpressionError, match=r"^Step 'derive' column 'bad': expression 'x / y' failed on the data"
    ):
        list(failing.apply(data.to_batches()))


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("age + nope_fn(1)", 6),
        ("age +\n  nope_fn(1)", 8),
        (" + ".join(["age"] * 40) + " + nope_fn(1)", 240),  # DuckDB shows a window of the line
        ("lower(age)", 0),
        ("age >= 18 AND\ncountry = 'FR' AND nope > 1", 33),
    ],
)
def test_errors_give_the_position_in_the_expression(text: str, position: int) -> None:
    with pytest.raises(
        ExpressionError, match=rf"at character {position} \(near '{re.escape(text[position:][:8])}"
    ):
        values(text)


def test_threads_evaluate_at_once_each_on_its_own_cursor_of_the_locked_sandbox() -> None:
    # The model server evaluates derive expressions from several threads at once.
    from concurrent.futures import ThreadPoolExecutor

    def work(start: int) -> bool:
        table = pa.table({"x": list(range(start, start + 1000))})
        for _ in range(20):
            assert values("x * 2 + 1", table) == [2 * v + 1 for v in range(start, start + 1000)]
        with pytest.raises(Exception, match="locked"):
            expressions._connection().execute("SET enable_external_access = true")
        return True

    with ThreadPoolExecutor(6) as pool:
        assert all(pool.map(work, range(0, 60_000, 10_000)))
