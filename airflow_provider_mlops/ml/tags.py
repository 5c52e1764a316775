"""
The registry vocabulary: every ``mlops.*`` tag key the provider writes to or reads from MLflow, once.

Nothing else in the package spells an ``mlops.`` key (``tests/test_registry_vocabulary.py`` checks
it); :class:`~airflow_provider_mlops.hooks.mlflow.MlflowHook` reads and writes them. The ``airflow.*``
run tags and the MLflow keys the provider sets (run name, experiment kind) are here too. Plain
constants and one plain function, no import: any layer may use them.
"""

from __future__ import annotations

from typing import Any

# --- model version: the model file (the trusted loader checks its bytes against TAG_SHA256) ---------
TAG_SHA256 = "mlops.sha256"
TAG_MODEL_URI = "mlops.model_uri"
TAG_FORMAT = "mlops.format"
TAG_BYTES = "mlops.bytes"
TAG_KERAS_SHA256 = "mlops.keras_sha256"  # the native model.keras inside a keras bundle (informational)
TAG_MLFLOW_SHA256 = "mlops.mlflow_sha256"  # the copy MLflow logged
TAG_MLFLOW_URI = "mlops.mlflow_artifact_uri"

# --- model version: which task registered it (a retry finds its own version by these) -------------
TAG_TASK_PREFIX = "mlops.airflow."  # + dag_id, task_id, run_id, map_index, logical_date
TAG_COMPLETE = "mlops.complete"  # "true" once every step after the registration succeeded
TAG_RUN_ID = "mlops.run_id"  # the MLflow run
TAG_AIRFLOW_RUN_ID = "mlops.airflow_run_id"

# --- model version: the promotion decision (DeployModelOperator) ----------------------------------
TAG_PROMOTED_BY = "mlops.promoted_by"
TAG_PROMOTED_AT = "mlops.promoted_at"
TAG_PROMOTION_REASON = "mlops.promotion_reason"
TAG_PROMOTION_TEST = "mlops.promotion_test"  # the paired test, JSON
TAG_NOT_PROMOTED = "mlops.not_promoted"  # the reason a candidate was kept out

# --- registered model: monitoring state (DriftSensor) ---------------------------------------------
TAG_DRIFT_ONSET = "mlops.drift_onset"
TAG_RETRAIN_REQUEST = "mlops.retrain_request"
TAG_RETRAIN_HOLD = "mlops.retrain_hold"
TAG_SERVED = "mlops.served"  # model version: its first checked days and the newest (decay baseline)

# --- runs: data lineage of a training run, and the drift checks' runs ------------------------------
TAG_INPUTS = "mlops.inputs"  # {dataset URI: schema fingerprint}, JSON
TAG_TASK = "mlops.task"  # classification | regression
TAG_LABEL = "mlops.label"  # the label column
TAG_KIND = "mlops.kind"  # "drift-check" on the monitoring runs
TAG_REPORT = "mlops.report"  # the drift report's HTML URI

# --- model version and runs: the exact rows a model learned from / was judged on (ml/lineage.py) --
# One input: the table URI and its Delta version as they are ("file:///lake/sales", "12"); several
# inputs: JSON lists in the same order (["s3://b/a", "s3://b/b"], [12, 3]). A plain-file input (not
# a Delta table) has version "none" / null. Read them back with MlflowHook.version_lineage.
TAG_TRAINING_DATA_URI = "mlops.training_data.uri"  # TrainModelOperator: the run and the version
TAG_TRAINING_DATA_VERSION = "mlops.training_data.version"
TAG_TRAINING_DATA_DIGEST = "mlops.training_data.digest"  # sha256 of the rows read (order-independent)
TAG_EVALUATION_DATA_URI = "mlops.evaluation_data.uri"  # DeployModelOperator: the candidate version
TAG_EVALUATION_DATA_VERSION = "mlops.evaluation_data.version"
TAG_EVALUATION_DATA_DIGEST = "mlops.evaluation_data.digest"
TAG_REFERENCE_DATA_URI = "mlops.reference_data.uri"  # DriftSensor run: the champion's training data
TAG_REFERENCE_DATA_VERSION = "mlops.reference_data.version"
TAG_CURRENT_DATA_URI = "mlops.current_data.uri"  # DriftSensor run: the data it checked
TAG_CURRENT_DATA_VERSION = "mlops.current_data.version"

#: the (uri, version, digest) keys of each kind of data, for ml/lineage.py
DATA_TAGS = {
    "training": (TAG_TRAINING_DATA_URI, TAG_TRAINING_DATA_VERSION, TAG_TRAINING_DATA_DIGEST),
    "evaluation": (TAG_EVALUATION_DATA_URI, TAG_EVALUATION_DATA_VERSION, TAG_EVALUATION_DATA_DIGEST),
    "reference": (TAG_REFERENCE_DATA_URI, TAG_REFERENCE_DATA_VERSION, None),
    "current": (TAG_CURRENT_DATA_URI, TAG_CURRENT_DATA_VERSION, None),
}

# --- runs: the Airflow task that made the run (every run the provider starts) -----------------------
TAG_AIRFLOW_DAG_ID = "airflow.dag_id"
TAG_AIRFLOW_TASK_ID = "airflow.task_id"
TAG_AIRFLOW_LOGICAL_DATE = "airflow.logical_date"
TAG_AIRFLOW_DAG_RUN_ID = "airflow.run_id"  # the DAG run (TAG_AIRFLOW_RUN_ID is the version's copy)

# --- MLflow's own keys the provider sets ----------------------------------------------------------
TAG_RUN_NAME = "mlflow.runName"  # "<dag_id>.<task_id> <day>"
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"  # which view MLflow 3's UI opens an experiment in
# MLflow 3's "Machine learning" (model training) view; "genai_development" is the GenAI one
EXPERIMENT_KIND_TRAINING = "custom_model_development"


def airflow_run_tags(context: Any) -> dict[str, str]:
    """
    The tags naming the Airflow task of an MLflow run, and its run name ``<dag_id>.<task_id> <day>``:
    the day is the logical date's (``ds``), else the run's ``run_after`` day (an asset-triggered run has
    no logical date), else the DAG run id.
    """
    ti = context["ti"]
    logical_date = context.get("logical_date")
    day = context.get("ds")
    if not day:
        run_after = getattr(context.get("dag_run"), "run_after", None)
        day = str(run_after)[:10] if run_after is not None else str(context.get("run_id") or "")
    return {
        TAG_RUN_NAME: f"{ti.dag_id}.{ti.task_id} {day}".strip(),
        TAG_AIRFLOW_DAG_ID: str(ti.dag_id),
        TAG_AIRFLOW_TASK_ID: str(ti.task_id),
        TAG_AIRFLOW_LOGICAL_DATE: str(logical_date),
        TAG_AIRFLOW_DAG_RUN_ID: str(context.get("run_id")),
    }
