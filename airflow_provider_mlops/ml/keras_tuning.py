"""
``tuning.method="keras_tuner"``: a Keras model searched with Keras Tuner behind the scikit-learn
preprocessing (the ``keras`` extra: keras 3, keras-tuner, jax[cpu], six).

The user gives ``tuning.build_model = "module:function"``; the function takes Keras Tuner's ``hp``
(and, when its signature names them, ``n_features``, ``n_outputs`` and ``task``) and returns a
compiled Keras model. The Pipeline stays a scikit-learn Pipeline: its preprocessing steps
(features, selection) are fitted on the training rows of the search's split and applied before
Keras; the final step is :class:`KerasClassifier` / :class:`KerasRegressor`, a scikit-learn
estimator around the Keras model. The fitted model is saved in Keras' native ``.keras`` format
inside the bundle written by :func:`airflow_provider_mlops.ml.serialization.dump_model`.

Like :mod:`airflow_provider_mlops.ml.transformers`, this module subclasses scikit-learn classes,
so it imports scikit-learn at the top and is only imported inside a task. Keras itself is imported
lazily, with ``KERAS_BACKEND=jax`` when no backend is configured and TensorFlow is absent.
"""

# lazy-imports: runtime-only (subclasses scikit-learn; imported only inside tasks)
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import tempfile
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone

if TYPE_CHECKING:
    from collections.abc import Mapping

TUNERS = ("random", "bayesian", "hyperband")


def import_keras() -> Any:
    """``keras``, on the JAX backend unless ``KERAS_BACKEND`` is set or TensorFlow is installed."""
    if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("tensorflow") is None:
        os.environ["KERAS_BACKEND"] = "jax"
    try:
        import keras
        import keras_tuner  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"tuning.method='keras_tuner' needs the keras extra: pip install 'airflow-provider-mlops[keras]' ({err})"
        ) from None
    return keras


def load_build_model(ref: str) -> Any:
    """
    The user's ``module:function``. Like an operator's ``python_callable``, it names code of the
    DAG's project (the model architecture cannot be data); it is imported on the worker only.
    """
    module_name, sep, function = str(ref).partition(":")
    if not sep or not module_name or not function:
        raise ValueError(f"tuning.build_model must be 'module:function', got {ref!r}")
    try:
        build = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"Cannot import tuning.build_model {ref!r}: {err}") from None
    if not callable(build):
        raise ValueError(f"tuning.build_model {ref!r} is not callable")
    return build


def _hypermodel(build_model: str, **context: Any) -> Any:
    build = load_build_model(build_model)
    accepted = inspect.signature(build).parameters
    extra = {k: v for k, v in context.items() if k in accepted}

    def hypermodel(hp: Any) -> Any:
        return build(hp, **extra)

    return hypermodel


class _KerasEstimator(BaseEstimator):
    _mlops_keras = True
    _task = ""

    def __init__(
        self,
        build_model: str = "",
        hyperparameters: Mapping[str, Any] | None = None,
        epochs: int = 20,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        self.build_model = build_model
        self.hyperparameters = hyperparameters
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed

    def _targets(self, y: Any) -> tuple[Any, int]:
        return np.asarray(y, dtype="float32"), 1

    def _build(self, n_features: int, n_outputs: int) -> Any:
        import keras_tuner

        keras = import_keras()
        keras.utils.set_random_seed(self.seed)
        hp = keras_tuner.HyperParameters.from_config(
            dict(self.hyperparameters or {"space": [], "values": {}})
        )
        return _hypermodel(self.build_model, n_features=n_features, n_outputs=n_outputs, task=self._task)(hp)

    def fit(self, x: Any, y: Any) -> _KerasEstimator:
        x = np.asarray(x, dtype="float32")
        target, n_outputs = self._targets(y)
        self.model_ = self._build(x.shape[1], n_outputs)
        self.model_.fit(x, target, epochs=self.epochs, batch_size=self.batch_size, verbose=0)
        self.n_features_in_ = x.shape[1]
        return self

    def _raw(self, x: Any) -> Any:
        return np.asarray(self.model_.predict(np.asarray(x, dtype="float32"), verbose=0))


class KerasRegressor(RegressorMixin, _KerasEstimator):
    """A fitted (or to-be-built) Keras regression model as a scikit-learn estimator."""

    _task = "regression"

    def predict(self, x: Any) -> Any:
        return self._raw(x).reshape(len(x), -1)[:, 0]


class KerasClassifier(ClassifierMixin, _KerasEstimator):
    """
    A Keras classifier as a scikit-learn estimator. Labels are encoded as ``0..n-1`` in the order of
    ``classes_``; the model ends in 1 sigmoid unit (two classes) or ``n_outputs`` softmax units.
    """

    _task = "classification"

    def _targets(self, y: Any) -> tuple[Any, int]:
        self.classes_ = np.unique(np.asarray(y))
        encoded = np.searchsorted(self.classes_, np.asarray(y))
        return encoded.astype("int32"), len(self.classes_)

    def predict_proba(self, x: Any) -> Any:
        raw = self._raw(x).reshape(len(x), -1)
        if raw.shape[1] == 1:
            return np.column_stack([1 - raw[:, 0], raw[:, 0]])
        return raw

    def predict(self, x: Any) -> Any:
        return self.classes_[np.argmax(self.predict_proba(x), axis=1)]


class KerasTunerSearchCV:
    """
    Keras Tuner (``random``, ``bayesian`` or ``hyperband``) over ``build_model``'s ``hp`` space.

    Trials are scored on one validation split: the first fold of ``cv`` (the same seeded splitter
    as the other methods). The preprocessing is fitted on that fold's training rows only. The best
    hyperparameters are then refitted on all the training rows (``best_estimator_``, the whole
    Pipeline). ``cv_results_`` lists each trial's values and its score (the objective, negated when
    lower is better, so higher is better like scikit-learn's scores).
    """

    def __init__(self, pipeline: Any, tuning: Mapping[str, Any], *, cv: Any, task: str, seed: int) -> None:
        self.pipeline = pipeline
        self.tuning = dict(tuning)
        self.cv = cv
        self.task = task
        self.seed = seed

    def fit(self, x: Any, y: Any) -> KerasTunerSearchCV:
        import keras_tuner
        from sklearn.model_selection import check_cv

        import_keras()
        tuner_name = self.tuning.get("tuner", "random")
        if tuner_name not in TUNERS:
            raise ValueError(f"tuning.tuner must be one of {TUNERS}, got {tuner_name!r}")
        estimator = self.pipeline.steps[-1][1]
        train_idx, val_idx = next(
            iter(check_cv(self.cv, y, classifier=self.task == "classification").split(x, y))
        )
        preprocessing = clone(self.pipeline[:-1]).fit(x.iloc[train_idx], y.iloc[train_idx])
        xt = np.asarray(preprocessing.transform(x.iloc[train_idx]), dtype="float32")
        xv = np.asarray(preprocessing.transform(x.iloc[val_idx]), dtype="float32")
        shaper = clone(estimator)
        yt, n_outputs = shaper._targets(y.iloc[train_idx])
        yv, _ = (
            shaper._targets(y.iloc[val_idx])
            if self.task == "regression"
            else (
                np.searchsorted(shaper.classes_, np.asarray(y.iloc[val_idx])).astype("int32"),
                n_outputs,
            )
        )
        hypermodel = _hypermodel(
            estimator.build_model, n_features=xt.shape[1], n_outputs=n_outputs, task=self.task
        )
        objective = self.tuning.get("objective", "val_loss")
        epochs = int(self.tuning.get("epochs", estimator.epochs))
        with tempfile.TemporaryDirectory() as tmp:
            common = {"objective": objective, "seed": self.seed, "directory": tmp, "project_name": "search"}
            common["overwrite"] = True
            if tuner_name == "hyperband":
                tuner = keras_tuner.Hyperband(
                    hypermodel, max_epochs=epochs, factor=int(self.tuning.get("factor", 3)), **common
                )
            else:
                cls = keras_tuner.RandomSearch if tuner_name == "random" else keras_tuner.BayesianOptimization
                tuner = cls(hypermodel, max_trials=int(self.tuning.get("max_trials", 10)), **common)
            search_args: dict[str, Any] = {"batch_size": estimator.batch_size, "verbose": 0}
            if tuner_name != "hyperband":
                search_args["epochs"] = epochs
            tuner.search(xt, yt, validation_data=(xv, yv), **search_args)
            best = tuner.get_best_hyperparameters(1)[0]
            trials = tuner.oracle.get_best_trials(num_trials=10_000)
            sign = -1.0 if tuner.oracle.objective.direction == "min" else 1.0
        self.cv_results_: dict[str, Any] = {
            "params": [dict(t.hyperparameters.values) for t in trials],
            "mean_test_score": np.array([sign * float(t.score) for t in trials]),
        }
        self.best_index_ = 0
        self.best_score_ = float(self.cv_results_["mean_test_score"][0])
        self.best_params_ = dict(best.values)
        self.best_estimator_ = clone(self.pipeline).set_params(
            model__hyperparameters=best.get_config(), model__epochs=epochs, model__seed=self.seed
        )
        self.best_estimator_.fit(x, y)
        return self

    def predict(self, x: Any) -> Any:
        return self.best_estimator_.predict(x)


def keras_search(
    pipeline: Any, tuning: Mapping[str, Any], *, cv: Any, task: str, seed: int
) -> KerasTunerSearchCV:
    """The search for ``tuning.method="keras_tuner"``; ``pipeline``'s last step is replaced by the Keras estimator."""
    build_model = tuning.get("build_model")
    if not build_model:
        raise ValueError("tuning.method='keras_tuner' needs tuning.build_model='module:function'")
    load_build_model(str(build_model))  # fail before fitting anything
    cls = KerasClassifier if task == "classification" else KerasRegressor
    estimator = cls(
        build_model=str(build_model),
        epochs=int(tuning.get("epochs", 20)),
        batch_size=int(tuning.get("batch_size", 32)),
        seed=seed,
    )
    pipeline = clone(pipeline)
    pipeline.steps[-1] = ("model", estimator)
    return KerasTunerSearchCV(pipeline, tuning, cv=cv, task=task, seed=seed)


# --------------------------------------------------------------------------------------------------
# the bundle: preprocessing (skops) + the Keras model (native .keras) + what the wrapper needs
# --------------------------------------------------------------------------------------------------
BUNDLE_MODEL = "model.keras"
BUNDLE_META = "estimator.json"


def dump_bundle(pipeline: Any, dump_preprocessing: Any) -> bytes:
    """A zip: ``model.keras`` (native), ``preprocessing.<fmt>`` and ``estimator.json``."""
    import io
    import json
    import zipfile

    estimator = pipeline.steps[-1][1]
    blob, fmt, _ = dump_preprocessing(pipeline[:-1])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, BUNDLE_MODEL)
        estimator.model_.save(path)
        with open(path, "rb") as handle:
            native = handle.read()
    meta: dict[str, Any] = {
        "class": type(estimator).__name__,
        "params": {k: v for k, v in estimator.get_params().items()},
        "classes": [c.item() if hasattr(c, "item") else c for c in getattr(estimator, "classes_", [])],
        "preprocessing": f"preprocessing.{fmt}",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in (
            (BUNDLE_MODEL, native),
            (meta["preprocessing"], blob),
            (BUNDLE_META, json.dumps(meta).encode()),
        ):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # same bytes for the same model
            archive.writestr(info, data)
    return buffer.getvalue()


def keras_native_bytes(blob: bytes) -> bytes:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return archive.read(BUNDLE_MODEL)


def load_bundle(blob: bytes, load_preprocessing: Any) -> Any:
    """
    The Pipeline back from a bundle whose digest was already verified. The Keras model loads with
    ``safe_mode=True``: no lambda is deserialized and (keras 3.15's serialization_lib) only classes
    of the keras packages are imported from the file's config.
    """
    import io
    import json
    import zipfile

    from sklearn.pipeline import Pipeline

    keras = import_keras()
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        meta = json.loads(archive.read(BUNDLE_META))
        native = archive.read(BUNDLE_MODEL)
        preprocessing = load_preprocessing(archive.read(meta["preprocessing"]))
    cls = {"KerasClassifier": KerasClassifier, "KerasRegressor": KerasRegressor}[meta["class"]]
    estimator = cls(**meta["params"])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, BUNDLE_MODEL)
        with open(path, "wb") as handle:
            handle.write(native)
        estimator.model_ = keras.saving.load_model(path, safe_mode=True, compile=False)
    if meta["classes"]:
        estimator.classes_ = np.asarray(meta["classes"])
    return Pipeline([*preprocessing.steps, ("model", estimator)])
