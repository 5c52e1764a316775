"""
What unchanged MLflow clients depend on (issue #29, item 2): extra columns ignored (refused with
``strict_columns``), numbers in string columns kept as MLflow's server keeps them, MLflow's error codes,
probabilities through ``params: {"predict_method": "predict_proba"}``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from airflow_provider_mlops.ml.features import build_preprocessor, model_inputs
from airflow_provider_mlops.serving.protocol import RequestError
from tests.serving.helpers import COLUMNS, churn_frame, server_for


@pytest.fixture(scope="module")
def model() -> object:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    frame = churn_frame(800, 11)
    x = model_inputs(frame, "churned")
    pre, numeric, categorical = build_preprocessor(x, None, target=None)
    return Pipeline([("features", pre), ("model", LogisticRegression())]).fit(
        x[numeric + categorical], frame.churned
    )


ROWS = [
    {"minutes": 12.5, "tickets": 2, "plan": "free", "region": "eu"},
    {"minutes": None, "tickets": 0, "plan": "pro", "region": "na"},
]


def _expected(model: object, rows: list[dict], method: str = "predict") -> list:
    frame = pd.DataFrame(
        {
            "minutes": np.array(
                [np.nan if r["minutes"] is None else r["minutes"] for r in rows], dtype=float
            ),
            "tickets": np.array([r["tickets"] for r in rows], dtype=float),
            "plan": np.array([r["plan"] for r in rows], dtype=object),
            "region": np.array([r["region"] for r in rows], dtype=object),
        }
    )
    return getattr(model, method)(frame).tolist()


def _predict(server: object, payload: dict) -> object:
    return json.loads(server.predict(json.dumps(payload).encode(), "application/json"))["predictions"]


def test_extra_columns_are_ignored_unless_strict(model: object) -> None:
    extra = [{**r, "customer_id": 7, "note": "vip"} for r in ROWS]
    assert _predict(server_for(model), {"dataframe_records": extra}) == _expected(model, ROWS)
    split = {"columns": [*COLUMNS, "customer_id"], "data": [[*r.values(), 7] for r in ROWS]}
    assert _predict(server_for(model), {"dataframe_split": split}) == _expected(model, ROWS)
    with pytest.raises(RequestError) as strict:
        server_for(model, strict_columns=True).predict(
            json.dumps({"dataframe_records": extra}).encode(), "application/json"
        )
    assert strict.value.status == 400 and strict.value.code == "INVALID_PARAMETER_VALUE"
    assert "'customer_id'" in str(strict.value)


def test_a_number_in_a_string_column_is_scored_as_mlflow_scores_it(model: object) -> None:
    """MLflow keeps the number in the object column: the encoder sees an unknown category."""
    rows = [{**ROWS[0], "plan": 5}, ROWS[1]]
    got = _predict(server_for(model), {"dataframe_records": rows})
    frame = pd.DataFrame(rows).astype({"plan": object, "region": object})
    frame["minutes"] = frame["minutes"].astype(float)
    frame["tickets"] = frame["tickets"].astype(float)
    assert got == model.predict(frame).tolist()
    # as the unknown category it is for a one-hot encoder of strings
    unseen = [{**ROWS[0], "plan": "never seen"}, ROWS[1]]
    assert got == _expected(model, unseen)


def test_mlflow_error_codes(model: object) -> None:
    server = server_for(model)
    cases = {
        "INVALID_PARAMETER_VALUE": [
            {"dataframe_records": [{"minutes": 1, "tickets": 1, "plan": "free"}]},  # missing column
            {"dataframe_records": [{**ROWS[0], "tickets": "many"}]},  # not a number
            {"dataframe_records": ROWS, "params": {"predict_method": "transform"}},
        ],
        "BAD_REQUEST": [{"rows": ROWS}],
    }
    for code, payloads in cases.items():
        for payload in payloads:
            with pytest.raises(RequestError) as refused:
                server.predict(json.dumps(payload).encode(), "application/json")
            assert (refused.value.status, refused.value.code) == (400, code), payload


def test_probabilities_on_request(model: object) -> None:
    server = server_for(model)
    assert server.current.compiled is not None
    for method in ("predict_proba", "predict_log_proba"):
        got = _predict(server, {"dataframe_records": ROWS, "params": {"predict_method": method}})
        assert got == _expected(model, ROWS, method)
        assert np.asarray(got).shape == (2, 2)
    assert _predict(server, {"dataframe_records": ROWS, "params": {}}) == _expected(model, ROWS)
