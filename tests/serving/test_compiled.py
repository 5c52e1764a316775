"""
The compiled preprocessing (airflow_provider_mlops.serving.compiled) against scikit-learn itself:
predictions and probabilities must be bit-for-bit those of ``model.predict`` / ``predict_proba`` on
the same rows, through the server's request parsing, on rows hypothesis makes up (missing numbers,
missing and unseen categories, extreme values), for one row and for batches.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_mlops.ml.features import build_preprocessor, model_inputs
from airflow_provider_mlops.ml.serialization import VerifiedModel
from airflow_provider_mlops.serving.app import Served
from airflow_provider_mlops.serving.compiled import compile_pipeline
from airflow_provider_mlops.serving.protocol import InputSchema, parse_table
from tests.serving.helpers import churn_frame

COLUMNS = ("minutes", "tickets", "plan", "region")
SCHEMA = InputSchema(COLUMNS, ("double", "double", "string", "string"))


def _fit(estimator: object, spec: dict | None = None) -> object:
    from sklearn.pipeline import Pipeline

    frame = churn_frame(3000, 1)
    x = model_inputs(frame, "churned")
    pre, numeric, categorical = build_preprocessor(x, spec, target=None)
    return Pipeline([("features", pre), ("model", estimator)]).fit(x[numeric + categorical], frame.churned)


@pytest.fixture(scope="module")
def models() -> dict[str, object]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    return {
        "logistic": _fit(LogisticRegression()),
        "forest": _fit(RandomForestClassifier(n_estimators=15, random_state=0)),
        "minmax": _fit(LogisticRegression(), {"numeric": {"scale": "minmax"}}),
    }


def _served(model: object) -> Served:
    verified = VerifiedModel(
        model=model, name="m", version="1", sha256="0" * 64, uri="-", format="skops", blob=b""
    )
    return Served(verified=verified, schema=SCHEMA, loaded_epoch=0.0, compiled=compile_pipeline(model))


def _reference(rows: list[list[object]]) -> pd.DataFrame:
    """The rows as training and BatchPredictOperator present them: float64 numbers, text with NaN."""
    frame = pd.DataFrame(
        {
            "minutes": np.array([np.nan if r[0] is None else float(r[0]) for r in rows], dtype=np.float64),
            "tickets": np.array([np.nan if r[1] is None else float(r[1]) for r in rows], dtype=np.float64),
            "plan": np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=object),
            "region": np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=object),
        }
    )
    return frame


numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 49.999999999999, 50.0]),
)
plan_text = st.one_of(
    st.sampled_from(["free", "basic", "pro", "Pro", "", "enterprise", "frée"]), st.text(max_size=5)
)
region_text = st.one_of(st.sampled_from(["eu", "na", "apac"]), st.text(max_size=3))
plans = st.one_of(st.none(), plan_text)
regions = st.one_of(st.none(), region_text)
rows = st.lists(st.tuples(numbers, numbers, plans, regions).map(list), min_size=1, max_size=40)


def test_the_example_pipeline_compiles(models: dict[str, object]) -> None:
    assert compile_pipeline(models["logistic"]) is not None
    assert compile_pipeline(models["forest"]) is not None
    # MinMaxScaler is not reproduced: scikit-learn's own predict serves it
    assert compile_pipeline(models["minmax"]) is None


@pytest.mark.parametrize("name", ["logistic", "forest", "minmax"])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=rows)
def test_served_predictions_are_the_pipelines(
    models: dict[str, object], name: str, batch: list[list[object]]
) -> None:
    model = models[name]
    served = _served(model)
    body = json.dumps({"dataframe_split": {"columns": list(COLUMNS), "data": batch}}).encode()
    table = parse_table(body, "application/json", SCHEMA, max_rows=1000)
    got = served.predict(table)
    expected = model.predict(_reference(batch))
    assert got.dtype == expected.dtype
    assert np.array_equal(got, expected)
    if served.compiled is not None:
        features = served.compiled.features(table.values, table.rows)
        if features is not None:  # a missing category sends the batch to the Pipeline
            assert all(isinstance(r[2], str) and isinstance(r[3], str) for r in batch)
            proba = served.compiled.predict_proba(features)
            assert np.array_equal(proba, model.predict_proba(_reference(batch)))  # bit for bit


@pytest.mark.parametrize("size", [1, 2, 999, 20_000])
def test_batches_bit_identical(models: dict[str, object], size: int) -> None:
    model = models["logistic"]
    compiled = compile_pipeline(model)
    x = model_inputs(churn_frame(size, 40 + size), "churned")[list(COLUMNS)]
    x.loc[x.index[::7], "plan"] = "never seen"
    features = compiled.features({c: x[c].to_numpy() for c in x.columns}, len(x))
    assert features is not None
    assert np.array_equal(compiled.predict(features), model.predict(x))
    assert np.array_equal(compiled.predict_proba(features), model.predict_proba(x))
    assert np.array_equal(features, model[:-1].transform(x).to_numpy())


def test_unsupported_pipelines_are_not_compiled() -> None:
    from sklearn.feature_selection import SelectKBest
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = churn_frame(500, 2)
    x = model_inputs(frame, "churned")
    # a selector between the features and the estimator
    pre, numeric, categorical = build_preprocessor(x, None, target=None)
    with_selector = Pipeline(
        [("features", pre), ("select", SelectKBest(k=3)), ("model", LogisticRegression())]
    ).fit(x[numeric + categorical], frame.churned)
    assert compile_pipeline(with_selector) is None
    # an encoder that refuses unknown categories: scikit-learn must raise, not the compiled form ignore
    pre, numeric, categorical = build_preprocessor(x, None, target=None)
    pre.transformers[1][1].steps[-1] = ("encode", OneHotEncoder(handle_unknown="error", sparse_output=False))
    strict = Pipeline([("features", pre), ("model", LogisticRegression())]).fit(
        x[numeric + categorical], frame.churned
    )
    assert compile_pipeline(strict) is None
    # not a Pipeline at all
    assert compile_pipeline(LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])) is None


def test_missing_category_falls_back_to_the_pipeline(models: dict[str, object]) -> None:
    model = models["logistic"]
    served = _served(model)
    batch = [[10.0, 1, None, "eu"], [math.pi, None, "pro", "na"]]
    table = parse_table(
        json.dumps({"dataframe_split": {"columns": list(COLUMNS), "data": batch}}).encode(),
        "application/json",
        SCHEMA,
        max_rows=10,
    )
    assert served.compiled.features(table.values, table.rows) is None
    assert np.array_equal(served.predict(table), model.predict(_reference(batch)))


text_rows = st.lists(
    st.tuples(numbers, numbers, plan_text, region_text).map(list),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=text_rows)
def test_compiled_path_taken_and_exact(models: dict[str, object], batch: list[list[object]]) -> None:
    """Every category present (known or not), numbers missing or not: the compiled form answers, exactly."""
    model = models["logistic"]
    served = _served(model)
    body = json.dumps({"dataframe_records": [dict(zip(COLUMNS, r, strict=True)) for r in batch]}).encode()
    table = parse_table(body, "application/json", SCHEMA, max_rows=1000)
    features = served.compiled.features(table.values, table.rows)
    assert features is not None
    reference = _reference(batch)
    assert np.array_equal(served.compiled.predict(features), model.predict(reference))
    assert np.array_equal(served.compiled.predict_proba(features), model.predict_proba(reference))
    assert np.array_equal(served.predict(table), model.predict(reference))
