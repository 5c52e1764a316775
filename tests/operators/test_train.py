"""TrainModelOperator against a local MLflow (SQLite backend): tracking, registry, model file."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pyarrow as pa
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.links.mlflow import MlflowRunLink
from airflow_provider_mlops.ml.serialization import ModelIntegrityError, load_model_version
from airflow_provider_mlops.ml.specs import Model
from airflow_provider_mlops.ml.training import TrainingError
from airflow_provider_mlops.operators.train import TrainModelOperator
from tests.operators.helpers import task_context


def test_trains_tracks_registers_and_the_registered_model_predicts_like_the_pipeline(
    dataset: str, mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path
) -> None:
    op = TrainModelOperator(
        task_id="train",
        input_uri={"uri": dataset},
        label_column="churned",
        registered_model_name="churn_test",
        features={"numeric": {"outliers": {"method": "iqr"}}},
        selection=[{"method": "variance"}],
        tuning={"method": "grid", "param_grid": {"max_depth": [2, 6]}, "cv": 3},
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / "model").as_uri(),
        model=Model(estimator="sklearn.ensemble.RandomForestClassifier", params={"n_estimators": 30}),
    )
    context = task_context(tmp_path)
    out = op.execute(context)
    assert out["model_uri"] == f"models:/churn_test/{out['version']}"
    assert out["metrics"]["accuracy"] > out["baseline_metrics"]["accuracy"]
    assert out["best_params"]["max_depth"] in (2, 6)
    assert context["ti"].pushed["mlflow_run_url"].startswith("http://127.0.0.1:5000/#/experiments/")
    # the extra link Airflow stores when the task ends is that same run URL
    assert MlflowRunLink().get_link(op, ti_key=None) == context["ti"].pushed["mlflow_run_url"]

    mlflow.set_tracking_uri(mlflow_tracking["tracking_uri"])
    client = mlflow.MlflowClient()
    run = client.get_run(out["run_id"])
    assert run.data.tags["airflow.dag_id"] == "train_dag" and dataset in run.data.tags["mlops.inputs"]
    assert float(run.data.metrics["accuracy"]) == pytest.approx(out["metrics"]["accuracy"])
    artifacts = {a.path for a in client.list_artifacts(out["run_id"])} | {
        a.path for a in client.list_artifacts(out["run_id"], "evaluation")
    }
    assert {
        "reference_profile.json",
        "selected_features.json",
        "evaluation/confusion_matrix.png",
        "evaluation/feature_importance.png",
        "evaluation/roc_curve.png",
        "evaluation/precision_recall_curve.png",
        "evaluation/calibration_curve.png",
        "evaluation/threshold_table.png",
        "evaluation/threshold_table.csv",
        "evaluation/threshold_table.json",
        "evaluation/summary.json",
    } <= artifacts
    summary = mlflow.artifacts.load_dict(f"runs:/{out['run_id']}/evaluation/summary.json")
    assert summary["positive_class"] == 1 and str(summary["rows"]) == run.data.params["test_rows"] == "300"
    assert summary["roc_auc"]["1"] == pytest.approx(out["metrics"]["roc_auc"])

    registered = mlflow.sklearn.load_model(out["model_uri"])
    # The same training in this process (same data, specs and seed) predicts exactly like the registry.
    from airflow_provider_mlops.ml.training import train

    in_process = train(
        pa.Table.from_batches(list(ObjectStorageHook(aws_conn_id=None).iter_batches(dataset))).to_pandas(),
        label_column="churned",
        features={"numeric": {"outliers": {"method": "iqr"}}},
        selection=[{"method": "variance"}],
        estimator="sklearn.ensemble.RandomForestClassifier",
        estimator_params={"n_estimators": 30},
        tuning={"method": "grid", "param_grid": {"max_depth": [2, 6]}, "cv": 3},
    )
    assert (registered.predict(in_process.x_test) == in_process.pipeline.predict(in_process.x_test)).all()
    from airflow_provider_mlops.ml.evaluation import PROBABILITY_THRESHOLDS, threshold_table

    logged = mlflow.artifacts.load_dict(f"runs:/{out['run_id']}/evaluation/threshold_table.json")
    assert logged == threshold_table(
        in_process.y_test,
        in_process.pipeline.predict_proba(in_process.x_test)[:, 1],
        1,
        PROBABILITY_THRESHOLDS,
    )
    assert np.allclose(
        registered.predict_proba(in_process.x_test), in_process.pipeline.predict_proba(in_process.x_test)
    )
    stored = load_model_version(
        client, "churn_test", out["version"], storage=ObjectStorageHook(aws_conn_id=None)
    ).model
    assert (
        out["model_file"]
        == (tmp_path / "model" / "churn_test" / f"v{out['version']}" / "model.skops").as_uri()
    )
    frame = pa.Table.from_batches(list(ObjectStorageHook(aws_conn_id=None).iter_batches(dataset))).to_pandas()
    features = frame.drop(columns=["churned"])
    features["plan"] = features["plan"].astype(object)
    features["region"] = features["region"].astype(object)
    assert (registered.predict(features) == stored.predict(features)).all()
    assert client.get_model_version("churn_test", out["version"]).tags["mlops.format"] == "skops"
    # The registry's own copy goes through the same check.
    from_mlflow = load_model_version(client, "churn_test", out["version"], source="mlflow").model
    assert (from_mlflow.predict(features) == stored.predict(features)).all()

    # An unseen category does not crash prediction.
    unseen = features.head(3).copy()
    unseen["plan"] = ["enterprise", None, "pro"]
    assert len(registered.predict(unseen)) == 3


def test_tampered_model_file_is_refused_before_loading(
    dataset: str, mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path
) -> None:
    op = TrainModelOperator(
        task_id="train",
        input_uri=dataset,
        label_column="churned",
        registered_model_name="churn_t2",
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / "m2").as_uri(),
        model=Model(estimator="sklearn.linear_model.LogisticRegression"),
    )
    out = op.execute(task_context(tmp_path))
    path = Path(out["model_file"].removeprefix("file://"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    with pytest.raises(ModelIntegrityError, match=f"churn_t2 version {out['version']}.*refusing to load"):
        load_model_version(client, "churn_t2", out["version"], storage=ObjectStorageHook(aws_conn_id=None))


def test_missing_target_is_a_clear_error(dataset: str, mlflow_conn: str, tmp_path: Path) -> None:
    op = TrainModelOperator(
        task_id="train",
        input_uri=dataset,
        label_column="label",
        registered_model_name="x",
        mlflow_conn_id=mlflow_conn,
    )
    with pytest.raises(AirflowFailException, match="Label column 'label' is not in the data") as failed:
        op.execute(task_context(tmp_path))
    assert isinstance(failed.value.__cause__, TrainingError)  # no retries: the data will not change


def test_candidates_leaderboard_is_logged_and_the_winner_registered(
    dataset: str, mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path
) -> None:
    import json

    op = TrainModelOperator(
        task_id="train",
        input_uri=dataset,
        label_column="churned",
        registered_model_name="churn_candidates",
        tuning={"method": "grid", "cv": 3},
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / "mc").as_uri(),
        model=Model(
            candidates=[
                {"estimator": "logistic_regression", "search_space": {"C": [0.1, 1.0]}},
                {"estimator": "dummy", "name": "always_majority"},
            ]
        ),
    )
    out = op.execute(task_context(tmp_path))
    assert [r["candidate"] for r in out["leaderboard"]] == ["logistic_regression", "always_majority"]
    assert out["estimator"] == "sklearn.linear_model.LogisticRegression"
    assert out["best_params"] == out["leaderboard"][0]["best_params"]
    json.dumps(out)  # XCom-serializable

    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    artifacts = {a.path for a in client.list_artifacts(out["run_id"])} | {
        a.path for a in client.list_artifacts(out["run_id"], "evaluation")
    }
    assert {"leaderboard.csv", "leaderboard.json", "evaluation/leaderboard.png"} <= artifacts
    assert {"evaluation/roc_curve.png", "evaluation/threshold_table.csv"} <= artifacts  # the winner's
    table = mlflow.artifacts.load_text(f"runs:/{out['run_id']}/leaderboard.csv")
    assert table.splitlines()[0].startswith("rank,candidate,estimator,mean_cv_score,std_cv_score,fit_seconds")
    assert client.get_run(out["run_id"]).data.params["estimator"] == out["estimator"]
    model = load_model_version(
        client, "churn_candidates", out["version"], storage=ObjectStorageHook(aws_conn_id=None)
    )
    assert type(model.model.named_steps["model"]).__name__ == "LogisticRegression"


def test_an_unknown_candidate_estimator_is_refused_at_construction() -> None:
    from airflow_provider_mlops.ml.candidates import CandidateSpecError

    with pytest.raises(
        CandidateSpecError, match=r"candidates\[0\]: estimator 'subprocess.Popen' is not allowed"
    ):
        TrainModelOperator(
            task_id="train",
            input_uri="file:///nowhere",
            label_column="y",
            registered_model_name="x",
            model=Model(candidates=[{"estimator": "subprocess.Popen", "params": {"args": "true"}}]),
        )


@pytest.mark.parametrize("path", ["os.system", "subprocess.Popen", "collections.OrderedDict"])
def test_an_unknown_single_estimator_is_refused_at_construction(path: str) -> None:
    import re

    from airflow_provider_mlops.ml.candidates import CandidateSpecError

    with pytest.raises(CandidateSpecError, match=rf"estimator '{re.escape(path)}' is not allowed"):
        TrainModelOperator(
            task_id="train",
            input_uri="file:///nowhere",
            label_column="y",
            registered_model_name="x",
            model=Model(estimator=path),
        )


def test_a_regressor_logs_predicted_vs_actual_and_residuals(
    dataset: str, mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path
) -> None:
    import io
    import json

    import matplotlib.image

    op = TrainModelOperator(
        task_id="train",
        input_uri=dataset,
        label_column="minutes",
        registered_model_name="minutes_reg",
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / "mr").as_uri(),
        model=Model(task="regression", estimator="sklearn.linear_model.Ridge"),
    )
    out = op.execute(task_context(tmp_path))
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    names = {a.path for a in client.list_artifacts(out["run_id"], "evaluation")}
    assert {
        "evaluation/predicted_vs_actual.png",
        "evaluation/residuals.png",
        "evaluation/residual_summary.json",
        "evaluation/summary.json",
    } <= names
    assert not names & {"evaluation/roc_curve.png", "evaluation/confusion_matrix.png"}
    folder = Path(client.download_artifacts(out["run_id"], "evaluation", str(tmp_path / "dl")))
    numbers = json.loads((folder / "residual_summary.json").read_text())
    assert numbers["rmse"] == pytest.approx(out["metrics"]["rmse"])
    assert numbers["rows"] == int(client.get_run(out["run_id"]).data.params["test_rows"])
    image = matplotlib.image.imread(
        io.BytesIO((folder / "predicted_vs_actual.png").read_bytes()), format="png"
    )
    assert image.shape == (480, 640, 4)
