"""
Property-based tests over the whole ML path (issue 28, deliver 3): generated tables with every Arrow
type the sources produce, in awkward shapes, through profile -> train (every task kind, every split
strategy) -> deploy -> serve -> batch predict -> drift, the way the ETL got its round-trips.

Invariants, for every generated table:

* each step either works or fails with an error that names the column, and a training that fails
  registers no model version (a retry of the same task and logical date registers no second one);
* every holdout metric is finite, or absent and listed under ``metrics_unavailable`` with a reason;
* the model server (its ASGI app, the one ``mlops-serve`` runs), BatchPredictOperator and the
  fitted Pipeline give the same predictions;
* the data set against its own reference profile is "no drift", for every column type.

The default run is small (``MLOPS_HYPOTHESIS_PROFILE=ci``, the default); ``MLOPS_HYPOTHESIS_PROFILE=deep``
runs many more examples. What they found and how to run them: docs/reliability.md.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from airflow_provider_mlops.ml.specs import Model, TrainingData
from tests.ml import ml_path
from tests.ml.strategies import (
    ALL_KINDS,
    PLAIN_KINDS,
    SPLITS,
    TARGET,
    TASKS,
    MLCase,
    ml_cases,
    typical_column,
    wide_table,
)

_COMMON = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": list(HealthCheck),
    "print_blob": True,
}
# CI: no shrinking (each example is a training; a known failure would cost minutes to shrink)
settings.register_profile(
    "mlops-ci", max_examples=1, phases=[Phase.explicit, Phase.reuse, Phase.generate], **_COMMON
)
settings.register_profile("mlops-deep", max_examples=25, **_COMMON)
DEEP = os.environ.get("MLOPS_HYPOTHESIS_PROFILE", "ci") == "deep"
# the deep run trains hundreds of models per test: past pytest's 600 s default
pytestmark = pytest.mark.timeout(4 * 3600 if DEEP else 600)


# per test: (examples in CI, examples in the deep run)
def _examples(ci: int, deep: int) -> settings:
    return settings(
        settings.get_profile("mlops-deep" if DEEP else "mlops-ci"), max_examples=deep if DEEP else ci
    )


METRIC = {"binary": "f1", "multiclass": "accuracy", "regression": "rmse"}


def _check_metrics(out: dict[str, Any]) -> None:
    """Every metric finite, or absent and listed with a reason."""
    unavailable = out.get(ml_path.UNAVAILABLE) or {}
    for group in ("metrics", "baseline_metrics"):
        for name, value in (out.get(group) or {}).items():
            assert isinstance(value, int | float) and math.isfinite(value), (
                f"{group}[{name!r}] = {value!r} is not finite and not listed in {ml_path.UNAVAILABLE}"
            )
    for name, reason in unavailable.items():
        assert name not in out["metrics"], f"{name} is both a metric and unavailable ({reason})"
        assert isinstance(reason, str) and reason.strip(), f"{name} is unavailable without a reason"


def _train_or_refuse(
    case: MLCase, uri: str, root: Path, name: str, conn: str, client: Any, **kwargs: Any
) -> dict[str, Any] | None:
    """
    TrainModelOperator on the case: its result, or None when it refused the data with an error that
    names a column, having registered nothing.
    """
    out, err = ml_path.attempt(
        ml_path.train,
        uri,
        root,
        target=TARGET,
        name=name,
        mlflow_conn_id=conn,
        task=case.operator_task,
        split_strategy=case.split,
        time_column=case.time_column,
        **kwargs,
    )
    if err is not None:
        versions = ml_path.registered_versions(client, name)
        assert versions == [], f"training failed ({type(err).__name__}: {err}) but registered {versions}"
        assert ml_path.names_a_column(err, case.table.column_names), (
            f"training failed without naming a column: {type(err).__name__}: {err}"
        )
        return None
    assert ml_path.registered_versions(client, name) == [str(out["version"])]
    _check_metrics(out)
    tags = client.get_model_version(name, str(out["version"])).tags
    for key, value in tags.items():
        if key.startswith("metric."):
            assert math.isfinite(float(value)), f"model version tag {key}={value!r} is not finite"
    return out


# --------------------------------------------------------------------------------------------------
# profile: every type, every shape
# --------------------------------------------------------------------------------------------------
@_examples(30, 300)
@given(case=ml_cases())
def test_profile_takes_every_column_type_or_names_the_column(case: MLCase, tmp_path_factory) -> None:
    root = tmp_path_factory.mktemp("profile")
    uri = ml_path.write_dataset(case.table, root)
    out, err = ml_path.attempt(ml_path.profile, uri, root, TARGET)
    if err is not None:
        assert ml_path.names_a_column(err, case.table.column_names), (
            f"ProfileDataOperator failed without naming a column: {type(err).__name__}: {err}"
        )
        assert not (root / "profile" / "profile.json").exists(), "a failed profile left its JSON behind"
        return
    assert out["rows"] == case.table.num_rows and out["columns"] == case.table.num_columns


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_profile_of_each_type(kind: str, tmp_path: Path) -> None:
    """One column of each kind beside a plain one: the profile works (these are the sources' types)."""
    table = _one_kind_table(kind, rows=40)
    uri = ml_path.write_dataset(table, tmp_path)
    out = ml_path.profile(uri, tmp_path, TARGET)
    assert out["rows"] == 40 and out["columns"] == table.num_columns


def _one_kind_table(kind: str, rows: int, seed: int = 3) -> pa.Table:
    """A binary problem: a numeric signal, one column of ``kind`` (values drawn once, seeded), the label."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = np.array([0, 1] * (rows // 2))
    column = typical_column(kind, rows, seed)
    return pa.table(
        {
            "f9_float": pa.array(labels + rng.uniform(0, 0.5, rows)),
            f"f0_{kind}": column,
            TARGET: pa.array(labels, pa.int64()),
        }
    )


# --------------------------------------------------------------------------------------------------
# drift of a data set against its own reference: "no drift", for every type
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_drift_of_each_type_against_its_own_reference_is_none(
    kind: str, tmp_path: Path, mlflow_conn: str, mlflow_tracking: dict[str, str]
) -> None:
    """
    Train on a table with a column of ``kind``; the same table against the reference profile the
    training wrote is no drift for every feature (or the training refused the column by name).
    """
    table = _one_kind_table(kind, rows=60)
    uri = ml_path.write_dataset(table, tmp_path)
    name = f"drift_{kind}_{uuid.uuid4().hex[:6]}"
    client = ml_path.mlflow_client(mlflow_tracking["tracking_uri"])
    case = MLCase(table, "binary", "stratified")
    out = _train_or_refuse(case, uri, tmp_path, name, mlflow_conn, client, profile_data=False)
    if out is None:
        pytest.skip(f"the training refused the {kind} column by name (checked)")
    report = ml_path.drift_against_itself(out["profile_uri"], uri, tmp_path)
    assert report["drifted_reasons"] == {} and not report["dataset_drift"], report["drifted_reasons"]


# --------------------------------------------------------------------------------------------------
# the whole path, for every task kind and split strategy
# --------------------------------------------------------------------------------------------------
def _whole_path(case: MLCase, root: Path, conn: str, tracking_uri: str) -> None:
    """
    profile -> train -> deploy -> serve / batch predict / Pipeline -> drift on one case. Every step's
    problem is collected and the test fails once with all of them (a profile that fails must not hide
    what training, serving or drift do with the same table).
    """
    problems: list[str] = []
    name = f"props_{uuid.uuid4().hex[:10]}"
    client = ml_path.mlflow_client(tracking_uri)
    uri = ml_path.write_dataset(case.table, root)

    # profile: works or names the column
    _, err = ml_path.attempt(ml_path.profile, uri, root, TARGET)
    if err is not None and not ml_path.names_a_column(err, case.table.column_names):
        problems.append(f"profile failed without naming a column: {type(err).__name__}: {err}")
    if err is not None and (root / "profile" / "profile.json").exists():
        problems.append("the failed profile left its profile.json behind")

    out = _train_or_refuse(case, uri, root, name, conn, client)  # asserts: refusals register nothing
    if out is None:
        assert not problems, "\n".join(problems)
        return

    # every consumer loads the model through the trusted loader's default policy (skops, no cloudpickle)
    model, err = ml_path.attempt(ml_path.load_version, tracking_uri, name, out["version"])
    if err is not None:
        problems.append(
            f"the trained model does not load with the default policy: {type(err).__name__}: {err}"
        )
        pytest.fail("\n".join(problems))
    inputs = [str(c) for c in getattr(model.model, "feature_names_in_", [])]
    # the time column orders the split; it is not a feature (TrainModelOperator's docstring)
    if case.time_column and case.time_column in inputs:
        problems.append(f"time_column {case.time_column!r} is a model input: {inputs}")

    deployed, err = ml_path.attempt(
        ml_path.deploy,
        name,
        out["version"],
        uri,
        root,
        target=TARGET,
        metric=METRIC[case.task],
        mlflow_conn_id=conn,
    )
    if err is not None:
        problems.append(f"deploy failed: {type(err).__name__}: {err}")
        pytest.fail("\n".join(problems))
    if not deployed["promoted"] or str(deployed["champion_version"]) != str(out["version"]):
        problems.append(f"the first deploy did not promote version {out['version']}: {deployed['reason']}")

    regression = case.task == "regression"
    pipeline = ml_path.pipeline_predictions(model.model, case.table, TARGET)
    predictions_uri = (root / "predictions").as_uri()
    batch, err = ml_path.attempt(ml_path.batch_predict, name, uri, predictions_uri, root, mlflow_conn_id=conn)
    if err is not None:
        problems.append(f"batch prediction failed: {type(err).__name__}: {err}")
        if ml_path.storage().dataset_info(predictions_uri) is not None:
            problems.append("the failed batch prediction committed a dataset")
    elif batch.num_rows != case.table.num_rows:
        problems.append(f"batch prediction wrote {batch.num_rows} rows for {case.table.num_rows}")
    elif not ml_path.same_predictions(
        batch.column("prediction").to_pylist(), pipeline, regression=regression
    ):
        problems.append(f"batch {batch.column('prediction').to_pylist()} != Pipeline {pipeline}")
    server, err = ml_path.attempt(ml_path.AsgiServer, name, tracking_uri)
    if err is not None:
        problems.append(f"the model server did not start: {type(err).__name__}: {err}")
    else:
        try:
            served, err = ml_path.attempt(server.predict, case.table, inputs)
        finally:
            server.close()
        if err is not None:
            problems.append(f"the model server refused the rows: {type(err).__name__}: {err}")
        elif not ml_path.same_predictions(served, pipeline, regression=regression):
            problems.append(f"server {served} != Pipeline {pipeline}")

    report, err = ml_path.attempt(ml_path.drift_against_itself, out["profile_uri"], uri, root)
    if err is not None:
        problems.append(f"the drift check failed: {type(err).__name__}: {err}")
    elif report["drifted_reasons"] or report["dataset_drift"]:
        problems.append(f"drift of the data against its own reference: {report['drifted_reasons']}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("task", TASKS)
def test_whole_path_on_plain_types(
    task: str, split: str, tmp_path_factory, mlflow_conn: str, mlflow_tracking: dict[str, str]
) -> None:
    """Every task kind x split strategy, on the types every model takes (bool, ints, floats, text)."""
    if task == "regression" and split == "stratified":
        pytest.skip("a stratified split is for classification (auto picks random for regression)")

    @_examples(2, 15)
    @given(case=ml_cases(kinds=PLAIN_KINDS, tasks=(task,), splits=(split,), shapes=("plain",)))
    def run(case: MLCase) -> None:
        _whole_path(case, tmp_path_factory.mktemp("path"), mlflow_conn, mlflow_tracking["tracking_uri"])

    run()


@_examples(10, 150)
@given(case=ml_cases())
def test_whole_path_on_every_type_and_shape(
    case: MLCase, tmp_path_factory, mlflow_conn: str, mlflow_tracking: dict[str, str]
) -> None:
    _whole_path(case, tmp_path_factory.mktemp("path"), mlflow_conn, mlflow_tracking["tracking_uri"])


@pytest.mark.parametrize("shape", ["tiny", "rare_class", "class_absent_from_split", "one_feature"])
def test_whole_path_on_awkward_shapes(
    shape: str, tmp_path_factory, mlflow_conn: str, mlflow_tracking: dict[str, str]
) -> None:
    """Each awkward shape at least once in the default run, on plain types, binary and multi-class."""

    @_examples(2, 15)
    @given(case=ml_cases(kinds=PLAIN_KINDS, tasks=("binary", "multiclass"), shapes=(shape,)))
    def run(case: MLCase) -> None:
        _whole_path(case, tmp_path_factory.mktemp("path"), mlflow_conn, mlflow_tracking["tracking_uri"])

    run()


def test_whole_path_on_a_thousand_features(
    tmp_path: Path, mlflow_conn: str, mlflow_tracking: dict[str, str]
) -> None:
    case = MLCase(wide_table(1000, rows=60), "binary", "stratified")
    _whole_path(case, tmp_path, mlflow_conn, mlflow_tracking["tracking_uri"])


# --------------------------------------------------------------------------------------------------
# issue 28 item 2, as a user meets it: time split, a class absent from the holdout, a retry
# --------------------------------------------------------------------------------------------------
def test_class_absent_from_the_holdout_then_a_retry_registers_one_version_at_most(
    tmp_path: Path, mlflow_conn: str, mlflow_tracking: dict[str, str]
) -> None:
    """
    A time split whose holdout lacks a class: the split is refused naming the class (nothing
    registered), or the model is registered once with ROC AUC listed as unavailable with a reason; a
    retry of the same task and logical date leaves one version.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    rows = 80
    labels = ["storm"] * 8 + list(rng.choice(["dry", "rain", "snow"], rows - 8))  # storm: oldest rows only
    index = {"dry": 0, "rain": 1, "snow": 2, "storm": 3}
    table = pa.table(
        {
            "f9_float": pa.array([index[v] + rng.uniform(0, 0.5) for v in labels]),
            "f0_text_case": pa.array(rng.choice(["Red", "red ", "blue"], rows)),
            "event_day": pa.array([dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(rows)]),
            TARGET: pa.array(labels),
        }
    )
    uri = ml_path.write_dataset(table, tmp_path)
    name = f"absent_{uuid.uuid4().hex[:6]}"
    client = ml_path.mlflow_client(mlflow_tracking["tracking_uri"])
    case = MLCase(table, "multiclass", "time", "event_day")
    from tests.operators.helpers import task_context

    context = task_context(tmp_path)  # the same task of the same DAG run, twice: a retry
    outs = [
        _train_or_refuse(case, uri, tmp_path, name, mlflow_conn, client, context=context) for _ in range(2)
    ]
    if outs[0] is None:
        assert outs[1] is None
        return
    assert "roc_auc" not in outs[0]["metrics"] and "roc_auc" in (outs[0].get(ml_path.UNAVAILABLE) or {})
    assert ml_path.registered_versions(client, name) == [str(outs[0]["version"])]
    assert str(outs[1]["version"]) == str(outs[0]["version"])


def test_a_training_that_fails_after_fitting_registers_nothing(
    tmp_path: Path, mlflow_conn: str, mlflow_tracking: dict[str, str]
) -> None:
    """
    The model file cannot be written (its folder's parent is a file: a real error, even as root):
    the task fails and the registry has no version of the model.
    """
    table = _one_kind_table("int", rows=40)
    uri = ml_path.write_dataset(table, tmp_path)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the model folder should be")
    name = f"fails_{uuid.uuid4().hex[:6]}"
    client = ml_path.mlflow_client(mlflow_tracking["tracking_uri"])
    from airflow_provider_mlops.operators.train import TrainModelOperator
    from tests.operators.helpers import task_context

    op = TrainModelOperator(
        task_id="train",
        input_uri=uri,
        label_column=TARGET,
        registered_model_name=name,
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(blocker / "model").as_uri(),
        model=Model(params={"n_estimators": 5}),
        data=TrainingData(profile=False),
    )
    with pytest.raises(Exception):  # any error: what matters is what it left behind
        op.execute(task_context(tmp_path))
    assert ml_path.registered_versions(client, name) == []
