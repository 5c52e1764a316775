"""TrainModelOperator: dataset URI(s) -> tuned scikit-learn Pipeline, tracked and registered in MLflow."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_mlops.links.mlflow import XCOM_KEY, MlflowRunLink
from airflow_provider_mlops.operators.common import (
    fail_fast,
    require_inputs,
    resolve_output_uri,
    storage_hook,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context


class TrainModelOperator(BaseOperator):
    """
    Train a scikit-learn Pipeline (feature engineering -> feature selection -> estimator), tune it,
    evaluate it on a holdout, and track and register it in MLflow.

    The fitted transforms travel inside the Pipeline, so serving applies exactly what training
    learned. Specs: :mod:`airflow_provider_mlops.ml.features` (``features``),
    :mod:`airflow_provider_mlops.ml.selection` (``selection``), :func:`airflow_provider_mlops.ml.training.build_search`
    (``tuning``).

    MLflow gets one run with the parameters, holdout metrics (and the dummy baseline's), tags (DAG,
    run, logical date, input URIs and schema fingerprints), the Pipeline with signature and input
    example (skops format when every type is trusted), plots, the selected features and the
    reference profile the DriftSensor compares new data with; the model is registered as a new
    version of ``registered_model_name``. The model file is also written to object storage at a path
    unique to the version (``<model_output_uri>/<name>/v<version>/``); its sha256 (and that of the
    file MLflow logged) is recorded as a tag of the model version, which is what
    :func:`airflow_provider_mlops.ml.serialization.load_model_version` verifies before loading.

    Returns (XCom) ``{"model_uri", "registered_model_name", "version", "run_id", "experiment_id",
    "metrics", "baseline_metrics", "best_params", "selected_features", "model_file", "sha256",
    "profile_uri", "task"}``, and with ``candidates`` also ``"estimator"`` (the winner's class path)
    and ``"leaderboard"``.

    :param input_uri: dataset URI(s) or upstream XCom dicts with ``uri``. (templated)
    :param target: the label column. (templated)
    :param registered_model_name: the MLflow registered model. (templated)
    :param task: ``classification`` or ``regression``; inferred from the label when None.
    :param features: the feature engineering spec.
    :param selection: the feature selection spec (a list of steps).
    :param estimator: an allowlisted scikit-learn class path, an alias (``random_forest``...) or a
        name given to :func:`~airflow_provider_mlops.ml.candidates.register_estimator`: the same rule
        as ``candidates``; other import paths are refused (importing one runs its code on the worker).
    :param estimator_params: its parameters.
    :param candidates: several model families to compare instead of ``estimator``:
        ``[{"estimator": "random_forest" | "sklearn.ensemble.RandomForestClassifier", "params": {...},
        "search_space": {...}, "name": ...}, ...]``. Each is tuned with ``tuning`` on the same CV
        folds; the best by mean CV score is registered; the leaderboard is logged to MLflow
        (``leaderboard.csv`` / ``.json``, ``evaluation/leaderboard.png``). Estimators come from an
        allowlist (:mod:`airflow_provider_mlops.ml.candidates`); others are refused here, at DAG parse.
    :param tuning: ``{"method": "grid" | "random" | "halving_grid" | "halving_random" | "optuna",
        "param_grid": {...}, "cv": 5, "scoring": ..., "n_iter": ..., "n_trials": ..., "timeout": ...}``.
    :param split_strategy: ``auto``, ``stratified``, ``random`` or ``time``.
    :param time_column: the column ordering rows for a time split (not used as a feature unless listed).
    :param test_size: holdout share.
    :param seed: random seed for splits, models and searches.
    :param max_rows: train on at most this many rows (a seeded sample across the input).
    :param experiment_name: MLflow experiment; default the DAG id. (templated)
    :param mlflow_conn_id: MLflow connection; None for the embedded default.
    :param model_output_uri: where the model file goes; default under the staging URI. (templated)
    :param storage_conn_id: connection for ``s3://`` URIs.
    :param profile_data: log a data profile of the training data to the run
        (``data_profile.html`` / ``data_profile.json``, :mod:`airflow_provider_mlops.ml.eda`).
    """

    template_fields: Sequence[str] = (
        "input_uri",
        "target",
        "registered_model_name",
        "experiment_name",
        "model_output_uri",
    )
    operator_extra_links = (MlflowRunLink(),)
    ui_color = "#ede7f6"

    def __init__(
        self,
        *,
        input_uri: Any,
        target: str,
        registered_model_name: str,
        task: str | None = None,
        features: Mapping[str, Any] | None = None,
        selection: Sequence[Mapping[str, Any]] | None = None,
        estimator: str = "sklearn.ensemble.RandomForestClassifier",
        estimator_params: Mapping[str, Any] | None = None,
        candidates: Sequence[Mapping[str, Any]] | None = None,
        tuning: Mapping[str, Any] | None = None,
        split_strategy: str = "auto",
        time_column: str | None = None,
        test_size: float = 0.2,
        seed: int = 0,
        max_rows: int = 1_000_000,
        experiment_name: str | None = None,
        mlflow_conn_id: str | None = None,
        model_output_uri: str | None = None,
        storage_conn_id: str | None = None,
        profile_data: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.profile_data = profile_data
        self.input_uri = input_uri
        self.target = target
        self.registered_model_name = registered_model_name
        self.task = task
        self.features = features
        self.selection = selection
        self.estimator = estimator
        self.estimator_params = estimator_params
        if candidates is not None:
            from airflow_provider_mlops.ml.candidates import CandidateSpecError, check_candidates

            check_candidates(candidates)  # imports nothing heavy: safe at DAG parse
            if estimator_params:
                raise CandidateSpecError("give estimator_params inside each candidate, not beside candidates")
        else:
            from airflow_provider_mlops.ml.candidates import check_estimator_name

            check_estimator_name(estimator)  # the candidates' allowlist, checked at DAG parse too
        self.candidates = candidates
        self.tuning = tuning
        self.split_strategy = split_strategy
        self.time_column = time_column
        self.test_size = test_size
        self.seed = seed
        self.max_rows = max_rows
        self.experiment_name = experiment_name
        self.mlflow_conn_id = mlflow_conn_id
        self.model_output_uri = model_output_uri
        self.storage_conn_id = storage_conn_id

    # ----------------------------------------------------------------------------------------------
    def _read_frame(self, storage: Any, inputs: list[str]) -> Any:
        """Read the inputs into one DataFrame, sampling (seeded) when they exceed ``max_rows``."""
        import numpy as np
        import pyarrow as pa

        total = sum(int((storage.read_manifest(u) or {}).get("rows", 0)) for u in inputs)
        fraction = min(1.0, self.max_rows / total) if total else 1.0
        if fraction < 1.0:
            self.log.warning(
                "Training on a %.1f%% sample (%s of %s rows): max_rows=%s",
                100 * fraction,
                self.max_rows,
                total,
                self.max_rows,
            )
        rng = np.random.default_rng(self.seed)
        parts = []
        for uri in inputs:
            for batch in storage.iter_batches(uri):
                if fraction < 1.0:
                    batch = batch.filter(pa.array(rng.random(batch.num_rows) < fraction))
                parts.append(batch)
        if not parts:
            raise ValueError(f"The training input {inputs} has no rows")
        return pa.Table.from_batches(parts).to_pandas()

    @fail_fast()
    def execute(self, context: Context) -> dict[str, Any]:
        import tempfile
        from pathlib import Path

        from mlflow.models import infer_signature

        from airflow_provider_mlops.hooks.mlflow import MlflowHook
        from airflow_provider_mlops.ml import evaluation, plots
        from airflow_provider_mlops.ml.profile import build_profile
        from airflow_provider_mlops.ml.serialization import (
            dump_model,
            float_example,
            record_mlflow_artifact,
            record_model_file,
            version_prefix,
        )
        from airflow_provider_mlops.ml.training import train

        inputs = require_inputs(self.input_uri)
        storage = storage_hook(self.storage_conn_id)
        frame = self._read_frame(storage, inputs)
        self.log.info("Training on %s rows x %s columns from %s", len(frame), frame.shape[1], inputs)

        result = train(
            frame,
            target=self.target,
            task=self.task,
            features=self.features,
            selection=self.selection,
            estimator=self.estimator,
            estimator_params=self.estimator_params,
            tuning=self.tuning,
            split_strategy=self.split_strategy,
            test_size=self.test_size,
            time_column=self.time_column,
            seed=self.seed,
            candidates=self.candidates,
        )
        if result.dropped_missing_target:
            self.log.warning(
                "Dropped %s of %s rows whose target %r is missing before training",
                result.dropped_missing_target,
                len(frame),
                self.target,
            )
        self.log.info(
            "Holdout %s (dummy baseline %s), best params %s",
            result.metrics,
            result.baseline_metrics,
            result.best_params,
        )
        train_rows = frame.drop(index=result.x_test.index)
        if self.target in train_rows.columns:
            train_rows = train_rows[train_rows[self.target].notna()]
        profile = build_profile(
            train_rows,
            numeric=result.numeric_features,
            categorical=result.categorical_features,
            target=self.target,
            task=result.task,
            metrics=result.metrics,
            uncertainty=result.metric_uncertainty,
            seed=self.seed,
        )

        mlflow_hook = MlflowHook(self.mlflow_conn_id)
        ti = context["ti"]
        experiment_id = mlflow_hook.get_or_create_experiment(self.experiment_name or ti.dag_id)
        fingerprints = {u: (storage.read_manifest(u) or {}).get("schema_fingerprint") for u in inputs}
        tags = {
            "airflow.dag_id": ti.dag_id,
            "airflow.task_id": ti.task_id,
            "airflow.run_id": context["run_id"],
            "airflow.logical_date": str(context.get("logical_date")),
            "mlops.inputs": json.dumps(fingerprints),
            "mlops.task": result.task,
            "mlops.target": self.target,
        }
        blob, fmt, trusted = dump_model(result.pipeline)
        with (
            mlflow_hook.start_run(experiment_id, tags) as run,
            tempfile.TemporaryDirectory() as tmp,
        ):
            params = {
                "estimator": result.estimator or self.estimator,
                "split_strategy": self.split_strategy,
                "test_size": self.test_size,
                "seed": self.seed,
                "train_rows": result.train_rows,
                "test_rows": result.test_rows,
                "tuning_method": (self.tuning or {}).get("method", "none"),
                **{f"model.{k}": v for k, v in (self.estimator_params or {}).items()},
                **{f"best.{k}": v for k, v in result.best_params.items()},
            }
            mlflow_hook.log_params(run.info.run_id, {k: str(v)[:500] for k, v in params.items()})
            mlflow_hook.log_metrics(
                run.info.run_id,
                {
                    **result.metrics,
                    **{f"baseline_{k}": v for k, v in result.baseline_metrics.items()},
                    "train_seconds": result.seconds,
                },
            )
            folder = Path(tmp)
            files = {
                "reference_profile.json": json.dumps(profile).encode(),
                "selected_features.json": json.dumps(result.selected_features).encode(),
                "specs.json": json.dumps(
                    {"features": self.features, "selection": self.selection, "tuning": self.tuning},
                    default=str,
                ).encode(),
                "cv_results.json": json.dumps(result.cv_results, default=str).encode(),
            }
            if self.profile_data:
                from airflow_provider_mlops.ml.eda import profile_table, render_html

                data_profile = profile_table(frame, target=self.target, source=", ".join(inputs))
                files["data_profile.json"] = json.dumps(data_profile).encode()
                files["data_profile.html"] = render_html(data_profile, title="Training data profile").encode()
            importance = plots.permutation_importance(
                result.pipeline, result.x_test, result.y_test, seed=self.seed
            )
            files["feature_importance.json"] = json.dumps(importance).encode()
            if result.leaderboard:
                from airflow_provider_mlops.ml.candidates import leaderboard_files

                files.update(leaderboard_files(result.leaderboard))
            files["feature_importance.png"] = plots.importance_png(importance)
            if result.task == "classification":
                files["confusion_matrix.png"] = plots.confusion_matrix_png(
                    result.pipeline, result.x_test, result.y_test
                )
            for name, data in files.items():
                (folder / name).write_bytes(data)
                mlflow_hook.log_artifact(
                    run.info.run_id,
                    str(folder / name),
                    artifact_path="evaluation" if name.endswith(".png") else None,
                )
            # ROC / precision-recall / calibration / threshold table, or residuals (ml/evaluation.py)
            holdout = (result.pipeline, result.x_test, result.y_test, result.task)
            evaluation.write_files(evaluation.evaluation_files(*holdout, seed=self.seed)[1], folder / "eval")
            mlflow_hook.log_artifacts(run.info.run_id, str(folder / "eval"))
            example = float_example(result.x_test.head(5))
            signature = infer_signature(example, result.pipeline.predict(example))
            log_kwargs: dict[str, Any] = {"serialization_format": fmt}
            if fmt == "skops":
                log_kwargs["skops_trusted_types"] = trusted
            if fmt == "keras":  # tuning.method="keras_tuner": the bundle, registered as an MLflow pyfunc
                log_kwargs = {"blob": blob}
            import sklearn

            common: dict[str, Any] = {
                "name": "model",
                "signature": signature,
                "input_example": example,
                "registered_model_name": self.registered_model_name,
                "pip_requirements": [f"scikit-learn=={sklearn.__version__}", "airflow-provider-mlops"],
            }
            if fmt == "keras":
                # the keras bundle is a pyfunc flavor: the same scoped fluent API, its own logger
                import mlflow

                from airflow_provider_mlops.ml.keras_tuning import log_keras_model

                with mlflow_hook.fluent(), mlflow.start_run(run_id=run.info.run_id):
                    info = log_keras_model(result.pipeline, **common, **log_kwargs)
            else:
                info = mlflow_hook.log_sklearn_model(run.info.run_id, result.pipeline, **common, **log_kwargs)
            run_id = run.info.run_id
        version = str(info.registered_model_version)
        client = mlflow_hook.client
        client.set_model_version_tag(self.registered_model_name, version, "mlops.run_id", run_id)
        client.set_model_version_tag(
            self.registered_model_name, version, "mlops.airflow_run_id", context["run_id"]
        )
        for key, value in result.metrics.items():
            client.set_model_version_tag(self.registered_model_name, version, f"metric.{key}", f"{value:.6f}")

        base = resolve_output_uri(self.model_output_uri, context, suffix="model")
        # The file goes below a path unique to the version (a second retrain on the same day must not
        # overwrite it) and its sha256 becomes a tag of the version: the loader trusts only that tag.
        model_file = record_model_file(client, storage, base, self.registered_model_name, version, blob, fmt)
        record_mlflow_artifact(client, self.registered_model_name, version, info)
        base = version_prefix(base, self.registered_model_name, version)
        profile_uri = f"{base.rstrip('/')}/reference_profile.json"
        storage.put_bytes(profile_uri, json.dumps(profile).encode())
        run_url = mlflow_hook.run_url(experiment_id, run_id)
        if run_url:
            ti.xcom_push(key=XCOM_KEY, value=run_url)
        self.log.info(
            "Registered %s version %s (run %s)%s",
            self.registered_model_name,
            version,
            run_id,
            f": {run_url}" if run_url else "",
        )
        return {
            "model_uri": f"models:/{self.registered_model_name}/{version}",
            "registered_model_name": self.registered_model_name,
            "version": version,
            "run_id": run_id,
            "experiment_id": experiment_id,
            "task": result.task,
            "metrics": result.metrics,
            "baseline_metrics": result.baseline_metrics,
            "best_params": result.best_params,
            "selected_features": result.selected_features,
            "model_file": model_file["uri"],
            "sha256": model_file["sha256"],
            "profile_uri": profile_uri,
            **(
                {"estimator": result.estimator, "leaderboard": result.leaderboard}
                if result.leaderboard
                else {}
            ),
        }
