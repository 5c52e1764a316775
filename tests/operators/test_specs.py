"""The option groups of the ML operators (ml/specs.py): frozen, checked at parse, and templating still works."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from airflow_provider_mlops.ml.promotion import decide
from airflow_provider_mlops.ml.specs import (
    Decay,
    DriftLimits,
    Gate,
    Model,
    PredictionColumns,
    Retrain,
    TrainingData,
)
from airflow_provider_mlops.operators.deploy import DeployModelOperator, RollbackModelOperator
from airflow_provider_mlops.operators.predict import BatchPredictOperator
from airflow_provider_mlops.operators.train import TrainModelOperator
from airflow_provider_mlops.sensors.drift import DriftSensor

CONTEXT = {"params": {"label": "churned", "model": "churn_model", "version": "7"}, "ds": "2026-12-06"}


def _render(op: object) -> None:
    op.render_template_fields(CONTEXT)  # type: ignore[attr-defined]


def test_templated_arguments_render_beside_the_specs_which_stay_as_given() -> None:
    gate = Gate(metric="roc_auc", min_delta="uncertainty")
    deploy = DeployModelOperator(
        task_id="deploy",
        registered_model_name="{{ params.model }}",
        candidate_version="{{ params.version }}",
        evaluation_uri="file:///data/{{ ds }}",
        label_column="{{ params.label }}",
        gate=gate,
    )
    _render(deploy)
    assert (deploy.registered_model_name, deploy.candidate_version, deploy.label_column) == (
        "churn_model",
        "7",
        "churned",
    )
    assert deploy.evaluation_uri == "file:///data/2026-12-06" and deploy.gate is gate

    train = TrainModelOperator(
        task_id="train",
        input_uri="file:///data/{{ ds }}",
        label_column="{{ params.label }}",
        registered_model_name="{{ params.model }}",
        model=Model(estimator="random_forest"),
        data=TrainingData(time_column="day", window={"days": 7}),
    )
    _render(train)
    assert (train.input_uri, train.label_column, train.registered_model_name) == (
        "file:///data/2026-12-06",
        "churned",
        "churn_model",
    )
    rollback = RollbackModelOperator(
        task_id="rollback", registered_model_name="{{ params.model }}", version="{{ params.version }}"
    )
    _render(rollback)
    assert (rollback.registered_model_name, rollback.version) == ("churn_model", "7")
    sensor = DriftSensor(
        task_id="drift", current_uri="file:///new/{{ ds }}", registered_model_name="{{ params.model }}"
    )
    _render(sensor)
    assert sensor.current_uri == "file:///new/2026-12-06" and sensor.registered_model_name == "churn_model"


def test_specs_are_frozen_and_refuse_bad_values_when_the_dag_is_parsed() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Gate().metric = "rmse"  # type: ignore[misc]
    with pytest.raises(ValueError, match="mcnemar"):
        Gate(metric="f1", paired_test="mcnemar")
    with pytest.raises(ValueError, match="min_delta"):
        Gate(min_delta="a lot")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="since_drift"):
        Gate(since_drift=True)
    with pytest.raises(ValueError, match="window needs a time_column"):
        TrainingData(window={"days": 7})
    with pytest.raises(ValueError, match="split"):
        TrainingData(split="shuffled")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is not allowed"):
        Model(estimator="os.system")
    with pytest.raises(ValueError, match="inside each candidate"):
        Model(candidates=[{"estimator": "random_forest"}], params={"n_estimators": 5})
    with pytest.raises(ValueError, match="exclude"):
        DriftLimits(exclude="age")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"between 0 and 0\.5"):
        Decay(label_column="y", alpha=0.7)
    with pytest.raises(ValueError, match="timedelta"):
        Retrain(cooldown=7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keep"):
        PredictionColumns(keep="id")  # type: ignore[arg-type]
    assert Retrain().cooldown == timedelta(days=7) and PredictionColumns(keep=["id"]).keep == ("id",)


@pytest.mark.parametrize(
    ("operator", "limit"),
    [
        (TrainModelOperator, 12),
        (DeployModelOperator, 12),
        (RollbackModelOperator, 9),
        (DriftSensor, 12),
        (BatchPredictOperator, 10),
    ],
)
def test_each_ml_operator_takes_at_most_twelve_own_arguments(operator: type, limit: int) -> None:
    import inspect

    own = {
        name
        for cls in operator.__mro__
        if cls.__module__.startswith("airflow_provider_mlops") and "__init__" in cls.__dict__
        for name, p in inspect.signature(cls.__dict__["__init__"]).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }
    assert len(own) == limit <= 12, sorted(own)


def test_the_gate_is_strict_and_a_paired_test_must_agree() -> None:
    assert decide(Gate(), 0.8, None).reason == "no champion yet"
    tie = decide(Gate(metric="f1"), 0.80, 0.80, champion="3")
    assert not tie.promote and "not better by +0.0000" in tie.reason
    lower = decide(Gate(metric="rmse", min_delta=0.1), 1.0, 1.2, champion="3")
    assert lower.promote and "better by +0.2000" in lower.reason
    with pytest.raises(ValueError, match="predictions"):
        decide(Gate(min_delta="uncertainty"), 0.9, 0.8, champion="3")
