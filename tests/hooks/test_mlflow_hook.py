"""MlflowHook: MLflow I/O through the hook's own client, no process-wide state left behind."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from airflow_provider_mlops.hooks.mlflow import MlflowHook
from tests.conftest import set_connection


def _hook(tmp_path: Path, name: str) -> MlflowHook:
    root = tmp_path / name
    root.mkdir()
    conn_id = set_connection(
        f"mlflow_{name}",
        conn_type="mlops-mlflow",
        host="",
        extra={"tracking_uri": f"sqlite:///{root}/mlflow.db", "artifact_location": (root / "art").as_uri()},
    )
    return MlflowHook(conn_id)


def test_two_hooks_used_alternately_write_to_their_own_stores(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    before = (
        mlflow.get_tracking_uri(),
        os.environ.get("MLFLOW_TRACKING_URI"),
        os.environ.get("MLFLOW_REGISTRY_URI"),
    )
    hooks = {"a": _hook(tmp_path, "a"), "b": _hook(tmp_path, "b")}
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    runs: dict[str, list[str]] = {"a": [], "b": []}
    for round_ in range(2):
        for name, hook in hooks.items():  # a, b, a, b: each call must land in its own store
            experiment = hook.get_or_create_experiment(f"exp-{name}")
            with hook.start_run(experiment, tags={"who": name}) as run:
                run_id = run.info.run_id
                hook.log_params(run_id, {"round": round_})
                hook.log_metrics(run_id, {"score": 0.5 + round_})
                info = hook.log_sklearn_model(
                    run_id,
                    model,
                    name="model",
                    registered_model_name=f"model_{name}",
                    pip_requirements=["scikit-learn"],
                )
            hook.set_version_tags(f"model_{name}", str(info.registered_model_version), {"round": round_})
            hook.set_alias(f"model_{name}", "champion", str(info.registered_model_version))
            runs[name].append(run_id)

    for name, hook in hooks.items():
        other = "b" if name == "a" else "a"
        client = MlflowClient(tracking_uri=hook.tracking_uri, registry_uri=hook.tracking_uri)
        stored = client.search_runs([hook.get_or_create_experiment(f"exp-{name}")])
        assert sorted(r.info.run_id for r in stored) == sorted(runs[name])
        assert all(r.info.status == "FINISHED" and r.data.tags["who"] == name for r in stored)
        assert client.get_experiment_by_name(f"exp-{other}") is None
        assert [m.name for m in client.search_registered_models()] == [f"model_{name}"]
        assert hook.version_by_alias(f"model_{name}", "champion") == "2"
        assert hook.version_by_alias(f"model_{other}", "champion") is None
    # Nothing of either hook is left in MLflow's process-wide state.
    after = (
        mlflow.get_tracking_uri(),
        os.environ.get("MLFLOW_TRACKING_URI"),
        os.environ.get("MLFLOW_REGISTRY_URI"),
    )
    assert after == before


def test_a_failing_block_marks_the_run_failed(tmp_path: Path) -> None:
    hook = _hook(tmp_path, "f")
    experiment = hook.get_or_create_experiment("exp")
    with pytest.raises(RuntimeError), hook.start_run(experiment) as run:
        raise RuntimeError("boom")
    assert hook.client.get_run(run.info.run_id).info.status == "FAILED"


def test_experiments_open_in_mlflows_model_training_view(tmp_path: Path) -> None:
    """#27 item 3: mlflow.experimentKind=custom_model_development (MLflow 3's "Machine learning" view)."""
    hook = _hook(tmp_path, "k")
    created = hook.get_or_create_experiment("new")
    assert hook.client.get_experiment(created).tags["mlflow.experimentKind"] == "custom_model_development"
    older = hook.client.create_experiment("made-before")  # an experiment from before: tagged on first use
    assert "mlflow.experimentKind" not in hook.client.get_experiment(older).tags
    assert hook.get_or_create_experiment("made-before") == older
    assert hook.client.get_experiment(older).tags["mlflow.experimentKind"] == "custom_model_development"
    chosen = hook.client.create_experiment("chosen", tags={"mlflow.experimentKind": "genai_development"})
    hook.get_or_create_experiment("chosen")  # a kind someone chose is kept
    assert hook.client.get_experiment(chosen).tags["mlflow.experimentKind"] == "genai_development"


def test_skops_does_not_spill_airflow_deprecation_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    from scipy import special
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from airflow_provider_mlops.ml.serialization import dump_model

    importlib.import_module("airflow.utils.trigger_rule")  # one of Airflow's deprecated-import shims
    for name in [m for m in sys.modules if m == "skops" or m.startswith("skops.")]:
        monkeypatch.delitem(sys.modules, name)  # a worker imports skops afresh: its import scans too
    pipeline = make_pipeline(FunctionTransformer(special.expit)).fit(np.array([[0.0], [1.0]]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _blob, fmt, _trusted = dump_model(pipeline)
    assert fmt == "skops"
    assert [w for w in caught if "deprecated" in str(w.message).lower()] == []


def test_an_input_example_mlflow_cannot_serve_is_an_error_not_a_swallowed_warning(tmp_path: Path) -> None:
    """
    MLflow validates the input example against the logged model and only logs a warning when that
    fails (issue #28: "DateTime64DType could not be promoted by BoolDType" seen only in the log);
    the same rows would then be refused at serving time. Here: a timezone-aware timestamp column.
    """
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from airflow_provider_mlops.hooks.mlflow import ModelLoggingError

    hook = _hook(tmp_path, "example")
    n = 40
    x = pd.DataFrame(
        {
            "observed_at": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
            "windy": np.arange(n) % 3 == 0,
            "temp": np.linspace(0, 20, n),
        }
    )
    y = (x.temp > 10).astype(int)
    model = Pipeline(
        [("features", ColumnTransformer([("num", "passthrough", ["temp"])])), ("model", LogisticRegression())]
    ).fit(x, y)
    example = x.head(5)
    experiment = hook.get_or_create_experiment("examples")
    with hook.start_run(experiment) as run, pytest.raises(ModelLoggingError, match="timezone") as refused:
        hook.log_sklearn_model(
            run.info.run_id,
            model,
            name="model",
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
        )
    assert "serving would refuse the same input" in str(refused.value)

    # the same model with a naive timestamp logs without a word
    x["observed_at"] = x["observed_at"].dt.tz_localize(None)
    example = x.head(5)
    with hook.start_run(experiment) as run:
        info = hook.log_sklearn_model(
            run.info.run_id,
            model.fit(x, y),
            name="model",
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
        )
    assert info.model_uri.startswith("models:/")


def test_a_non_finite_metric_is_refused_with_its_key(tmp_path: Path) -> None:
    from airflow_provider_mlops.ml.training import NonFiniteValueError

    hook = _hook(tmp_path, "finite")
    with hook.start_run(hook.get_or_create_experiment("finite")) as run:
        with pytest.raises(NonFiniteValueError, match=r"roc_auc = nan"):
            hook.log_metrics(run.info.run_id, {"accuracy": 0.9, "roc_auc": float("nan")})
        hook.log_metrics(run.info.run_id, {"accuracy": 0.9})
    assert hook.client.get_run(run.info.run_id).data.metrics == {"accuracy": 0.9}


def test_issue_28s_date_and_boolean_example_is_an_error_naming_mlflows_reason(tmp_path: Path) -> None:
    """
    #28's weather data: a DATE column and a boolean one, both one-hot encoded behind one imputer.
    MLflow turns the example's dates into datetime64 for the check, the imputer cannot stack them
    with the booleans, MLflow logged "DateTime64DType could not be promoted by BoolDType" and went on.
    """
    import datetime as dt

    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from airflow_provider_mlops.hooks.mlflow import ModelLoggingError

    hook = _hook(tmp_path, "dates")
    n = 40
    x = pd.DataFrame(
        {
            "day": pd.Series([dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(n)], dtype=object),
            "windy": pd.Series([i % 3 == 0 for i in range(n)], dtype=object),
            "temp": np.linspace(0, 20, n),
        }
    )
    y = (x.temp > 10).astype(int)
    categorical = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
    )
    model = Pipeline(
        [
            (
                "features",
                ColumnTransformer([("num", "passthrough", ["temp"]), ("cat", categorical, ["day", "windy"])]),
            ),
            ("model", LogisticRegression()),
        ]
    ).fit(x, y)
    example = x.head(5)
    with (
        hook.start_run(hook.get_or_create_experiment("dates")) as run,
        pytest.raises(
            ModelLoggingError,
            match=r"DateTime64DType'> could not be promoted by <class 'numpy\.dtypes\.BoolDType",
        ),
    ):
        hook.log_sklearn_model(
            run.info.run_id,
            model,
            name="model",
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
        )
