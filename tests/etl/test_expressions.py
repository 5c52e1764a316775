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
    compile_expression,
    evaluate_column,
    filter_rows,
    quote_name,
)
from airflow_provider_mlops.etl.steps import Pipeline

BATCH = pa.RecordBatch.from_pydict(
    {"age": [10, 25, None, 70], "country": ["FR", "DE", "US", None], "charges": [10.0, 20.0, 30.0, 40.0]}
)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Few examples, same ones every run: the CI suite stays fast and a failure reproduces.
PROPERTY = settings(
    deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def values(text: str, data: pa.RecordBatch | pa.Table = BATCH) -> list:
    return evaluate_column(data, text).to_pylist()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("age >= 18", [False, True, None, True]),
        ("age >= 18 and country in ['FR', 'DE']", [False, True, False, False]),  # null and false = false
        ("not (country == 'US')", [True, True, False, None]),
        ("is_null(age) or age > 60", [False, False, True, True]),
        ("country not in ['FR']", [False, True, True, True]),
        ("age is None", [False, False, True, False]),
        ("18 <= age < 65", [False, True, None, False]),
        ("charges * 12 > 300", [False, False, True, True]),
        ("starts_with(lower(country), 'f')", [True, False, False, None]),
        ("`age` >= 18", [False, True, None, True]),
        ("-age", [-10, -25, None, -70]),
        ("abs(-age)", [10, 25, None, 70]),
        ("max(age, 20, 15)", [20, 25, 20, 70]),
    ],
)
def test_expressions_evaluate_vectorized(text: str, expected: list) -> None:
    assert values(text) == expected


def test_arithmetic_and_functions() -> None:
    assert values("charges / 4") == [2.5, 5.0, 7.5, 10.0]
    assert values("coalesce(age, 0) % 7") == [3, 4, 0, 0]
    assert values("round(charges / 3, 1)") == [3.3, 6.7, 10.0, 13.3]
    assert values("age ** 2") == [100, 625, None, 4900]


def test_modulo_follows_pythons_sign_rule() -> None:
    data = pa.table({"a": [-7, 7, -7, 7, 2**62 + 1], "b": [3, -3, -3, 3, 2**40]})
    assert values("a % b", data) == [-7 % 3, 7 % -3, -7 % -3, 7 % 3, (2**62 + 1) % 2**40]
    floats = pa.table({"a": [-7.5, 7.5, 0.0], "b": [2.0, -2.0, 2.0]})
    assert values("a % b", floats) == [-7.5 % 2.0, 7.5 % -2.0, 0.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('id')", "Unknown function"),
        ("age.real", "Not allowed"),
        ("unknown_col > 1", "Unknown column 'unknown_col'"),
        ("[x for x in age]", "Not allowed"),
        ("age >", "Cannot parse"),
        ("lower(country, 'x')", "takes 1 argument"),
        ("age in other_col", "literal"),
        ("age in []", "non-empty"),
        ("age in [1, 'a']", "mixes types"),
        ("age in [[1], 2]", "not flat"),
        ("`age`(1)", "is a column"),
        ("contains(country, 1)", "string literal as its pattern"),
        ("round(charges, 1000)", "between -76 and 76"),
        ("min()", "at least 1"),
        ("age + 1j", "Unsupported literal"),
        ("age == ...", "Unsupported literal"),
        ("~age", "Not allowed"),
        ("age // 2", "Not allowed"),
        ("f'{age}' == 'x'", "Not allowed"),
        ("coalesce(age, [1])", "only allowed after 'in'"),
        ("'FR' == 'DE'", "compares two literals"),
        ("1 in [1, 2]", "compares two literals"),
        ("`age", "Unterminated backtick"),
        (42, "is a string"),
    ],
)
def test_unsafe_or_wrong_expressions_are_refused(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        compile_expression(text, BATCH.schema.names)


# --------------------------------------------------------------------------------- quoted names
ISLANDS = pa.table(
    {"Island Name": ["Biscoe", "Dream", "Biscoe", None], "body mass (g)": [3750, 3800, 3250, 4000]}
)


def test_backticks_name_any_column() -> None:
    assert filter_rows(ISLANDS, "`Island Name` == 'Biscoe'").num_rows == 2
    assert values("`body mass (g)` / 1000", ISLANDS) == [3.75, 3.8, 3.25, 4.0]
    # Backticks and operators need no spaces between them.
    assert values("`Island Name`=='Dream'and`body mass (g)`>3000", ISLANDS) == [False, True, False, None]


def test_a_doubled_backtick_is_a_backtick_in_the_name() -> None:
    data = pa.table({"a`b": [1, 2], "``": [10, 20], "": [100, 200]})
    assert quote_name("a`b") == "`a``b`"
    assert values("`a``b` + `` + ``````", data) == [111, 222]


def test_backticks_inside_strings_and_comments_are_text() -> None:
    data = pa.table({"s": ["`x`", "y"], "n": [1, 2]})
    assert values("s == '`x`'", data) == [True, False]
    assert values('s == """`x`"""', data) == [True, False]
    assert values(r"s == '\'`' or n > 1  # a ` in a comment", data) == [False, True]


def test_a_double_quoted_column_name_is_refused_with_the_fix() -> None:
    with pytest.raises(
        ExpressionError, match=r"Write the column as `Island Name`, or the string in single quotes"
    ):
        filter_rows(ISLANDS, "\"Island Name\" == 'Biscoe'")
    # Single quotes are unambiguous: a string, even when it equals a column name.
    assert values("`Island Name` == 'Island Name'", ISLANDS) == [False, False, False, None]
    # A double-quoted string that is no column name is a string.
    assert values('`Island Name` == "Dream"', ISLANDS) == [False, True, False, None]
    # A misspelt double-quoted name is a comparison of two literals: refused too.
    with pytest.raises(ExpressionError, match="compares two literals"):
        filter_rows(ISLANDS, "\"Island Nam\" == 'Biscoe'")


def test_unknown_columns_list_the_columns_and_near_names() -> None:
    with pytest.raises(
        ExpressionError, match=r"Unknown column 'Island name'; did you mean `Island Name`\?"
    ) as info:
        filter_rows(ISLANDS, "`Island name` == 'Biscoe'")
    assert "Columns: ['Island Name', 'body mass (g)']" in str(info.value)
    with pytest.raises(ExpressionError, match=r"goes in backticks: `Island Name`"):
        filter_rows(ISLANDS, "Island Name == 'Biscoe'")


def test_bare_non_ascii_names_are_taken_as_written() -> None:
    # Python's parser reads the identifier "ﬁ" as "fi" (NFKC); the column is the one written.
    fullwidth_x = "\uff38"
    data = pa.table({"ﬁ": [1], "fi": [2], fullwidth_x: [3], "X": [4], "café": [5]})
    assert values("ﬁ * 100 + fi", data) == [102]
    assert values(f"{fullwidth_x} * 100 + X + café", data) == [309]


def test_filter_and_derive_steps_use_quoted_names() -> None:
    pipeline = Pipeline(
        [{"filter": "`Island Name` == 'Biscoe'"}, {"derive": {"kg": "`body mass (g)` / 1000"}}]
    )
    out = pa.Table.from_batches(list(pipeline.apply(ISLANDS.to_batches())))
    assert out.column("kg").to_pylist() == [3.75, 3.25]
    assert pipeline.filtered_out == 2


# Names built to break quoting: spaces, quotes, backticks, semicolons, dots, comment and escape
# characters, unicode (including NFKC-sensitive letters), mixed case, keywords, function names.
ADVERSARIAL = [
    "Island Name",
    "a`b",
    "`",
    "``",
    "",
    " ",
    "x; DROP TABLE t",
    "a.b",
    "'quoted'",
    '"dq"',
    "# not a comment",
    "back\\slash",
    "new\nline",
    "ﬁ",
    "Ünïcödé 名前 😀",
    "MixedCase",
    "mixedcase",
    "and",
    "None",
    "lower",
    "__quoted_0_",
]
names = st.one_of(st.sampled_from(ADVERSARIAL), st.text(min_size=0, max_size=12))


@PROPERTY
@given(name=names, other=names, data=st.lists(st.integers(-1000, 1000) | st.none(), min_size=1, max_size=5))
def test_any_name_round_trips_through_backticks(name: str, other: str, data: list) -> None:
    assume(name != other)
    table = pa.table({name: data, other: list(reversed(data))})
    column, second = table.column(name), table.column(other)
    expression = f"{quote_name(name)} * 2 + {quote_name(other)}"
    assert values(expression, table) == pc.add(pc.multiply(column, 2), second).to_pylist()
    assert filter_rows(table, f"{quote_name(name)} > 0") == table.filter(pc.greater(column, 0))
    assert compile_expression(quote_name(name), [name]).equals(pc.field(name))


@PROPERTY
@given(name=names, text=st.text(max_size=12))
def test_string_literals_holding_quotes_and_backticks_are_kept(name: str, text: str) -> None:
    assume(text != name)
    table = pa.table({name: [text, text + "x", None]})
    # repr() picks the quotes and escapes: backticks, quotes and newlines inside stay text.
    assert values(f"{quote_name(name)} == {text!r}", table) == [True, False, None]


# --------------------------------------------------------------------------------- overflow
@pytest.mark.parametrize(
    "text",
    ["x * 4", "x + x", "-x - x - x", "x ** 2", "abs(y)", "-y", "2 ** 62 * 4 + x", "y % -1"],
)
def test_integer_overflow_is_an_error_naming_the_expression(text: str) -> None:
    data = pa.table({"x": [2**62], "y": [INT64_MIN]})
    with pytest.raises(ExpressionError, match=re.escape(f"Expression {text!r} failed on the data: overflow")):
        values(text, data)


def test_division_by_zero_is_an_error_with_a_way_out() -> None:
    data = pa.table({"a": [1, 2], "b": [0, 2]})
    with pytest.raises(ExpressionError, match=r"divide by zero \(guard the divisor"):
        values("a / b", data)
    assert values("a / if_else(b == 0, None, b)", data) == [None, 1.0]


def test_floats_follow_ieee() -> None:
    data = pa.table({"f": [1e308, -1e308]})
    assert values("f * 10", data) == [float("inf"), float("-inf")]


def test_true_division_refuses_integers_a_float64_cannot_hold() -> None:
    with pytest.raises(ExpressionError, match="not in range"):
        values("x / 2", pa.table({"x": [2**62 + 1]}))


int64s = st.integers(INT64_MIN, INT64_MAX)


@PROPERTY
@given(a=int64s, b=int64s, op=st.sampled_from(["+", "-", "*"]))
def test_integer_arithmetic_is_exact_or_an_error(a: int, b: int, op: str) -> None:
    exact = {"+": a + b, "-": a - b, "*": a * b}[op]
    table = pa.table({"a": [a], "b": [b]})
    if INT64_MIN <= exact <= INT64_MAX:
        assert values(f"a {op} b", table) == [exact]
    else:
        with pytest.raises(ExpressionError, match="overflow"):
            values(f"a {op} b", table)


@PROPERTY
@given(a=int64s, b=int64s.filter(bool))
def test_integer_modulo_matches_python(a: int, b: int) -> None:
    table = pa.table({"a": [a], "b": [b]})
    if a == INT64_MIN and b == -1:  # the quotient 2**63 does not fit
        with pytest.raises(ExpressionError, match="overflow"):
            values("a % b", table)
    else:
        assert values("a % b", table) == [a % b]


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("-9223372036854775808", INT64_MIN),
        ("9223372036854775807", INT64_MAX),
        ("18446744073709551615", 2**64 - 1),
    ],
)
def test_literals_at_the_64_bit_edges(literal: str, expected: int) -> None:
    scalar = pa.scalar(expected, pa.uint64() if expected > INT64_MAX else pa.int64())
    assert compile_expression(f"x == {literal}").equals(pc.equal(pc.field("x"), scalar))


# --------------------------------------------------------------------------------- limits
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x + " * 3000 + "x", "too long"),
        ("x + " * 150 + "x", "nested too deeply"),
        ("-" * 9000 + "x", "nested too deeply"),
        ("not " * 2400 + "x", "nested too deeply"),
        ("(" * 300 + "x" + ")" * 300, "too many nested parentheses"),
        ("[" * 4000 + "]" * 4000, "nested too deeply|too many nested"),
        ("x in [" + ",".join(["1"] * 2500) + "]", "too large"),
        ("x == " + "9" * 5000, "outside the 64-bit range"),
        ("x == 18446744073709551616", "outside the 64-bit range"),
        ("x == -9223372036854775809", "outside the 64-bit range"),
        ("x in [" + "9" * 40 + "]", "outside the 64-bit range"),
        ("x == 0x" + "f" * 4000, "outside the 64-bit range"),
        ("x\x00", "Cannot parse"),
    ],
)
def test_limits_are_expression_errors(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        compile_expression(text, ["x"])


def test_within_the_limits() -> None:
    columns = [f"c{i}" for i in range(90)]
    compile_expression(" + ".join(columns), columns)  # 89 levels deep
    compile_expression("c0 in [" + ",".join(str(i) for i in range(1500)) + "]", columns)
    assert expressions.MAX_LENGTH == 10_000


def test_errors_quote_a_long_expression_shortened() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression("x + " * 2400 + "y", ["x"])
    assert len(str(info.value)) < 500


GRAMMAR_ALPHABET = "xy`'\"()[]+-*/%<>=!., 0123456789eEjnotandorisNe#\\\n_lwabs"


@PROPERTY
@given(text=st.text(alphabet=GRAMMAR_ALPHABET, max_size=40) | st.text(max_size=20))
def test_any_text_compiles_evaluates_or_is_an_expression_error(text: str) -> None:
    table = pa.table({"x": [1, -2, None], "y": [0.5, 0.0, 3.0]})
    try:
        compile_expression(text, ["x", "y"])
        evaluate_column(table, text)
    except ExpressionError:
        pass
