from __future__ import annotations

import pyarrow as pa
import pytest

from airflow_provider_mlops.etl.expressions import ExpressionError, compile_expression, evaluate

BATCH = pa.RecordBatch.from_pydict(
    {"age": [10, 25, None, 70], "country": ["FR", "DE", "US", None], "charges": [10.0, 20.0, 30.0, 40.0]}
)


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
    ],
)
def test_expressions_evaluate_vectorized(text: str, expected: list) -> None:
    assert evaluate(BATCH, compile_expression(text, BATCH.schema.names)).to_pylist() == expected


def test_arithmetic_and_functions() -> None:
    assert evaluate(BATCH, compile_expression("charges / 4")).to_pylist() == [2.5, 5.0, 7.5, 10.0]
    assert evaluate(BATCH, compile_expression("coalesce(age, 0) % 7")).to_pylist() == [3, 4, 0, 0]
    assert evaluate(BATCH, compile_expression("round(charges / 3, 1)")).to_pylist() == [3.3, 6.7, 10.0, 13.3]


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
    ],
)
def test_unsafe_or_wrong_expressions_are_refused(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        compile_expression(text, BATCH.schema.names)
