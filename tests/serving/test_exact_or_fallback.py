"""
Exact or fall back, on every input (issue #29, item 1): whatever the request holds (infinities,
overflowing magnitudes, custom missing markers, unseen categories), the server answers what the
model's own Pipeline answers on the same parsed request, or refuses it where the Pipeline refuses it
(400 naming the column), for every step setting TrainModelOperator's feature spec can produce and for
raw Pipelines with settings the compiled path does not reproduce (a text imputer with
``missing_values="?"``).
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_mlops.ml.features import build_preprocessor, model_inputs
from airflow_provider_mlops.serving.compiled import compile_pipeline
from airflow_provider_mlops.serving.protocol import RequestError, parse_table
from tests.serving.helpers import SCHEMA, churn_frame, server_for

COLUMNS = ("minutes", "tickets", "plan", "region")

# Every setting build_preprocessor accepts (knn and ordinal/target encoding are never compiled, and
# are covered by the fallback all the same).
NUMERIC_IMPUTE = ("none", "mean", "median", "most_frequent", "constant", "knn")
SCALE = ("none", "standard", "minmax", "robust")
OUTLIERS = (None, {"method": "iqr"}, {"method": "zscore"})
TEXT_IMPUTE = ("none", "most_frequent", "constant")
ENCODE = ("onehot", "ordinal", "target")
MAX_CATEGORIES = (None, 2)
ESTIMATORS = ("logistic", "hgb")


@functools.cache
def fitted(
    numeric_impute: str, scale: str, outliers: int, text_impute: str, encode: str, max_categories: int | None
) -> object:
    """The Pipeline TrainModelOperator builds for this spec, fitted on churn-like rows (cached)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    frame = churn_frame(600, 3)
    x = model_inputs(frame, "churned")
    spec = {
        "numeric": {"impute": numeric_impute, "scale": scale, "outliers": OUTLIERS[outliers]},
        "categorical": {"impute": text_impute, "encode": encode, "max_categories": max_categories},
    }
    pre, numeric, categorical = build_preprocessor(x, spec, target=None)
    # the estimators that reject NaN need an imputer; HistGradientBoosting takes NaN (and infinity)
    estimator = (
        LogisticRegression(max_iter=200)
        if numeric_impute != "none"
        else HistGradientBoostingClassifier(max_iter=15, random_state=0)
    )
    return Pipeline([("features", pre), ("model", estimator)]).fit(x[numeric + categorical], frame.churned)


EDGE_NUMBERS = st.sampled_from(
    [math.inf, -math.inf, 1e308, -1.7976931348623157e308, 1e300, 5e-324, -0.0, 2**53 + 1, 1e12]
)
numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    EDGE_NUMBERS,
)
text = st.one_of(
    st.none(),
    st.sampled_from(["free", "basic", "pro", "eu", "na", "?", "", "missing", "never seen", " free"]),
    st.text(max_size=3),
)
batches = st.lists(st.tuples(numbers, numbers, text, text).map(list), min_size=1, max_size=8)
settings_ = st.tuples(
    st.sampled_from(NUMERIC_IMPUTE),
    st.sampled_from(SCALE),
    st.integers(0, len(OUTLIERS) - 1),
    st.sampled_from(TEXT_IMPUTE),
    st.sampled_from(ENCODE),
    st.sampled_from(MAX_CATEGORIES),
)


def _body(batch: list[list[object]]) -> bytes:
    # json.dumps writes Infinity / -Infinity, which MLflow's clients send and Python's json reads
    return json.dumps({"dataframe_split": {"columns": list(COLUMNS), "data": batch}}).encode()


def _pipeline_outcome(model: object, body: bytes) -> tuple[str, object]:
    table = parse_table(body, "application/json", SCHEMA, max_rows=100)
    try:
        return "ok", model.predict(table.frame())
    except ValueError as err:
        return "refused", err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setting=settings_, batch=batches)
def test_every_training_setting_answers_like_the_pipeline_or_refuses_like_it(
    setting: tuple, batch: list[list[object]]
) -> None:
    model = fitted(*setting)
    server = server_for(model)
    body = _body(batch)
    expected = _pipeline_outcome(model, body)
    if expected[0] == "ok":
        got = json.loads(server.predict(body, "application/json"))["predictions"]
        assert got == np.asarray(expected[1]).tolist()
    else:
        with pytest.raises(RequestError) as refused:
            server.predict(body, "application/json")
        assert refused.value.status == 400
        infinite = [
            name
            for j, name in enumerate(COLUMNS[:2])
            if any(isinstance(r[j], float) and math.isinf(r[j]) for r in batch)
        ]
        for name in infinite:  # the refusal names the column holding the infinity
            assert repr(name) in str(refused.value)


def test_infinity_is_refused_like_the_pipeline_refuses_it_with_hist_gradient_boosting() -> None:
    """The reported case: imputer + HistGradientBoosting, Infinity / 1e309 / "inf" got a 200."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline

    frame = churn_frame(600, 5)
    x = model_inputs(frame, "churned")
    pre, numeric, categorical = build_preprocessor(x, {"numeric": {"impute": "median"}}, target=None)
    model = Pipeline([("features", pre), ("model", HistGradientBoostingRegressor(max_iter=20))]).fit(
        x[numeric + categorical], frame.minutes.fillna(0)
    )
    server = server_for(model)
    assert server.current.compiled is not None  # the exact path serves the finite rows
    for body in (
        b'{"dataframe_split": {"columns": ["minutes", "tickets", "plan", "region"], '
        b'"data": [[1.0, 2, "free", "eu"], [Infinity, 1, "pro", "na"]]}}',
        b'{"dataframe_records": [{"minutes": 1e309, "tickets": 1, "plan": "pro", "region": "na"}]}',
        b'{"dataframe_records": [{"minutes": "inf", "tickets": 1, "plan": "pro", "region": "na"}]}',
        b'{"dataframe_records": [{"minutes": 1, "tickets": -Infinity, "plan": "pro", "region": "na"}]}',
    ):
        with pytest.raises(RequestError) as refused:
            server.predict(body, "application/json")
        assert refused.value.status == 400, body
        assert "infinit" in str(refused.value).lower()
        assert ("'minutes'" in str(refused.value)) != ("'tickets'" in str(refused.value))
    finite = b'{"dataframe_records": [{"minutes": 1e300, "tickets": 1, "plan": "pro", "region": "na"}]}'
    table = parse_table(finite, "application/json", SCHEMA, max_rows=1)
    assert json.loads(server.predict(finite, "application/json"))["predictions"] == (
        model.predict(table.frame()).tolist()
    )


def test_a_text_imputer_with_a_custom_marker_is_served_by_the_pipeline() -> None:
    """SimpleImputer(missing_values="?") on text replaces "?": the compiled path must not ignore it."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = churn_frame(600, 6)
    x = model_inputs(frame, "churned")
    x.loc[x.index[::5], "plan"] = "?"
    pre = ColumnTransformer(
        [
            (
                "num",
                Pipeline([("i", SimpleImputer(strategy="median")), ("s", StandardScaler())]),
                ["minutes", "tickets"],
            ),
            (
                "cat",
                Pipeline(
                    [
                        ("i", SimpleImputer(missing_values="?", strategy="most_frequent")),
                        ("e", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                ["plan", "region"],
            ),
        ]
    )
    pre.set_output(transform="pandas")
    model = Pipeline([("features", pre), ("model", Ridge())]).fit(x[list(COLUMNS)], frame.minutes.fillna(3))
    assert compile_pipeline(model) is None
    server = server_for(model)
    body = b'{"dataframe_records": [{"minutes": 3, "tickets": 1, "plan": "?", "region": "eu"}]}'
    table = parse_table(body, "application/json", SCHEMA, max_rows=1)
    assert json.loads(server.predict(body, "application/json"))["predictions"] == (
        model.predict(table.frame()).tolist()
    )


def test_the_load_time_probe_holds_the_edge_values() -> None:
    from airflow_provider_mlops.serving.compiled import EDGE_NUMBERS, edge_frame

    model = fitted("median", "standard", 0, "most_frequent", "onehot", None)
    compiled = compile_pipeline(model)
    assert compiled is not None
    edges = edge_frame(model, compiled)
    minutes = edges["minutes"].to_numpy(dtype=float)
    assert np.isinf(minutes).sum() == 2 and (np.abs(minutes) >= 1e308).sum() == 4
    assert {"?", "", "<unseen category>"} <= set(edges["plan"])
    assert len(EDGE_NUMBERS) >= 8
