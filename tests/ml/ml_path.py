"""
The ML path as a user runs it, one operator at a time, for the property tests and the second real data
set (issue 28): profile -> train -> deploy -> serve -> batch predict -> drift, with the checks every
step owes the user (nothing registered by a failed step, errors that name the column, one prediction
whatever the scoring path).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import json
import math
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.ml.specs import Gate
from tests.operators.helpers import task_context, train_kwargs

# The key of TrainModelOperator's result (and MLflow run tag prefix) that lists the metrics left out,
# each with its reason (issue 28: "a metric that cannot be computed is left out with a reason").
UNAVAILABLE = "metrics_unavailable"


def storage() -> ObjectStorageHook:
    return ObjectStorageHook(aws_conn_id=None)


def write_dataset(table: pa.Table, root: Path, name: str = "data") -> str:
    """``table`` as a committed local dataset; returns its URI."""
    uri = (root / f"{name}-{uuid.uuid4().hex[:8]}").as_uri()
    storage().write_dataset(uri, table.to_batches(max_chunksize=64), schema=table.schema)
    return uri


def read_dataset(uri: str) -> pa.Table:
    hook = storage()
    return pa.Table.from_batches(list(hook.iter_batches(uri)), schema=hook.read_schema(uri))


def mlflow_client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def registered_versions(client: Any, name: str) -> list[str]:
    """Every version of ``name`` in the registry (none when the model does not exist)."""
    return sorted(str(v.version) for v in client.search_model_versions(f"name='{name}'"))


def attempt(step: Any, *args: Any, **kwargs: Any) -> tuple[Any, BaseException | None]:
    """(the step's result, None) or (None, the error it raised): the checks then run outside ``except``."""
    try:
        return step(*args, **kwargs), None
    except Exception as err:
        return None, err


def names_a_column(error: BaseException, columns: list[str]) -> bool:
    """Whether the error's message (or a cause's) names one of ``columns``."""
    seen: BaseException | None = error
    text = ""
    while seen is not None:
        text += f" {seen}"
        seen = seen.__cause__ or seen.__context__
    return any(c in text for c in columns)


# --------------------------------------------------------------------------------------------------
# the steps
# --------------------------------------------------------------------------------------------------
def profile(uri: str, root: Path, target: str | None) -> dict[str, Any]:
    from airflow_provider_mlops.operators.profile import ProfileDataOperator

    op = ProfileDataOperator(
        task_id="profile", input_uri=uri, target=target, output_uri=(root / "profile").as_uri()
    )
    return op.execute(task_context(root))


def train(
    uri: str,
    root: Path,
    *,
    target: str,
    name: str,
    mlflow_conn_id: str,
    context: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """TrainModelOperator; ``context``: give the same one twice to retry a task of one DAG run."""
    from airflow_provider_mlops.operators.train import TrainModelOperator

    # the alias picks the classifier or the regressor by task (docs/operators/train.rst)
    kwargs.setdefault("estimator", "random_forest")
    kwargs.setdefault("estimator_params", {"n_estimators": 15, "max_depth": 4})
    op = TrainModelOperator(
        task_id="train",
        input_uri={"uri": uri},
        label_column=target,
        registered_model_name=name,
        mlflow_conn_id=mlflow_conn_id,
        model_output_uri=(root / "model").as_uri(),
        **train_kwargs(**kwargs),
    )
    out = op.execute(context or task_context(root))
    json.dumps(out, allow_nan=False)  # what the XCom push does: every value JSON (no NaN, no inf)
    return out


def deploy(
    name: str, version: str, uri: str, root: Path, *, target: str, metric: str, mlflow_conn_id: str
) -> dict:
    from airflow_provider_mlops.operators.deploy import DeployModelOperator

    return DeployModelOperator(
        task_id="deploy",
        registered_model_name=name,
        candidate_version=version,
        evaluation_uri=uri,
        label_column=target,
        mlflow_conn_id=mlflow_conn_id,
        publish_uri=(root / "published").as_uri(),
        gate=Gate(metric=metric),
    ).execute(task_context(root))


def batch_predict(name: str, uri: str, output_uri: str, root: Path, *, mlflow_conn_id: str) -> pa.Table:
    from airflow_provider_mlops.operators.predict import BatchPredictOperator

    out = BatchPredictOperator(
        task_id="predict",
        input_uri=uri,
        registered_model_name=name,
        output_uri=output_uri,
        mlflow_conn_id=mlflow_conn_id,
        batch_size=37,
    ).execute(task_context(root))
    return read_dataset(out["uri"])


def load_version(tracking_uri: str, name: str, version: Any = None) -> Any:
    """
    A version (default: the champion) as the trusted loader gives it to every consumer, with its
    default policy (skops and the type allowlist, no cloudpickle).
    """
    from airflow_provider_mlops.ml.serialization import load_model_version

    return load_model_version(mlflow_client(tracking_uri), name, version, storage=storage())


def pipeline_predictions(model: Any, table: pa.Table, target: str | None) -> list[Any]:
    """The fitted Pipeline's predictions on ``table`` read the way training read it."""
    from airflow_provider_mlops.ml.features import model_inputs

    frame = table.to_pandas()
    if target is None or target not in frame.columns:
        frame[target or "__none__"] = 0
        target = target or "__none__"
    x = model_inputs(frame, target)
    wanted = [str(c) for c in getattr(model, "feature_names_in_", x.columns)]
    return list(model.predict(x[wanted]))


def json_value(value: Any) -> Any:
    """A value as a client sends it in JSON (dates and times ISO, bytes base64, Decimal as text)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, list):
        return [json_value(v) for v in value]
    return value


class AsgiServer:
    """The model server's ASGI app in this process (the same app ``mlops-serve`` runs), via HTTPX."""

    def __init__(self, name: str, tracking_uri: str) -> None:
        from starlette.testclient import TestClient

        from airflow_provider_mlops.serving.app import ModelServer, ServeConfig
        from airflow_provider_mlops.serving.http import create_app

        self.server = ModelServer(ServeConfig(model_name=name, tracking_uri=tracking_uri, token="t"))
        self.client = TestClient(create_app(self.server))

    def predict(self, table: pa.Table, columns: list[str]) -> list[Any]:
        rows = [[json_value(v) for v in row.values()] for row in table.select(columns).to_pylist()]
        body = json.dumps({"dataframe_split": {"columns": columns, "data": rows}})
        response = self.client.post(
            "/invocations", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 200, (response.status_code, response.text[:2000])
        return list(response.json()["predictions"])

    def close(self) -> None:
        self.client.close()
        self.server.close()


def drift_against_itself(profile_uri: str, uri: str, root: Path) -> dict[str, Any]:
    """The DriftSensor on ``uri`` against ``profile_uri``: its report (``drift``, per-feature reasons)."""
    from airflow.providers.common.compat.sdk import AirflowSkipException

    from airflow_provider_mlops.sensors.drift import DriftSensor

    report_uri = (root / f"drift-{uuid.uuid4().hex[:6]}").as_uri()
    sensor = DriftSensor(
        task_id="drift",
        current_uri=uri,
        reference_profile_uri=profile_uri,
        report_uri=report_uri,
    )
    with contextlib.suppress(AirflowSkipException):  # "no drift" is a skip
        sensor.poke(task_context(root))
    report = json.loads(storage().get_bytes(f"{report_uri}/report.json"))
    report["drifted_reasons"] = {
        f["name"]: f.get("reasons") for f in report.get("features", []) if f.get("drifted")
    }
    return report


def same_predictions(a: list[Any], b: list[Any], *, regression: bool) -> bool:
    if len(a) != len(b):
        return False
    if regression:
        return all(
            math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-9) for x, y in zip(a, b, strict=True)
        )
    return [str(x) for x in a] == [str(y) for y in b]
