"""
### Train the churn model: warehouse -> features, selection, tuning -> MLflow registry

Runs when ``mlops_monitor_model`` finds drift or accuracy decay (its ``churn_model_retrain``
Asset; also how the first model is trained), and weekly as a fallback. It extracts the newest
fourteen days (activity joined with the customer profiles; the join runs in the database) to train
on, except a quarter of the customers (``customer_id % 4 = 0``), kept out of every training as the
gate's evaluation cohort: neither the champion nor the candidate has learned from their rows,
profiles the training data (an HTML data profile and a JSON summary beside it: distributions,
missing values, outliers, correlations, each feature against the label, leakage warnings; the
task's *Data profile* link), then trains a scikit-learn Pipeline:

* feature engineering fitted on the training split only: median imputation, IQR outlier clipping,
  standard scaling, one-hot encoding with unknown categories ignored;
* feature selection: near-constant features dropped, then random-forest importance (50 trees,
  depth <= 8);
* a training window: the rows since the drift onset the monitor recorded (tag
  ``mlops.drift_onset``; at most the seven newest days), reaching back to 2,000 rows when there are
  fewer, each row weighted by recency (half-life one day): on the drift day the model learns the
  changed world instead of the seven days before it;
* a random forest tuned by successive halving over a small grid, stratified 3-fold CV;
* holdout evaluation (the newest rows; after a drift, the newest fifth of the post-drift rows, so
  that training keeps the rest) against a dummy baseline;
* one MLflow run (params, metrics, plots, reference profile for drift detection) and a new version
  of the registered model ``churn_model``; the model file also lands in object storage with its
  sha256 beside it. The task's *MLflow run* link opens the run;
* deployment gated on the metric: the new version takes the ``champion`` alias only when its ROC AUC
  on the held-out customers' post-drift rows (every day since the drift onset) beats the current
  champion's on the same rows by more than the gain's standard error (otherwise it becomes
  ``challenger``); the decision, both scores and the row counts are the version's description; the
  promoted model is published with a ``latest.json`` pointer.

Connections: ``mlops_warehouse`` (SQLite in the demo, PostgreSQL in production) and, optionally,
an ``mlops-mlflow`` connection (default: a SQLite MLflow store in ``AIRFLOW_HOME``). With
``MLOPS_MODEL_SERVER_CONN_ID`` set (an ``mlops-http`` connection to ``python -m
airflow_provider_mlops.serve``, its reload token as password), a promotion first deploys to that
server (reload, then ``/version`` must report the new version and digest) and moves the alias only
once it serves; the server may start before the first model (it answers 503 until its first reload).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset

# The Task SDK's timetables (Airflow 3.2+): airflow.timetables.* is the scheduler's side and costs ~30 ms
# more to import in a fresh parsing process (it pulls in the serialization layer and cron_descriptor), so
# it is only the fallback for Airflow 3.0 / 3.1, whose Task SDK does not have them.
try:
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable
except ImportError:  # Airflow < 3.2
    from airflow.timetables.assets import AssetOrTimeSchedule
    from airflow.timetables.trigger import CronTriggerTimetable

from airflow_provider_mlops.ml.specs import Gate, Model, TrainingData
from airflow_provider_mlops.notifications.webhook import WebhookNotifier
from airflow_provider_mlops.operators.deploy import DeployModelOperator
from airflow_provider_mlops.operators.extract import ExtractOperator
from airflow_provider_mlops.operators.profile import ProfileDataOperator
from airflow_provider_mlops.operators.train import TrainModelOperator
from airflow_provider_mlops.sources import SqlQuery

WAREHOUSE_CONN_ID = "mlops_warehouse"
ALERTS_CONN_ID = "mlops_alerts"
MODEL_NAME = "churn_model"
# Optional: the model server a promotion deploys to before the alias moves (see the docstring).
MODEL_SERVER_CONN_ID = os.environ.get("MLOPS_MODEL_SERVER_CONN_ID")
# The history extracted for training; the window below picks the rows the model learns from.
HISTORY_DAYS = 14
# A quarter of the customers is never trained on: the gate judges on their rows (with since_drift, on
# those of every post-drift day: ~50 rows a day on a 200-row day, so a retrain a few days after the
# drift is judged on a few hundred rows no model has seen, not on the newest day's 50).
HOLDOUT = "a.customer_id % 4 = 0"
_HISTORY = f"a.day IN (SELECT DISTINCT day FROM activity ORDER BY day DESC LIMIT {HISTORY_DAYS})"

# Activity joined with profiles (portable SQL: SQLite, PostgreSQL, MySQL).
_JOINED_SQL = """
SELECT a.customer_id, a.day, a.sessions, a.minutes_used, a.support_tickets, a.payment_failures,
       c.plan, c.region, c.contract, c.age, c.monthly_charges, c.tenure_months, a.churned
FROM activity a JOIN customers c ON c.customer_id = a.customer_id
WHERE {where}
"""
TRAINING_SQL = _JOINED_SQL.format(where=f"{_HISTORY} AND NOT ({HOLDOUT})")
EVALUATION_SQL = _JOINED_SQL.format(where=f"{_HISTORY} AND {HOLDOUT}")
# Since the drift onset (at most 7 days), at least 2,000 rows, recency half-life of one day.
WINDOW = {"time_column": "day", "since_drift": True, "days": 7, "min_rows": 2000, "half_life": 1}

FEATURES = {
    "numeric": {"impute": "median", "outliers": {"method": "iqr", "factor": 1.5}, "scale": "standard"},
    "categorical": {"impute": "most_frequent", "encode": "onehot", "max_categories": 20},
    "drop": ["customer_id", "day"],
}
SELECTION = [
    {"method": "variance", "threshold": 0.0},
    # A bounded ranking forest: it is refitted at every CV fit and ships inside the model file.
    {
        "method": "model",
        "estimator": "random_forest",
        "estimator_params": {"n_estimators": 50, "max_depth": 8},
        "threshold": "0.5*mean",
    },
]
TUNING = {
    "method": "halving_grid",
    "param_grid": {"n_estimators": [50, 150], "max_depth": [6, 12], "min_samples_leaf": [1, 5]},
    "cv": 3,
    "scoring": "f1",
}

with DAG(
    dag_id="mlops_train_model",
    description="Train, tune and register the churn model",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 0", timezone="UTC"),
        # Emitted by mlops_monitor_model on drift / decay (declared there too, same URI).
        assets=Asset(name="churn_model_retrain", uri="x-mlops-signal://churn_model/retrain"),
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "data-science",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "on_failure_callback": [
            WebhookNotifier(http_conn_id=ALERTS_CONN_ID, title="Training {{ ti.task_id }} failed")
        ],
    },
    tags=["mlops", "training", "example"],
) as dag:
    ingest = ExtractOperator(
        task_id="ingest_training_data",
        source_conn_id=WAREHOUSE_CONN_ID,
        source=SqlQuery(TRAINING_SQL),
        on_empty="fail",
    )
    # [START howto_operator_profile_data]
    profile = ProfileDataOperator(
        task_id="profile_training_data",
        input_uri=ingest.output,
        target="churned",
        outliers=FEATURES["numeric"]["outliers"],  # counted by the rule the features use
    )
    # [END howto_operator_profile_data]
    # [START howto_operator_train]
    train = TrainModelOperator(
        task_id="train_and_tune",
        input_uri=ingest.output,
        label_column="churned",
        registered_model_name=MODEL_NAME,
        model=Model(
            estimator="sklearn.ensemble.RandomForestClassifier",
            params={"n_jobs": 1, "class_weight": "balanced"},
            task="classification",
        ),
        features=FEATURES,
        selection=SELECTION,
        tuning=TUNING,
        # profile_training_data already writes the profile of these rows: not computed twice
        # (without that task, leave the default profile=True and the report is logged to the MLflow run).
        data=TrainingData(window=WINDOW, seed=42, profile=False),
    )
    # [END howto_operator_train]
    fresh = ExtractOperator(
        task_id="ingest_evaluation_data",
        source_conn_id=WAREHOUSE_CONN_ID,
        source=SqlQuery(EVALUATION_SQL),
        on_empty="fail",
    )
    # [START howto_operator_deploy]
    deploy = DeployModelOperator(
        task_id="deploy_if_better",
        registered_model_name=MODEL_NAME,
        candidate_version=train.output,  # the training XCom; its "version" is used
        evaluation_uri=fresh.output,
        label_column="churned",
        gate=Gate(
            metric="roc_auc",
            # a gain within the standard error of the gain on these rows is a tie: no promotion by a hair
            min_delta="uncertainty",
            n_bootstrap=500,
            # judged on the held-out customers' rows since the drift onset
            since_drift=True,
            time_column="day",
        ),
        publish_uri="staging://published/churn_model",
        targets=[{"type": "local_server", "http_conn_id": MODEL_SERVER_CONN_ID}]
        if MODEL_SERVER_CONN_ID
        else [],
    )
    # [END howto_operator_deploy]
    ingest >> [profile, train]
    train >> deploy
    fresh >> deploy
