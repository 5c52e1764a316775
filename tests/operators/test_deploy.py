"""Metric-gated promotion with MLflow aliases, challenger, rollback, publishing, reload."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from pytest_httpserver import HTTPServer

from airflow_provider_mlops.hooks.mlflow import MlflowHook
from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.ml.serialization import load_model_version
from airflow_provider_mlops.ml.specs import Gate, Model, Reload
from airflow_provider_mlops.operators.deploy import DeployModelOperator, RollbackModelOperator
from airflow_provider_mlops.operators.train import TrainModelOperator
from tests.conftest import set_connection
from tests.operators.helpers import task_context


def _train(
    dataset: str, conn: str, tmp_path: Path, name: str, estimator: str, params: dict | None = None
) -> str:
    op = TrainModelOperator(
        task_id="train",
        input_uri=dataset,
        label_column="churned",
        registered_model_name=name,
        mlflow_conn_id=conn,
        model_output_uri=(tmp_path / f"m-{estimator}").as_uri(),
        model=Model(estimator=estimator, params=params or {}),
    )
    return op.execute(task_context(tmp_path))["version"]


def test_gate_promotes_a_better_model_refuses_a_worse_one_and_rolls_back(
    dataset: str,
    mlflow_conn: str,
    mlflow_tracking: dict,
    tmp_path: Path,
    httpserver: HTTPServer,
) -> None:
    name = "churn_gate"
    good = _train(
        dataset, mlflow_conn, tmp_path, name, "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 40}
    )
    bad = _train(dataset, mlflow_conn, tmp_path, name, "sklearn.dummy.DummyClassifier")
    httpserver.expect_request("/reload", method="POST").respond_with_json({"ok": True})
    set_connection("serving_test", conn_type="mlops-http", host=httpserver.url_for("/"))
    common = {
        "task_id": "deploy",
        "registered_model_name": name,
        "mlflow_conn_id": mlflow_conn,
        "publish_uri": (tmp_path / "published").as_uri(),
        "reload": Reload("serving_test"),
    }
    judged = {"evaluation_uri": dataset, "label_column": "churned", "gate": Gate(metric="f1", min_delta=0.01)}
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])

    first = DeployModelOperator(
        candidate_version=good,
        **common,
        **judged,
    ).execute(task_context(tmp_path))
    assert first["promoted"] and first["reason"] == "no champion yet"
    assert str(client.get_model_version_by_alias(name, "champion").version) == good
    tags = client.get_model_version(name, good).tags
    assert tags["mlops.promoted_by"].startswith("train_dag.train") and "mlops.promoted_at" in tags
    pointer = json.loads((tmp_path / "published" / "latest.json").read_text())
    assert pointer["version"] == good
    published = load_model_version(
        client, name, good, storage=ObjectStorageHook(aws_conn_id=None), uri=pointer["uri"]
    )
    assert published.sha256 == pointer["sha256"] == client.get_model_version(name, good).tags["mlops.sha256"]
    # The registry vocabulary reads back what training and promotion wrote.
    hook = MlflowHook(mlflow_conn)
    assert hook.version_digest(name, good)["sha256"] == pointer["sha256"]
    lineage = hook.version_lineage(name, good)
    assert lineage["label"] == "churned" and lineage["task"] == "classification"
    assert list(lineage["inputs"]) == [dataset] and lineage["airflow"]["task_id"] == "train"
    assert len(httpserver.log) == 1 and json.loads(httpserver.log[0][0].data)["version"] == good

    # A worse candidate does not win: it becomes the challenger, the champion stays.
    second = DeployModelOperator(
        candidate_version={"version": bad},
        **common,
        **judged,
    ).execute(task_context(tmp_path))
    assert not second["promoted"] and second["candidate_score"] < second["champion_score"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == good
    assert str(client.get_model_version_by_alias(name, "challenger").version) == bad
    assert "not better" in second["reason"]
    # Both models' plots on the fresh rows, in the candidate's run, and the two overlaid.
    mlflow.set_tracking_uri(mlflow_tracking["tracking_uri"])  # runs:/ URIs resolve through it
    run_id = client.get_model_version(name, bad).run_id
    base = second["evaluation_artifacts"].removeprefix(f"runs:/{run_id}/")
    assert base.startswith("promotion/")
    logged = {a.path for a in client.list_artifacts(run_id, base)}
    assert f"{base}/comparison.png" in logged
    for role, version in (("candidate", bad), ("champion", good)):
        folder = {a.path for a in client.list_artifacts(run_id, f"{base}/{role}_v{version}")}
        assert {
            f"{base}/{role}_v{version}/{n}" for n in ("roc_curve.png", "threshold_table.csv", "summary.json")
        } <= folder
    summary = mlflow.artifacts.load_dict(f"runs:/{run_id}/{base}/champion_v{good}/summary.json")
    assert summary["rows"] == 1500 and summary["roc_auc"]["1"] > 0.6
    assert (
        mlflow.artifacts.load_dict(f"runs:/{run_id}/{base}/candidate_v{bad}/summary.json")["roc_auc"]["1"]
        == 0.5
    )

    # Idempotent: the champion as candidate changes nothing.
    again = DeployModelOperator(
        candidate_version=good,
        **common,
        **judged,
    ).execute(task_context(tmp_path))
    assert again["reason"] == "already champion" and not again["promoted"]

    # Rollback re-points the alias, the published latest.json and the serving process.
    rolled = RollbackModelOperator(
        version=bad,
        **common,
    ).execute(task_context(tmp_path))
    assert (
        rolled["reason"] == "rollback"
        and str(client.get_model_version_by_alias(name, "champion").version) == bad
    )
    assert json.loads((tmp_path / "published" / "latest.json").read_text())["version"] == bad
    assert json.loads(httpserver.log[-1][0].data)["version"] == bad


def test_unknown_metric_is_a_clear_error(dataset: str, mlflow_conn: str, tmp_path: Path) -> None:
    version = _train(
        dataset, mlflow_conn, tmp_path, "churn_metric", "sklearn.linear_model.LogisticRegression"
    )
    op = DeployModelOperator(
        task_id="d",
        registered_model_name="churn_metric",
        candidate_version=version,
        evaluation_uri=dataset,
        label_column="churned",
        mlflow_conn_id=mlflow_conn,
        gate=Gate(metric="rmse"),
    )
    with pytest.raises(
        AirflowFailException, match="Metric 'rmse' is not available for a classification model"
    ):
        op.execute(task_context(tmp_path))


def test_a_tie_is_not_promoted_and_the_paired_test_is_recorded(
    dataset: str, mlflow_conn: str, mlflow_tracking: dict, tmp_path: Path
) -> None:
    name = "churn_strict"
    first = _train(dataset, mlflow_conn, tmp_path, name, "sklearn.linear_model.LogisticRegression")
    retrain = _train(dataset, mlflow_conn, tmp_path, name, "sklearn.linear_model.LogisticRegression")
    common = {"task_id": "deploy", "registered_model_name": name, "mlflow_conn_id": mlflow_conn}
    judged = {"evaluation_uri": dataset, "label_column": "churned"}
    assert DeployModelOperator(
        candidate_version=first,
        **common,
        **judged,
        gate=Gate(metric="accuracy"),
    ).execute(task_context(tmp_path))["promoted"]
    # An identical retrain with min_delta=0 (the default): better by +0.0000 is not better.
    tie = DeployModelOperator(
        candidate_version=retrain,
        **common,
        **judged,
        gate=Gate(metric="accuracy", paired_test="mcnemar"),
    ).execute(task_context(tmp_path))
    assert not tie["promoted"] and tie["candidate_score"] == tie["champion_score"]
    assert tie["test"]["p_value"] == 1.0 and "not better" in tie["reason"]
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    assert str(client.get_model_version_by_alias(name, "champion").version) == first
    assert (
        json.loads(client.get_model_version(name, retrain).tags["mlops.promotion_test"])["method"]
        == "mcnemar"
    )

    # A worse champion (a dummy) is replaced by a clearly better model, and the test says how sure.
    worse = _train(dataset, mlflow_conn, tmp_path, name, "sklearn.dummy.DummyClassifier")
    RollbackModelOperator(
        version=worse,
        **common,
    ).execute(task_context(tmp_path))
    win = DeployModelOperator(
        candidate_version=first,
        **common,
        **judged,
        gate=Gate(metric="accuracy", paired_test="bootstrap", n_bootstrap=300),
    ).execute(task_context(tmp_path))
    assert win["promoted"] and win["test"]["p_value"] < 0.05 and win["test"]["gain_low"] > 0
    tag = json.loads(client.get_model_version(name, first).tags["mlops.promotion_test"])
    assert tag["method"] == "bootstrap" and "interval of the gain" in win["reason"]
    with pytest.raises(ValueError, match=r"McNemar|mcnemar"):
        DeployModelOperator(
            candidate_version=first,
            **common,
            **judged,
            gate=Gate(metric="f1", paired_test="mcnemar"),
        )


def test_a_plotting_failure_does_not_decide_the_promotion(
    dataset: str,
    mlflow_conn: str,
    mlflow_tracking: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Fault injection (matplotlib cannot be made to fail on demand): the plots are for people."""
    import airflow_provider_mlops.ml.plots as plots

    def broken(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("no display backend")

    monkeypatch.setattr(plots, "comparison_png", broken)
    name = "churn_plot_fault"
    first = _train(
        dataset, mlflow_conn, tmp_path, name, "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 20}
    )
    worse = _train(dataset, mlflow_conn, tmp_path, name, "sklearn.dummy.DummyClassifier")
    common = {
        "task_id": "deploy",
        "registered_model_name": name,
        "evaluation_uri": dataset,
        "label_column": "churned",
        "gate": Gate(metric="f1"),
        "mlflow_conn_id": mlflow_conn,
    }
    assert DeployModelOperator(
        candidate_version=first,
        **common,
    ).execute(task_context(tmp_path))["promoted"]
    result = DeployModelOperator(
        candidate_version=worse,
        **common,
    ).execute(task_context(tmp_path))
    assert not result["promoted"] and result["evaluation_artifacts"] is None
    logged = capfd.readouterr()
    assert (
        "no display backend" in logged.out + logged.err
        and "does not depend on them" in logged.out + logged.err
    )
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    assert str(client.get_model_version_by_alias(name, "champion").version) == first


def test_the_gate_judges_post_drift_rows_and_a_gain_within_the_uncertainty_is_a_tie(
    dataset: str, mlflow_conn: str, mlflow_tracking: dict, tmp_path: Path
) -> None:
    """#26 item 3: the rows since the drift onset, no promotion by a hair, the decision in the registry."""
    import numpy as np
    import pyarrow as pa

    name = "churn_post_drift"
    frame = pa.Table.from_batches(list(ObjectStorageHook(aws_conn_id=None).iter_batches(dataset))).to_pandas()
    frame["day"] = np.where(np.arange(len(frame)) < 1000, "2026-03-07", "2026-03-08")
    # after the drift (day 8) the label is reversed: the pre-drift model is worse than chance there
    post = frame["day"] == "2026-03-08"
    frame.loc[post, "churned"] = 1 - frame.loc[post, "churned"]
    evaluation = (tmp_path / "eval").as_uri()
    ObjectStorageHook(aws_conn_id=None).write_dataset(
        evaluation, pa.Table.from_pandas(frame, preserve_index=False).to_batches()
    )
    first = _train(dataset, mlflow_conn, tmp_path, name, "sklearn.linear_model.LogisticRegression")
    # a hair better on the post-drift rows (+0.001 ROC AUC with another C): a tie within the uncertainty
    hair = _train(
        dataset, mlflow_conn, tmp_path, name, "sklearn.linear_model.LogisticRegression", {"C": 0.05}
    )
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    client.set_registered_model_tag(name, "mlops.drift_onset", json.dumps({"first_day": "2026-03-08"}))
    common = {
        "task_id": "deploy",
        "registered_model_name": name,
        "evaluation_uri": evaluation,
        "label_column": "churned",
        "gate": Gate(
            metric="roc_auc", min_delta="uncertainty", n_bootstrap=300, since_drift=True, time_column="day"
        ),
        "mlflow_conn_id": mlflow_conn,
    }
    out = DeployModelOperator(
        candidate_version=first,
        **common,
    ).execute(task_context(tmp_path))
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    assert out["promoted"] and out["reason"] == "no champion yet"
    assert (
        "500 post-drift rows (since 2026-03-08, of 1500)" in client.get_model_version(name, first).description
    )
    assert out["candidate_score"] < 0.4, "scored on the reversed, post-drift rows only"
    tie = DeployModelOperator(
        candidate_version=hair,
        **common,
    ).execute(task_context(tmp_path))
    assert not tie["promoted"] and 0 < tie["candidate_score"] - tie["champion_score"] < 0.005
    assert "not better" in tie["reason"] and "the gain's standard error" in tie["reason"]
    description = client.get_model_version(name, hair).description
    assert description.startswith("Not promoted by train_dag.")
    assert f"vs champion v{first}" in description and "500 post-drift rows" in description
    assert client.get_model_version(name, first).description.startswith("Promoted")
    # an onset after the last evaluation row: nothing to judge on, the task fails saying so
    client.set_registered_model_tag(name, "mlops.drift_onset", json.dumps({"first_day": "2026-04-01"}))
    with pytest.raises(AirflowFailException, match="no row on or after the drift onset 2026-04-01"):
        DeployModelOperator(
            candidate_version=hair,
            **common,
        ).execute(task_context(tmp_path))
