"""TrainModelOperator: dataset URI(s) -> tuned scikit-learn Pipeline, tracked and registered in MLflow."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_mlops.hooks.s3 import storage_hook
from airflow_provider_mlops.links.mlflow import XCOM_KEY, MlflowRunLink
from airflow_provider_mlops.ml.specs import Model, TrainingData
from airflow_provider_mlops.ml.tags import TAG_TRAINING_DATA_DIGEST
from airflow_provider_mlops.operators.common import (
    fail_fast,
    pin_inputs,
    require_inputs,
    resolve_output_uri,
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
    :mod:`airflow_provider_mlops.ml.selection` (``selection``),
    :func:`airflow_provider_mlops.ml.search.build_search` (``tuning``), and the option groups of
    :mod:`airflow_provider_mlops.ml.specs` (``model``, ``data``).

    MLflow gets one run with the parameters, holdout metrics (and the dummy baseline's), tags (DAG,
    run, logical date, input URIs and schema fingerprints, the task and the label column), the
    Pipeline with signature and input example (skops format when every type is trusted), plots, the
    selected features and the reference profile the DriftSensor compares new data with; the model
    is registered as a new version of ``registered_model_name``
    (:meth:`~airflow_provider_mlops.hooks.mlflow.MlflowHook.register_training`). The model file is
    also written to object storage at a path unique to the version
    (``<model_output_uri>/<name>/v<version>/``); its sha256 (and that of the file MLflow logged) is
    recorded as a tag of the model version, which is what
    :func:`airflow_provider_mlops.ml.serialization.load_model_version` verifies before loading.

    Everything is computed and checked before the registration (no NaN or infinite value reaches
    MLflow or XCom; a metric that cannot be computed, such as ROC AUC with a class absent from the
    holdout, is left out with its reason in ``metrics_unavailable``). The version is tagged with the
    task (``mlops.airflow.dag_id`` / ``task_id`` / ``run_id`` / ``map_index``): a failure after the
    registration deletes it, and a retry of the same task and DAG run reuses its complete version
    (or replaces an incomplete one) instead of registering a second one.

    Each input that is a Delta table is read at one version: the one its URI names
    (``s3://lake/orders@v12``: train again on exactly those rows), else the latest at the start. The
    run and the version record the table URI(s), the version(s) read and a digest of the rows
    (``mlops.training_data.uri`` / ``.version`` / ``.digest``; several inputs as JSON lists), read
    back by :meth:`~airflow_provider_mlops.hooks.mlflow.MlflowHook.version_lineage`; the OpenLineage
    inputs carry the version. A version that does not exist fails naming the versions there are.

    Returns (XCom) ``{"model_uri", "registered_model_name", "version", "run_id", "experiment_id",
    "metrics", "metrics_unavailable", "baseline_metrics", "best_params", "selected_features",
    "training_data", "training_data_digest", "model_file", "sha256", "profile_uri", "task"}``, with a ``window`` the window's summary
    (``"window"``), and with ``model.candidates`` also ``"estimator"`` (the winner's class path) and
    ``"leaderboard"``.

    :param input_uri: dataset URI(s) or upstream XCom dicts with ``uri``; ``<uri>@v<version>`` reads
        that Delta version. (templated)
    :param label_column: the label column. (templated)
    :param registered_model_name: the MLflow registered model. (templated)
    :param model: what is trained (:class:`~airflow_provider_mlops.ml.specs.Model`: an estimator and
        its parameters, or candidates compared on the same folds; the task). Estimators come from
        an allowlist (:mod:`airflow_provider_mlops.ml.candidates`), checked at DAG parse.
    :param features: the feature engineering spec.
    :param selection: the feature selection spec (a list of steps).
    :param tuning: ``{"method": "none" | "grid" | "random" | "halving_grid" | "halving_random" |
        "optuna" | "hyperopt" | "genetic" | "keras_tuner", "param_grid": {...}, "cv": 5,
        "scoring": ..., "n_iter": ..., "n_candidates": ..., "factor": ..., "n_trials": ...,
        "population_size": ..., "generations": ..., "time_budget": <seconds>}`` (``keras_tuner``:
        ``build_model``, ``tuner``, ``max_trials``, ``epochs``; see docs/operators/train.rst). A
        progress line is logged per configuration; ``time_budget`` stops any search but
        ``keras_tuner`` (refused there) and keeps the best configuration so far.
    :param data: which rows are trained on and how the holdout is split
        (:class:`~airflow_provider_mlops.ml.specs.TrainingData`: time column, window, split,
        ``test_size``, ``max_rows``, seed, data profile). A ``window`` with ``since_drift`` reads the
        drift onset from the triggering Asset events' ``extra`` (``drift_onset``, emitted by the
        DriftSensor), else from the registered model's ``mlops.drift_onset`` tag; its
        ``half_life`` weights the rows by recency. With a window the holdout is the newest
        ``test_size`` share of the rows unless ``split`` says otherwise; the window's summary is
        logged, put in the XCom and logged to MLflow as ``window.*`` parameters.
    :param experiment_name: MLflow experiment; default the DAG id. (templated)
    :param model_output_uri: where the model file goes; default under the staging URI. (templated)
    :param mlflow_conn_id: MLflow connection; None for the embedded default.
    :param storage_conn_id: connection for ``s3://`` URIs.
    """

    template_fields: Sequence[str] = (
        "input_uri",
        "label_column",
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
        label_column: str,
        registered_model_name: str,
        model: Model | None = None,
        features: Mapping[str, Any] | None = None,
        selection: Sequence[Mapping[str, Any]] | None = None,
        tuning: Mapping[str, Any] | None = None,
        data: TrainingData | None = None,
        experiment_name: str | None = None,
        model_output_uri: str | None = None,
        mlflow_conn_id: str | None = None,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_uri = input_uri
        self.label_column = label_column
        self.registered_model_name = registered_model_name
        self.model = model or Model()
        self.features = features
        self.selection = selection
        self.tuning = tuning
        self.data = data or TrainingData()
        self.experiment_name = experiment_name
        self.model_output_uri = model_output_uri
        self.mlflow_conn_id = mlflow_conn_id
        self.storage_conn_id = storage_conn_id
        self.mlflow_run_url: str | None = None

    # ----------------------------------------------------------------------------------------------
    def _read_frame(self, storage: Any, inputs: list[str]) -> Any:
        """Read the inputs into one DataFrame, sampling (seeded) when they exceed ``data.max_rows``."""
        import numpy as np
        import pyarrow as pa

        limit = self.data.max_rows
        total = sum(int((storage.dataset_info(u) or {}).get("rows", 0)) for u in inputs)
        fraction = min(1.0, limit / total) if total else 1.0
        if fraction < 1.0:
            self.log.warning(
                "Training on a %.1f%% sample (%s of %s rows): max_rows=%s",
                100 * fraction,
                limit,
                total,
                limit,
            )
        rng = np.random.default_rng(self.data.seed)
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

        self._log_trigger(context)
        name = self.registered_model_name
        storage = storage_hook(self.storage_conn_id)
        mlflow_hook = MlflowHook(self.mlflow_conn_id)
        identity = registration.task_identity(context)
        # The file goes below a path unique to the version (a second retrain on the same day must not
        # overwrite it) and its sha256 becomes a tag of the version: the loader trusts only that tag.
        model_root = resolve_output_uri(self.model_output_uri, context, suffix="model")
        # A retry of this task and logical date: reuse its complete version, delete an incomplete one.
        reused = mlflow_hook.reuse_training(storage, name, identity, model_root)
        if reused is not None:
            self._push_run_url(context, mlflow_hook, reused)
            return reused

        inputs = require_inputs(self.input_uri)
        pins = pin_inputs(storage, inputs)
        frame = self._read_frame(storage, [pin.read_uri for pin in pins])
        self.log.info("Training on %s rows x %s columns from %s", len(frame), frame.shape[1], inputs)
        data_lineage = self._data_lineage(pins, frame)
        weights, window = None, None
        if self.data.window is not None:
            frame, weights, window = self._apply_window(context, mlflow_hook, frame)
        result = self._train(frame, weights, window)
        artifacts = self._artifacts(result, frame, inputs, window)
        ti = context["ti"]
        out = mlflow_hook.register_training(
            storage,
            name=name,
            experiment_id=mlflow_hook.get_or_create_experiment(self.experiment_name or ti.dag_id),
            run_tags={**self._run_tags(context, storage, inputs, result.task, pins), **data_lineage},
            identity=identity,
            version_tags=data_lineage,
            artifacts=artifacts,
            model_root=model_root,
            result={
                "task": result.task,
                "metrics": result.metrics,
                "metrics_unavailable": result.metrics_unavailable,
                "baseline_metrics": result.baseline_metrics,
                "best_params": result.best_params,
                "selected_features": result.selected_features,
                "training_data": [pin.as_dict() for pin in pins],
                "training_data_digest": data_lineage[TAG_TRAINING_DATA_DIGEST],
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

    def _data_lineage(self, pins: list[Any], frame: Any) -> dict[str, str]:
        """
        The rows trained on, as tags of the run and the version: each input's table URI and the Delta
        version read (``mlops.training_data.uri`` / ``.version``), and the digest of the rows read
        (``mlops.training_data.digest``); kept for the OpenLineage facets.
        """
        from airflow_provider_mlops.ml.lineage import data_tags, frame_digest

        self._pins = list(pins)
        tags = data_tags("training", pins, frame_digest(frame))
        self.log.info(
            "Training data: %s (digest %s)",
            ", ".join(pin.read_uri for pin in pins),
            tags[TAG_TRAINING_DATA_DIGEST],
        )
        return tags

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The inputs read, each with the Delta version trained on (a ``version`` dataset facet)."""
        from airflow_provider_mlops.utils.lineage import pinned_inputs

        return pinned_inputs(getattr(self, "_pins", None) or [])

    def _log_trigger(self, context: Context) -> None:
        """Why this training runs: the summary line of each Asset event that triggered the run (DriftSensor's)."""
        events = context.get("triggering_asset_events") or {}
        for asset, asset_events in dict(events).items():
            for event in asset_events:
                summary = (getattr(event, "extra", None) or {}).get("summary")
                if summary:
                    self.log.info("Triggered by %s: %s", getattr(asset, "name", asset), summary)

    def _train(self, frame: Any, weights: Any, window: dict[str, Any] | None) -> Any:
        """:func:`airflow_provider_mlops.ml.training.train` with this operator's specs; the result logged."""
        from airflow_provider_mlops.ml.training import train
        from airflow_provider_mlops.ml.windows import post_drift_start

        model, data = self.model, self.data
        result = train(
            frame,
            label_column=self.label_column,
            task=model.task,
            features=self.features,
            selection=self.selection,
            estimator=model.estimator,
            estimator_params=model.params,
            tuning=self.tuning,
            split_strategy=data.split,
            test_size=data.test_size,
            time_column=window["time_column"] if window is not None else data.time_column,
            seed=data.seed,
            candidates=list(model.candidates) if model.candidates is not None else None,
            sample_weight=weights,
            # a time split holds out the newest post-drift rows only: the model learns from the others
            holdout_since=post_drift_start(window),
        )
        if result.dropped_missing_label:
            self.log.warning(
                "Dropped %s of %s rows whose label %r is missing before training",
                result.dropped_missing_label,
                len(frame),
                self.label_column,
            )
        self.log.info(
            "Holdout %s (dummy baseline %s), best params %s%s",
            result.metrics,
            result.baseline_metrics,
            result.best_params,
            f"; left out: {result.metrics_unavailable}" if result.metrics_unavailable else "",
        )
        return result

    def _artifacts(self, result: Any, frame: Any, inputs: list[str], window: dict[str, Any] | None) -> Any:
        """Every file, parameter and metric of the run (:func:`airflow_provider_mlops.ml.reporting.build_artifacts`)."""
        from airflow_provider_mlops.ml.reporting import build_artifacts

        model, data = self.model, self.data
        return build_artifacts(
            result,
            frame,
            label=self.label_column,
            inputs=inputs,
            specs={"features": self.features, "selection": self.selection, "tuning": self.tuning},
            params={
                "estimator": result.estimator or model.estimator,
                "split_strategy": data.split,
                "test_size": data.test_size,
                "seed": data.seed,
                "train_rows": result.train_rows,
                "test_rows": result.test_rows,
                "tuning_method": (self.tuning or {}).get("method", "none"),
                **{f"model.{k}": v for k, v in model.params.items()},
                **{f"best.{k}": v for k, v in result.best_params.items()},
                **{f"window.{k}": v for k, v in (window or {}).items()},
            },
            profile_data=data.profile,
            seed=data.seed,
        )

    def _run_tags(
        self, context: Context, storage: Any, inputs: list[str], task: str, pins: list[Any]
    ) -> dict[str, str]:
        """The run's tags: the Airflow task, and the data lineage (inputs with their schema fingerprints)."""
        from airflow_provider_mlops.ml.tags import TAG_INPUTS, TAG_LABEL, TAG_TASK, airflow_run_tags

        fingerprints = {
            u: (storage.dataset_info(pin.read_uri) or {}).get("schema_fingerprint")
            for u, pin in zip(inputs, pins, strict=True)
        }
        return {
            **airflow_run_tags(context),
            TAG_INPUTS: json.dumps(fingerprints),
            TAG_TASK: task,
            TAG_LABEL: self.label_column,
        }

    def _apply_window(
        self, context: Context, mlflow_hook: Any, frame: Any
    ) -> tuple[Any, Any, dict[str, Any]]:
        """The rows inside ``window`` and their weights; the drift onset read when ``since_drift``."""
        from airflow_provider_mlops.ml.onset import latest_onset, read_onset
        from airflow_provider_mlops.ml.tags import TAG_DRIFT_ONSET
        from airflow_provider_mlops.ml.windows import apply_window

        spec = self.data.window or {}
        onset = None
        if spec.get("since_drift"):
            events = context.get("triggering_asset_events") or {}
            onset = latest_onset(e for evs in dict(events).values() for e in evs)
            where = "the triggering Asset event"
            if onset is None:  # no model yet: the first training has no onset
                tags = mlflow_hook.model_tags(self.registered_model_name)
                onset, where = read_onset(tags.get(TAG_DRIFT_ONSET)), f"tag {TAG_DRIFT_ONSET}"
            if onset is not None:
                self.log.info("Drift onset (from %s): %s", where, onset.describe())
        kept, weights, window = apply_window(frame, spec, time_column=self.data.time_column, onset=onset)
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
