"""
### A user's DAG, written from the docs only: wine lots in the warehouse -> a cultivar model

Not an example of this repository: a second real data set for the suite (issue 28), written the way a
new user writes one from docs/tutorial.rst and docs/operators/*.rst. The warehouse table
``wine_lots`` (PostgreSQL) holds scikit-learn's wine data set (178 lots, 13 measurements, three
cultivars) as a warehouse has it: a lot id, the DATE each lot was measured, an ``is_organic`` flag
and a field that only later lots carry (``sulphites_mg_l``).

extract -> profile -> train -> deploy -> batch predict -> monitor. The split is the default (stratified):
``measured_on`` is a DATE column and no ``time_column``, so it is not a raw feature either.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_mlops.ml.specs import Decay, Gate, Model, PredictionColumns, TrainingData
from airflow_provider_mlops.operators.deploy import DeployModelOperator
from airflow_provider_mlops.operators.extract import ExtractOperator
from airflow_provider_mlops.operators.predict import BatchPredictOperator
from airflow_provider_mlops.operators.profile import ProfileDataOperator
from airflow_provider_mlops.operators.train import TrainModelOperator
from airflow_provider_mlops.sensors.drift import DriftSensor
from airflow_provider_mlops.sources import SqlQuery

WAREHOUSE = "wine_warehouse"
MLFLOW = "wine_mlflow"
MODEL = "wine_cultivar"
TARGET = "cultivar"

with DAG(
    dag_id="wine_lots_model",
    description="Wine lots: profile, train, deploy, predict, monitor",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["wine", "issue-28"],
) as dag:
    extract = ExtractOperator(
        task_id="extract_lots",
        source_conn_id=WAREHOUSE,
        source=SqlQuery("SELECT * FROM wine_lots ORDER BY lot_id"),
        on_empty="fail",
    )
    profile = ProfileDataOperator(
        task_id="profile_lots",
        input_uri=extract.output,
        target=TARGET,
        output_uri="staging://profiles/wine_lots/{{ ds }}",
    )
    train = TrainModelOperator(
        task_id="train_cultivar_model",
        input_uri=extract.output,
        label_column=TARGET,
        registered_model_name=MODEL,
        features={"drop": ["lot_id"]},
        mlflow_conn_id=MLFLOW,
        model=Model(
            task="classification", estimator="random_forest", params={"n_estimators": 60, "max_depth": 6}
        ),
        data=TrainingData(seed=7),
    )
    deploy = DeployModelOperator(
        task_id="deploy_if_better",
        registered_model_name=MODEL,
        candidate_version=train.output,
        evaluation_uri=extract.output,
        label_column=TARGET,
        publish_uri="staging://published/wine_cultivar",
        mlflow_conn_id=MLFLOW,
        gate=Gate(metric="accuracy"),
    )
    predict = BatchPredictOperator(
        task_id="predict_lots",
        input_uri=extract.output,
        registered_model_name=MODEL,
        output_uri="staging://predictions/wine_lots",
        mlflow_conn_id=MLFLOW,
        columns=PredictionColumns(keep=["lot_id"]),
    )
    monitor = DriftSensor(
        task_id="monitor_lots",
        current_uri=extract.output,
        registered_model_name=MODEL,
        report_uri="staging://monitoring/wine_lots/{{ ds }}",
        mlflow_conn_id=MLFLOW,
        timeout=300,
        decay=Decay(label_column=TARGET, metric="accuracy"),
    )
    extract >> [profile, train]
    train >> deploy >> predict >> monitor
