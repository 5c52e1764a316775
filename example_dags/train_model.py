"""
### Train the churn model: warehouse -> features, selection, tuning -> MLflow registry

Runs when ``mlops_monitor_model`` finds drift or accuracy decay (its ``churn_model_retrain``
Asset; also how the first model is trained), and weekly as a fallback. It extracts the seven days before the newest one (activity joined with the customer
profiles; the join runs in the database) to train on, and the newest day as fresh evaluation data,
profiles the training data (an HTML data profile and a JSON summary beside it: distributions,
missing values, outliers, correlations, each feature against the label, leakage warnings; the
task's *Data profile* link), then trains a scikit-learn Pipeline:

* feature engineering fitted on the training split only: median imputation, IQR outlier clipping,
  standard scaling, one-hot encoding with unknown categories ignored;
* feature selection: near-constant features dropped, then random-forest importance (50 trees,
  depth <= 8);
* a random forest tuned by successive halving over a small grid, stratified 3-fold CV;
* holdout evaluation against a dummy baseline;
* one MLflow run (params, metrics, plots, reference profile for drift detection) and a new version
  of the registered model ``churn_model``; the model file also lands in object storage with its
  sha256 beside it. The task's *MLflow run* link opens the run;
* deployment gated on the metric: the new version takes the ``champion`` alias only when its ROC AUC
  on the fresh day beats the current champion's on the same rows (otherwise it becomes
  ``challenger``), and the promoted model is published with a ``latest.json`` pointer.

Connections: ``mlops_warehouse`` (SQLite in the demo, PostgreSQL in production) and, optionally,
an ``mlops-mlflow`` connection (default: a SQLite MLflow store in ``AIRFLOW_HOME``).
"""

from __future__ import annotations

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

from airflow_provider_mlops.notifications.webhook import WebhookNotifier
from airflow_provider_mlops.operators.deploy import DeployModelOperator
from airflow_provider_mlops.operators.extract import ExtractOperator
from airflow_provider_mlops.operators.profile import ProfileDataOperator
from airflow_provider_mlops.operators.train import TrainModelOperator

WAREHOUSE_CONN_ID = "mlops_warehouse"
ALERTS_CONN_ID = "mlops_alerts"
MODEL_NAME = "churn_model"
TRAINING_DAYS = 7

# Activity joined with profiles for some of the newest days present in the warehouse (portable SQL).
_JOINED_SQL = """
SELECT a.customer_id, a.day, a.sessions, a.minutes_used, a.support_tickets, a.payment_failures,
       c.plan, c.region, c.contract, c.age, c.monthly_charges, c.tenure_months, a.churned
FROM activity a JOIN customers c ON c.customer_id = a.customer_id
WHERE a.day IN (SELECT DISTINCT day FROM activity ORDER BY day DESC LIMIT {limit} OFFSET {offset})
   OR (SELECT count(DISTINCT day) FROM activity) = 1
"""
# Train on the TRAINING_DAYS days before the newest; evaluate candidates on the newest day. With a
# single day in the warehouse (the very first model) both use it: there is no champion to beat yet.
TRAINING_SQL = _JOINED_SQL.format(limit=TRAINING_DAYS, offset=1)
EVALUATION_SQL = _JOINED_SQL.format(limit=1, offset=0)

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
        sql=TRAINING_SQL,
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
        target="churned",
        task="classification",
        registered_model_name=MODEL_NAME,
        features=FEATURES,
        selection=SELECTION,
        estimator="sklearn.ensemble.RandomForestClassifier",
        estimator_params={"n_jobs": 1, "class_weight": "balanced"},
        tuning=TUNING,
        seed=42,
        # profile_training_data already writes the profile of these rows: not computed twice
        # (without that task, leave the default True and the report is logged to the MLflow run).
        profile_data=False,
    )
    # [END howto_operator_train]
    fresh = ExtractOperator(
        task_id="ingest_evaluation_data",
        source_conn_id=WAREHOUSE_CONN_ID,
        sql=EVALUATION_SQL,
        on_empty="fail",
    )
    # [START howto_operator_deploy]
    deploy = DeployModelOperator(
        task_id="deploy_if_better",
        registered_model_name=MODEL_NAME,
        candidate_version=train.output,  # the training XCom; its "version" is used
        evaluation_uri=fresh.output,
        target="churned",
        metric="roc_auc",
        min_delta=0.0,
        publish_uri="staging://published/churn_model",
    )
    # [END howto_operator_deploy]
    ingest >> [profile, train]
    train >> deploy
    fresh >> deploy
