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

    Everything is computed and checked before the registration (no NaN or infinite value reaches
    MLflow or XCom; a metric that cannot be computed, such as ROC AUC with a class absent from the
    holdout, is left out with its reason in ``metrics_unavailable``). The version is tagged with the
    task (``mlops.airflow.dag_id`` / ``task_id`` / ``run_id`` / ``map_index``): a failure after the
    registration deletes it, and a retry of the same task and DAG run reuses its complete version
    (or replaces an incomplete one) instead of registering a second one.

    Returns (XCom) ``{"model_uri", "registered_model_name", "version", "run_id", "experiment_id",
    "metrics", "metrics_unavailable", "baseline_metrics", "best_params", "selected_features",
    "model_file", "sha256", "profile_uri", "task"}``, and with ``candidates`` also ``"estimator"``
    (the winner's class path) and ``"leaderboard"``.

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
    :param tuning: ``{"method": "none" | "grid" | "random" | "halving_grid" | "halving_random" |
        "optuna" | "hyperopt" | "genetic" | "keras_tuner", "param_grid": {...}, "cv": 5,
        "scoring": ..., "n_iter": ..., "n_candidates": ..., "factor": ..., "n_trials": ...,
        "population_size": ..., "generations": ..., "time_budget": <seconds>}`` (``keras_tuner``:
        ``build_model``, ``tuner``, ``max_trials``, ``epochs``; see docs/operators/train.rst). A
        progress line is logged per configuration; ``time_budget`` stops any search but
        ``keras_tuner`` (refused there) and keeps the best configuration so far.
    :param split_strategy: ``auto``, ``stratified``, ``random`` or ``time`` (a class absent from the
        training part is refused before training, naming it).
    :param time_column: the column ordering rows for a time split (not used as a feature unless listed).
    :param test_size: holdout share.
    :param seed: random seed for splits, models and searches.
    :param max_rows: train on at most this many rows (a seeded sample across the input).
    :param experiment_name: MLflow experiment; default the DAG id. (templated)
    :param mlflow_conn_id: MLflow connection; None for the embedded default.
    :param model_output_uri: where the model file goes; default under the staging URI. (templated)
    :param storage_conn_id: connection for ``s3://`` URIs.
    :param window: which rows to train on and how much each counts
        (:mod:`airflow_provider_mlops.ml.windows`): ``{"time_column": ..., "days": ...,
        "since_drift": True, "min_rows": ..., "half_life": <days>}``. ``since_drift`` reads the
        drift onset from the triggering Asset events' ``extra`` (``drift_onset``, emitted by the
        DriftSensor), else from the registered model's ``mlops.drift_onset`` tag. ``half_life``
        weights the rows by recency (``model__sample_weight`` in every fit of every search;
        ``genetic``, ``keras_tuner`` and estimators without ``sample_weight`` are refused). The
        window applies to the rows the inputs hold (datasets, e.g. written by ExtractOperator from
        SQL): extract at least as much history as the window may reach back. With a window the
        holdout is the newest ``test_size`` share of the rows (a time split on its time column)
        unless ``split_strategy`` says otherwise. The window's summary is logged, put in the XCom
        (``"window"``) and logged to MLflow as ``window.*`` parameters.
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
        window: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from airflow_provider_mlops.ml.windows import check_window

        self.window = check_window(window)  # imports nothing heavy: checked at DAG parse
        if self.window is not None and not (self.window.get("time_column") or time_column):
            raise ValueError("window needs a time_column: give window['time_column'] or time_column")
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
        self.mlflow_run_url: str | None = None
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
        from airflow_provider_mlops.hooks.mlflow import MlflowHook
        from airflow_provider_mlops.ml import registration
        from airflow_provider_mlops.ml.training import train

        name = self.registered_model_name
        storage = storage_hook(self.storage_conn_id)
        mlflow_hook = MlflowHook(self.mlflow_conn_id)
        identity = registration.task_identity(context)
        # The file goes below a path unique to the version (a second retrain on the same day must not
        # overwrite it) and its sha256 becomes a tag of the version: the loader trusts only that tag.
        model_root = resolve_output_uri(self.model_output_uri, context, suffix="model")
        # A retry of this task and logical date: reuse its complete version, delete an incomplete one.
        reused = registration.reuse_or_clear(mlflow_hook.client, storage, name, identity, model_root)
        if reused is not None:
            self._push_run_url(context, mlflow_hook, reused)
            return reused

        inputs = require_inputs(self.input_uri)
        frame = self._read_frame(storage, inputs)
        self.log.info("Training on %s rows x %s columns from %s", len(frame), frame.shape[1], inputs)
        weights, window = None, None
        time_column = self.time_column
        if self.window is not None:
            frame, weights, window = self._apply_window(context, mlflow_hook, frame)
            time_column = window["time_column"]
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
            time_column=time_column,
            seed=self.seed,
            candidates=self.candidates,
            sample_weight=weights,
        )
        if result.dropped_missing_target:
            self.log.warning(
                "Dropped %s of %s rows whose target %r is missing before training",
                result.dropped_missing_target,
                len(frame),
                self.target,
            )
        self.log.info(
            "Holdout %s (dummy baseline %s), best params %s%s",
            result.metrics,
            result.baseline_metrics,
            result.best_params,
            f"; left out: {result.metrics_unavailable}" if result.metrics_unavailable else "",
        )
        artifacts = registration.build_artifacts(
            result,
            frame,
            target=self.target,
            inputs=inputs,
            specs={"features": self.features, "selection": self.selection, "tuning": self.tuning},
            params={
                "estimator": result.estimator or self.estimator,
                "split_strategy": self.split_strategy,
                "test_size": self.test_size,
                "seed": self.seed,
                "train_rows": result.train_rows,
                "test_rows": result.test_rows,
                "tuning_method": (self.tuning or {}).get("method", "none"),
                **{f"model.{k}": v for k, v in (self.estimator_params or {}).items()},
                **{f"best.{k}": v for k, v in result.best_params.items()},
                **{f"window.{k}": v for k, v in (window or {}).items()},
            },
            profile_data=self.profile_data,
            seed=self.seed,
        )
        ti = context["ti"]
        experiment_id = mlflow_hook.get_or_create_experiment(self.experiment_name or ti.dag_id)
        fingerprints = {u: (storage.read_manifest(u) or {}).get("schema_fingerprint") for u in inputs}
        run_tags = {
            "airflow.dag_id": ti.dag_id,
            "airflow.task_id": ti.task_id,
            "airflow.run_id": context["run_id"],
            "airflow.logical_date": str(context.get("logical_date")),
            "mlops.inputs": json.dumps(fingerprints),
            "mlops.task": result.task,
            "mlops.target": self.target,
        }
        out = registration.publish(
            mlflow_hook,
            storage,
            name=name,
            experiment_id=experiment_id,
            run_tags=run_tags,
            identity=identity,
            artifacts=artifacts,
            model_root=model_root,
            result={
                "task": result.task,
                "metrics": result.metrics,
                "metrics_unavailable": result.metrics_unavailable,
                "baseline_metrics": result.baseline_metrics,
                "best_params": result.best_params,
                "selected_features": result.selected_features,
                **({"window": window} if window is not None else {}),
                **(
                    {"estimator": result.estimator, "leaderboard": result.leaderboard}
                    if result.leaderboard
                    else {}
                ),
            },
            on_registered=lambda published: self._push_run_url(context, mlflow_hook, published),
        )
        self.log.info("Registered %s version %s (run %s)", name, out["version"], out["run_id"])
        return out

    def _apply_window(
        self, context: Context, mlflow_hook: Any, frame: Any
    ) -> tuple[Any, Any, dict[str, Any]]:
        """The rows inside ``window`` and their weights; the drift onset read when ``since_drift``."""
        from airflow_provider_mlops.ml.onset import ONSET_TAG, latest_onset, read_onset
        from airflow_provider_mlops.ml.windows import apply_window

        onset = None
        if self.window and self.window.get("since_drift"):
            events = context.get("triggering_asset_events") or {}
            onset = latest_onset(e for evs in dict(events).values() for e in evs)
            where = "the triggering Asset event"
            if onset is None:
                from mlflow.exceptions import MlflowException

                try:
                    tags = mlflow_hook.client.get_registered_model(self.registered_model_name).tags or {}
                except MlflowException:  # no such model yet: the first training has no onset
                    tags = {}
                onset, where = read_onset(tags.get(ONSET_TAG)), f"tag {ONSET_TAG}"
            if onset is not None:
                self.log.info("Drift onset (from %s): %s", where, onset.describe())
        kept, weights, window = apply_window(
            frame, self.window or {}, time_column=self.time_column, onset=onset
        )
        self.log.info(
            "Training window on %s: %s of %s rows from %s to %s (%s post-drift rows since %s%s%s)",
            window["time_column"],
            window["rows"],
            window["rows_before"],
            window["start"],
            window["end"],
            window["post_drift_rows"],
            window["onset"],
            ", reaching back to min_rows" if window["extended_to_min_rows"] else "",
            f", half-life {window['half_life']:g} day(s)" if window["half_life"] else "",
        )
        return kept, weights, window

    def _push_run_url(self, context: Context, mlflow_hook: Any, result: Mapping[str, Any]) -> None:
        run_url = mlflow_hook.run_url(result["experiment_id"], result["run_id"])
        if run_url:
            self.mlflow_run_url = run_url
            context["ti"].xcom_push(key=XCOM_KEY, value=run_url)
            self.log.info("MLflow run: %s", run_url)
