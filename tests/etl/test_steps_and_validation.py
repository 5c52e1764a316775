from __future__ import annotations

import pyarrow as pa
import pytest

from airflow_provider_mlops.etl.steps import Pipeline, StepError, parse_type
from airflow_provider_mlops.etl.validation import SchemaViolation, Validator


def _batches() -> list[pa.RecordBatch]:
    return [
        pa.RecordBatch.from_pydict(
            {
                "Customer ID": [1, 2, 2],
                "age": ["34", None, "17"],
                "charges": [10.0, 5000.0, -3.0],
                "plan": ["pro", "free", "free"],
            }
        ),
        pa.RecordBatch.from_pydict(
            {"Customer ID": [3, 1], "age": ["51", "34"], "charges": [20.0, 10.0], "plan": [None, "pro"]}
        ),
    ]


def test_steps_apply_batch_by_batch() -> None:
    pipeline = Pipeline(
        [
            {"rename": {"Customer ID": "customer_id"}},
            {"cast": {"age": "int64"}},
            {"fill_null": {"age": 0, "plan": "unknown"}},
            {"clip": {"charges": [0, 1000]}},
            {"drop_duplicates": ["customer_id"]},
            {"filter": "age != 17"},
            {"derive": {"yearly": "charges * 12", "adult": "age >= 18"}},
            {"select": ["customer_id", "age", "plan", "yearly", "adult"]},
        ]
    )
    out = pa.Table.from_batches(list(pipeline.apply(_batches())))
    assert out.to_pylist() == [
        {"customer_id": 1, "age": 34, "plan": "pro", "yearly": 120.0, "adult": True},
        {"customer_id": 2, "age": 0, "plan": "free", "yearly": 12000.0, "adult": False},
        {"customer_id": 3, "age": 51, "plan": "unknown", "yearly": 240.0, "adult": True},
    ]
    assert pipeline.duplicates_dropped == 2 and pipeline.rows_in == 5


def test_callables_in_arrow_and_pandas() -> None:
    arrow = Pipeline(callable=lambda b: b.append_column("n", pa.array([1] * b.num_rows)))
    assert pa.Table.from_batches(list(arrow.apply(_batches()))).column("n").to_pylist() == [1] * 5
    pandas = Pipeline(callable=lambda df: df.assign(double=df["charges"] * 2), callable_format="pandas")
    assert pa.Table.from_batches(list(pandas.apply(_batches()))).column("double").to_pylist()[0] == 20.0


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"select": ["nope"]}], r"column\(s\) \['nope'\] not in the data"),
        ([{"explode": "x"}], "unknown step 'explode'"),
        ([{"cast": {"plan": "int64"}}], "Step 'cast': column 'plan'"),
        ([{"select": ["a"], "drop": ["b"]}], "one-key dict"),
    ],
)
def test_bad_steps_name_the_problem(steps: list, message: str) -> None:
    with pytest.raises(StepError, match=message):
        list(Pipeline(steps).apply(_batches()))


def test_parse_type() -> None:
    assert parse_type("timestamp[ms, tz=UTC]") == pa.timestamp("ms", tz="UTC")
    assert parse_type("decimal(10, 2)") == pa.decimal128(10, 2)
    assert parse_type("bool") == pa.bool_()
    with pytest.raises(StepError):
        parse_type("os.system")


SPEC = {
    "columns": {
        "id": {"type": "int64", "nullable": False},
        "age": {"min": 0, "max": 120},
        "plan": {"allowed": ["free", "pro"]},
        "email": {"regex": "^[^@]+@[^@]+$"},
    }
}


def _people() -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "id": [1, 2, None, 4],
            "age": [30, -1, 50, 200],
            "plan": ["pro", "gold", None, "free"],
            "email": ["a@b.c", "a@b.c", "bad", "x@y.z"],
        }
    )


def test_validation_counts_per_column_and_rule_and_splits_rows() -> None:
    validator = Validator(SPEC)
    good, bad = validator.split(_people())
    assert good.column("id").to_pylist() == [1]
    assert bad.column("_violations").to_pylist() == [
        "age:min=0,plan:allowed",
        "id:not_null,email:regex",
        "age:max=120",
    ]
    assert dict(validator.report.violations) == {
        "id:not_null": 1,
        "age:min=0": 1,
        "age:max=120": 1,
        "plan:allowed": 1,
        "email:regex": 1,
    }
    with pytest.raises(SchemaViolation, match=r"3 of 4 rows violate.*column 'id' rule not_null: 1 bad row"):
        validator.raise_if_invalid()


def test_schema_level_errors() -> None:
    with pytest.raises(SchemaViolation, match=r"Column\(s\) \['missing'\] are missing"):
        Validator({"columns": {"missing": {}}}).split(_people())
    with pytest.raises(SchemaViolation, match="Column 'age' has type int64, expected string"):
        Validator({"columns": {"age": {"type": "string"}}}).split(_people())
    with pytest.raises(ValueError, match="Unknown rule"):
        Validator({"columns": {"age": {"minimum": 1}}})
