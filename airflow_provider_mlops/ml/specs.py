"""
The option groups of the ML operators: frozen, typed, checked when the DAG file is parsed.

Each operator takes a handful of its own arguments and groups the rest here:

* :class:`~airflow_provider_mlops.operators.train.TrainModelOperator`: :class:`Model` (which
  estimator, or which candidates), :class:`TrainingData` (which rows, the holdout, the seed);
  ``features``, ``selection`` and ``tuning`` keep their dictionary specs
  (:mod:`~airflow_provider_mlops.ml.features`, :mod:`~airflow_provider_mlops.ml.selection`,
  :func:`~airflow_provider_mlops.ml.search.build_search`);
* :class:`~airflow_provider_mlops.operators.deploy.DeployModelOperator`: :class:`Gate` (when a
  candidate replaces the champion);
* :class:`~airflow_provider_mlops.sensors.drift.DriftSensor`: :class:`DriftLimits`,
  :class:`Decay` and :class:`Retrain`;
* :class:`~airflow_provider_mlops.operators.predict.BatchPredictOperator`: :class:`PredictionColumns`.

Every model they load goes through a :class:`~airflow_provider_mlops.ml.serialization.LoadPolicy`
(``load_policy=``).

Specs hold configuration, not templates: Airflow renders an object's ``template_fields`` by setting
its attributes, which a frozen dataclass refuses, so what a DAG templates (URIs, versions, the label
column, names) stays an argument of the operator itself.

Nothing heavy is imported here (``tests/test_lazy_imports.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from airflow_provider_mlops.ml.serialization import LoadPolicy

SPLIT_STRATEGIES = ("auto", "stratified", "random", "time")
TASKS = ("classification", "regression")


def _frozen_mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        try:
            value = dict(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a mapping, got {value!r}") from None
    return value


# ------------------------------------------------------------------------------------------------
# TrainModelOperator
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Model:
    """
    What is trained: one estimator, or several candidates compared on the same CV folds.

    :param estimator: an allowlisted scikit-learn class path, an alias (``random_forest``...) or a
        name given to :func:`~airflow_provider_mlops.ml.candidates.register_estimator`; other import
        paths are refused (importing one runs its code on the worker).
    :param params: its parameters.
    :param candidates: several model families instead of ``estimator``: ``[{"estimator": ...,
        "params": {...}, "search_space": {...}, "name": ...}, ...]``, each tuned with the operator's
        ``tuning``; the best by mean CV score is registered, the leaderboard is logged.
    :param task: ``classification`` or ``regression``; inferred from the label when None.
    """

    estimator: str = "sklearn.ensemble.RandomForestClassifier"
    params: dict[str, Any] = field(default_factory=dict)
    candidates: tuple[dict[str, Any], ...] | None = None
    task: Literal["classification", "regression"] | None = None

    def __post_init__(self) -> None:
        from airflow_provider_mlops.ml.candidates import (
            CandidateSpecError,
            check_candidates,
            check_estimator_name,
        )

        object.__setattr__(self, "params", _frozen_mapping(self.params, "Model.params"))
        if self.task is not None and self.task not in TASKS:
            raise ValueError(f"Model.task must be None or one of {TASKS}, got {self.task!r}")
        if self.candidates is not None:
            object.__setattr__(self, "candidates", tuple(dict(c) for c in self.candidates))
            check_candidates(self.candidates)
            if self.params:
                raise CandidateSpecError("give params inside each candidate, not beside candidates")
        else:
            check_estimator_name(self.estimator)


@dataclass(frozen=True)
class TrainingData:
    """
    Which rows are trained on, how the holdout is split off, and the seed of it all.

    :param time_column: the column ordering rows (time split, window); not a feature unless listed.
    :param window: which rows to train on and how much each counts
        (:mod:`airflow_provider_mlops.ml.windows`): ``{"time_column": ..., "days": ...,
        "since_drift": True, "min_rows": ..., "half_life": <days>}``.
    :param split: ``auto``, ``stratified``, ``random`` or ``time``.
    :param test_size: holdout share.
    :param max_rows: train on at most this many rows (a seeded sample across the input).
    :param seed: random seed of the sample, the split, the models and the searches.
    :param profile: log a data profile of the training data to the run
        (``data_profile.html`` / ``.json``, :mod:`airflow_provider_mlops.ml.eda`).
    """

    time_column: str | None = None
    window: dict[str, Any] | None = None
    split: Literal["auto", "stratified", "random", "time"] = "auto"
    test_size: float = 0.2
    max_rows: int = 1_000_000
    seed: int = 0
    profile: bool = True

    def __post_init__(self) -> None:
        from airflow_provider_mlops.ml.windows import check_window

        object.__setattr__(self, "window", check_window(self.window))
        if self.window is not None and not (self.window.get("time_column") or self.time_column):
            raise ValueError("window needs a time_column: give window['time_column'] or time_column")
        if self.split not in SPLIT_STRATEGIES:
            raise ValueError(f"TrainingData.split must be one of {SPLIT_STRATEGIES}, got {self.split!r}")
        if not 0 < self.test_size < 1:
            raise ValueError(f"TrainingData.test_size must be between 0 and 1, got {self.test_size}")
        if self.max_rows < 1:
            raise ValueError(f"TrainingData.max_rows must be at least 1, got {self.max_rows}")


# ------------------------------------------------------------------------------------------------
# DeployModelOperator
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gate:
    """
    When a candidate replaces the champion (:func:`airflow_provider_mlops.ml.promotion.decide`).

    :param metric: the deciding metric (``f1``, ``accuracy``, ``roc_auc``, ``rmse``...).
    :param min_delta: the candidate must beat the champion by more than this (in the metric's units;
        0: any strict improvement), or ``"uncertainty"``: by more than the standard error of the gain
        on these rows (a paired bootstrap, ``n_bootstrap`` resamples).
    :param paired_test: None, ``bootstrap`` (any metric) or ``mcnemar`` (accuracy): also require the
        gain to be significant at ``alpha`` on the same rows.
    :param alpha: significance level of the paired test.
    :param n_bootstrap: resamples of the paired bootstrap.
    :param since_drift: judge on the rows on or after the first day of the drift onset only.
    :param time_column: the evaluation data's time column (for ``since_drift``).
    :param challenger_alias: the alias given to a candidate that did not win.
    """

    metric: str = "f1"
    min_delta: float | Literal["uncertainty"] = 0.0
    paired_test: Literal["bootstrap", "mcnemar"] | None = None
    alpha: float = 0.05
    n_bootstrap: int = 2000
    since_drift: bool = False
    time_column: str | None = None
    challenger_alias: str = "challenger"

    def __post_init__(self) -> None:
        from airflow_provider_mlops.ml.stats import PAIRED_TESTS

        if isinstance(self.min_delta, str) and self.min_delta != "uncertainty":
            raise ValueError(f"Gate.min_delta must be a number or 'uncertainty', got {self.min_delta!r}")
        if self.since_drift and not self.time_column:
            raise ValueError("Gate(since_drift=True) needs the evaluation data's time_column")
        if self.paired_test is not None and self.paired_test not in PAIRED_TESTS:
            raise ValueError(
                f"Gate.paired_test must be None or one of {PAIRED_TESTS}, got {self.paired_test!r}"
            )
        if self.paired_test == "mcnemar" and self.metric != "accuracy":
            raise ValueError(
                "paired_test='mcnemar' compares accuracies: use metric='accuracy' or 'bootstrap'"
            )
        if not 0 < self.alpha < 1:
            raise ValueError(f"Gate.alpha must be between 0 and 1, got {self.alpha}")

    @property
    def needs_predictions(self) -> bool:
        """Whether deciding needs each model's row-level predictions (a paired test or bootstrap)."""
        return bool(self.paired_test) or self.min_delta == "uncertainty"


# ------------------------------------------------------------------------------------------------
# DriftSensor
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftLimits:
    """
    When the data has drifted (:func:`airflow_provider_mlops.ml.drift.detect_drift`).

    :param thresholds: ``psi``, ``distance``, ``p_value``, ``missing``, ``small_sample``, ``share``,
        ``correction``.
    :param per_feature: per-feature overrides, ``{"age": {"psi": 0.3}}``; ``{"season": {"ignore":
        True}}`` leaves a feature out.
    :param exclude: features left out of drift (seasonal ones, an ID ...); a name the reference
        profile does not have fails the task.
    :param max_rows: compare at most this many current rows.
    """

    thresholds: dict[str, Any] = field(default_factory=dict)
    per_feature: dict[str, dict[str, Any]] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    max_rows: int | None = 2_000_000

    def __post_init__(self) -> None:
        if isinstance(self.exclude, str):
            raise ValueError(f"exclude must be a list of feature names, got the string {self.exclude!r}")
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "thresholds", _frozen_mapping(self.thresholds, "DriftLimits.thresholds"))
        object.__setattr__(
            self,
            "per_feature",
            {k: dict(v) for k, v in _frozen_mapping(self.per_feature, "DriftLimits.per_feature").items()},
        )


@dataclass(frozen=True)
class Decay:
    """
    The champion's accuracy on the current data, when it carries labels
    (:func:`airflow_provider_mlops.ml.stats.judge_decay`).

    :param label_column: the label column; without it in the data, no accuracy check.
    :param metric: the metric measured.
    :param floor: decay when the metric is below this, beyond noise (the one-sided ``1 - alpha``
        bootstrap bound of the current metric is below it).
    :param max_drop: decay when the metric is more than this below the baseline and the one-sided
        test that it fell at all has p < ``alpha``.
    :param alpha: significance level of the decay tests.
    :param n_bootstrap: resamples of the current rows for the metric's spread.
    :param load_policy: what the trusted loader may deserialize to score the champion
        (:class:`~airflow_provider_mlops.ml.serialization.LoadPolicy`; its sha256 is always checked
        against the MLflow version first).
    """

    label_column: str
    metric: str = "f1"
    floor: float | None = None
    max_drop: float | None = 0.05
    alpha: float = 0.05
    n_bootstrap: int = 1000
    load_policy: LoadPolicy | None = None

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"Decay.alpha must be between 0 and 0.5, got {self.alpha}")


@dataclass(frozen=True)
class Retrain:
    """
    When the sensor asks for a retrain (:mod:`airflow_provider_mlops.ml.cooldown`,
    :mod:`airflow_provider_mlops.ml.onset`).

    :param cooldown: when the retrain that answered the last request was not promoted, further
        requests on the same drift are held this long (in logical dates); None asks every time.
    :param time_column: the current data's time column: the drift onset's first day is its oldest
        value where drift began; without it, the check's logical date.
    :param on_missing_reference: when the model has no champion yet: ``drift`` (succeed, so the
        first training runs: how a new model bootstraps) or ``fail``.
    :param on_no_drift: what the sensor does when no retrain is asked for (no drift, or a held
        request): ``skip`` (the default: the sensor's success means "retrain requested") or
        ``succeed`` (the check succeeds with its verdict; a ``RequestRetrainOperator`` downstream
        owns the retrain Asset).
    """

    cooldown: timedelta | None = timedelta(days=7)
    time_column: str | None = None
    on_missing_reference: Literal["drift", "fail"] = "drift"
    on_no_drift: Literal["skip", "succeed"] = "skip"

    def __post_init__(self) -> None:
        if self.cooldown is not None and not isinstance(self.cooldown, timedelta):
            raise ValueError(f"Retrain.cooldown must be a timedelta or None, got {self.cooldown!r}")
        if self.on_missing_reference not in ("drift", "fail"):
            raise ValueError("Retrain.on_missing_reference must be 'drift' or 'fail'")
        if self.on_no_drift not in ("skip", "succeed"):
            raise ValueError(f"Retrain.on_no_drift must be 'skip' or 'succeed', got {self.on_no_drift!r}")


# ------------------------------------------------------------------------------------------------
# BatchPredictOperator
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictionColumns:
    """
    The columns of a prediction dataset.

    :param keep: input columns copied to the output (e.g. ids); None for all of them.
    :param prediction: the name of the prediction column.
    :param probabilities: add class probabilities (classifiers only).
    :param probability_prefix: prefix of the probability columns (``<prefix><class>``).
    """

    keep: tuple[str, ...] | None = None
    prediction: str = "prediction"
    probabilities: bool = True
    probability_prefix: str = "proba_"

    def __post_init__(self) -> None:
        if isinstance(self.keep, str):
            raise ValueError(f"keep must be a list of column names, got the string {self.keep!r}")
        if self.keep is not None:
            object.__setattr__(self, "keep", tuple(self.keep))


# ------------------------------------------------------------------------------------------------
# DeployModelOperator / RollbackModelOperator
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reload:
    """
    Ask a serving process to load the new champion: a POST of ``{"model", "version", "latest",
    "sha256"}`` to ``endpoint`` of the HTTP connection ``http_conn_id``.
    """

    http_conn_id: str
    endpoint: str = "reload"
