"""
Training as plain functions: split, build the Pipeline (features -> selection -> estimator), tune,
evaluate on the holdout against a dummy baseline. No Airflow and no MLflow here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.ml.search import TrainingError, build_search, check_sample_weight, plain

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    pipeline: Any
    task: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    best_params: dict[str, Any]
    selected_features: list[str]
    numeric_features: list[str]
    categorical_features: list[str]
    train_rows: int
    test_rows: int
    x_test: Any
    y_test: Any
    cv_results: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    # per holdout metric: bootstrap standard error and 95% interval (the baseline's own spread,
    # what the DriftSensor's decay test adds to the current metric's)
    metric_uncertainty: dict[str, dict[str, float]] = field(default_factory=dict)
    dropped_missing_label: int = 0
    # with candidates: the winner's class path and the leaderboard (best first), see ml/candidates.py
    estimator: str = ""
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    # holdout metrics that could not be computed, with the reason (e.g. a class absent from the holdout)
    metrics_unavailable: dict[str, str] = field(default_factory=dict)


def infer_task(y: pd.Series) -> str:
    """``classification`` for booleans, text and integers with few distinct values, else ``regression``."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(y) or not pd.api.types.is_numeric_dtype(y):
        return "classification"
    if pd.api.types.is_integer_dtype(y) and y.nunique(dropna=True) <= 20:
        return "classification"
    return "regression"


def load_estimator(path: str, params: Mapping[str, Any] | None = None, *, task: str | None = None) -> Any:
    """
    An estimator from an allowlisted class path (e.g. ``sklearn.ensemble.RandomForestClassifier``),
    an alias (``random_forest``, by ``task``) or a name given to
    :func:`~airflow_provider_mlops.ml.candidates.register_estimator`: the same rule as ``candidates``
    (:func:`~airflow_provider_mlops.ml.candidates.check_estimator_name`). Any other import path is
    refused before anything is imported.
    """
    from airflow_provider_mlops.ml.candidates import CandidateSpecError, resolve_estimator

    try:
        class_path, cls = resolve_estimator(path, task or "classification")
    except CandidateSpecError as err:
        raise TrainingError(str(err)) from None
    if not isinstance(cls, type) or not callable(getattr(cls, "fit", None)):
        raise TrainingError(f"estimator {path!r} ({class_path}) is not an estimator class with fit()")
    try:
        return cls(**dict(params or {}))
    except TypeError as err:
        raise TrainingError(f"Bad parameters for {class_path}: {err}") from None


#: the fewest rows of a post-drift holdout (``since``), while they are at most half of the post-drift
#: rows (the other half trains): a metric on fewer is noise (a ROC AUC on 30 rows is +-0.1), and the
#: decay baseline starts from it
MIN_RECENT_HOLDOUT = 30


def _with_every_class(labels: pd.Series, cut: int, *, oldest: int) -> int:
    """
    Move the holdout's start (``cut``) back until the holdout holds every class of ``labels`` (a
    metric such as ROC AUC needs them all, and without it the decay monitor has no baseline), but
    not before ``oldest`` (the plain split's start): a class absent from there on stays absent.
    """
    present = set(labels.iloc[cut:].dropna())
    for label in set(labels.dropna()) - present:
        positions = (labels.iloc[oldest:cut] == label).to_numpy().nonzero()[0]
        if len(positions):
            cut = min(cut, oldest + int(positions[-1]))  # the newest row of the missing class
    return cut


def split(
    frame: pd.DataFrame,
    *,
    target: str,
    task: str,
    strategy: str = "auto",
    test_size: float = 0.2,
    time_column: str | None = None,
    seed: int = 0,
    since: Any = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """
    Train / holdout split: ``stratified`` (classification default), ``random``, or ``time`` (the
    latest ``test_size`` share of ``time_column`` is the holdout: no future leaks into training).

    ``since`` (a time, e.g. the drift onset's start): a ``time`` split takes its holdout from the
    rows at or after it only, the latest ``test_size`` share of them (at least
    :data:`MIN_RECENT_HOLDOUT` rows, at most half of them; for a classification, reaching back
    until every class is in it), so that the training part keeps the rest of them. Without it, the
    newest 20% of a window that reaches back before a drift can be every post-drift row, and the
    model learns the old world alone.
    """
    from sklearn.model_selection import train_test_split

    if strategy == "auto":
        strategy = "time" if time_column else ("stratified" if task == "classification" else "random")
    if strategy == "time":
        if not time_column or time_column not in frame.columns:
            raise TrainingError(f"split strategy 'time' needs time_column in the data (got {time_column!r})")
        ordered = frame.sort_values(time_column, kind="stable")
        cut = round(len(ordered) * (1 - test_size))
        if since is not None:
            import pandas as pd

            start = pd.Timestamp(since)
            start = start.tz_localize("UTC") if start.tzinfo is None else start
            recent = int((pd.to_datetime(frame[time_column], utc=True) >= start).sum())
            if recent:
                # at least MIN_RECENT_HOLDOUT rows, but never more than half: the rest trains
                wanted = min(max(1, recent // 2), max(round(recent * test_size), MIN_RECENT_HOLDOUT))
                cut = max(cut, len(ordered) - wanted)
                if task == "classification":
                    cut = _with_every_class(
                        ordered[target], cut, oldest=round(len(ordered) * (1 - test_size))
                    )
        return ordered.iloc[:cut], ordered.iloc[cut:]
    if strategy not in ("stratified", "random"):
        raise TrainingError(f"split strategy must be auto, stratified, random or time, got {strategy!r}")
    stratify = frame[target] if strategy == "stratified" else None
    if stratify is not None:
        counts = stratify.value_counts()
        if int(counts.min()) < 2:
            rare = counts.index[counts.argmin()]
            raise TrainingError(
                f"Class {plain(rare)!r} of {target!r} has {int(counts.min())} row: a stratified split needs "
                "at least 2 rows of every class (one for training, one for the holdout). Add data, drop "
                "the class, or use split_strategy='random'."
            )
        # scikit-learn's sizes (ceil for the holdout): each part needs a row of every class
        n_test = math.ceil(test_size * len(frame)) if isinstance(test_size, float) else int(test_size)
        n_train = len(frame) - n_test
        if min(n_test, n_train) < len(counts):
            part, size = ("holdout", n_test) if n_test < len(counts) else ("training part", n_train)
            classes = sorted((plain(c) for c in counts.index), key=str)
            shown = f"{classes[:20]}{' ...' if len(classes) > 20 else ''}"
            raise TrainingError(
                f"A stratified split of {len(frame)} rows with test_size={test_size} gives a {part} of "
                f"{size} rows, but {target!r} has {len(counts)} classes {shown}: a stratified split "
                f"needs at least one row of every class in each part. Add rows, "
                + (
                    f"raise test_size (at least {len(counts) / len(frame):.2f}), "
                    if part == "holdout"
                    else "lower test_size, "
                )
                + "or use split_strategy='random'."
            )
    train, test = train_test_split(frame, test_size=test_size, random_state=seed, stratify=stratify)
    return train, test


def check_split_classes(
    y_train: pd.Series, y_test: pd.Series, *, target: str, strategy: str, time_column: str | None = None
) -> list[Any]:
    """
    Refuse a split whose training part lacks a class of the label (the model could never predict
    it): the class, its row count and what to do are named. Returns the classes absent from the
    holdout (the metrics that need them are then left out with a reason, not refused).
    """
    train_classes = set(y_train.unique().tolist())
    counts = y_test.value_counts()
    missing = [c for c in counts.index.tolist() if c not in train_classes]
    if missing:
        where = f" (the latest rows by {time_column!r})" if strategy == "time" and time_column else ""
        raise TrainingError(
            f"Class {plain(missing[0])!r} of {target!r} is absent from the training part of the "
            f"{strategy!r} split: all its {int(counts[missing[0]])} rows fall in the holdout{where}."
            " The model could never predict it. Give more history (a longer training window), drop "
            "the class, or use split_strategy='stratified'."
            + (f" Other classes in the same case: {[plain(c) for c in missing[1:]]}" if missing[1:] else "")
        )
    test_classes = set(counts.index.tolist())
    return sorted((c for c in train_classes if c not in test_classes), key=str)


def non_finite(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every NaN / inf inside ``value`` (nested dicts, lists, numpy scalars) as (key path, value)."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            found += non_finite(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found += non_finite(item, f"{path}[{index}]")
    elif isinstance(value, (float, int)) or (hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return found
        if not math.isfinite(number):
            found.append((path, number))
    return found


class NonFiniteValueError(ValueError):
    """A NaN or infinite value was about to reach MLflow or XCom (which cannot hold it)."""


def check_finite(value: Any, what: str) -> None:
    """
    Raise :class:`NonFiniteValueError` naming every key whose value is NaN or infinite, e.g.
    ``metrics for MLflow: metrics.roc_auc = nan``. JSON (XCom) and MLflow reject or mangle them.
    """
    found = non_finite(value)
    if found:
        listed = ", ".join(f"{k} = {v}" for k, v in found[:10])
        more = f" (and {len(found) - 10} more)" if len(found) > 10 else ""
        raise NonFiniteValueError(f"Non-finite value(s) in the {what}: {listed}{more}")


def evaluate(model: Any, x: Any, y: Any, task: str) -> dict[str, float]:
    """
    Holdout metrics: accuracy, F1, ROC AUC, log loss (classification); RMSE, MAE, R2 (regression).

    F1 is the F1 of class 1 when the labels are 0/1; otherwise (more than two classes, or two
    classes labelled e.g. "yes"/"no") the per-class F1 averaged with weights equal to each class's
    share of the true labels (``average="weighted"``). ROC AUC of a multi-class model is one-vs-rest,
    macro-averaged.

    Only finite values: a metric that cannot be computed on this holdout is left out (see
    :func:`evaluate_with_reasons` for why).
    """
    return evaluate_with_reasons(model, x, y, task)[0]


def evaluate_with_reasons(model: Any, x: Any, y: Any, task: str) -> tuple[dict[str, float], dict[str, str]]:
    """
    :func:`evaluate`'s metrics, and for every metric left out the reason: ROC AUC is undefined
    when a class the model knows is absent from the holdout (scikit-learn returns NaN for it);
    any other non-finite value is left out with the value named. Nothing returned is NaN or inf.
    """
    import warnings

    import numpy as np
    from sklearn import metrics
    from sklearn.exceptions import UndefinedMetricWarning

    predicted = model.predict(x)
    raw: dict[str, float] = {}
    unavailable: dict[str, str] = {}
    if task == "regression":
        raw = {
            "rmse": float(np.sqrt(metrics.mean_squared_error(y, predicted))),
            "mae": float(metrics.mean_absolute_error(y, predicted)),
            "r2": float(metrics.r2_score(y, predicted)) if len(y) > 1 else float("nan"),
        }
        if len(y) <= 1:
            unavailable["r2"] = f"R2 needs at least 2 holdout rows, the holdout has {len(y)}"
    else:
        classes = np.unique(y)
        binary = len(classes) <= 2
        raw = {
            "accuracy": float(metrics.accuracy_score(y, predicted)),
            "f1": float(
                metrics.f1_score(
                    y,
                    predicted,
                    average="binary" if binary and set(classes) <= {0, 1} else "weighted",
                    zero_division=0.0,
                )
            ),
        }
        if hasattr(model, "predict_proba"):
            proba = model.predict_proba(x)
            labels = list(getattr(model, "classes_", classes))
            absent = [c for c in labels if c not in set(classes.tolist())]
            if absent:
                unavailable["roc_auc"] = (
                    f"class {plain(absent[0])!r} absent from holdout ({len(y)} rows)"
                    if len(absent) == 1
                    else f"classes {[plain(c) for c in absent]} absent from holdout ({len(y)} rows)"
                )
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UndefinedMetricWarning)
                    try:
                        raw["roc_auc"] = float(
                            metrics.roc_auc_score(y, proba[:, 1])
                            if len(labels) == 2
                            else metrics.roc_auc_score(y, proba, multi_class="ovr", labels=labels)
                        )
                    except ValueError as err:
                        unavailable["roc_auc"] = f"ROC AUC undefined on this holdout: {err}"
            raw["log_loss"] = float(metrics.log_loss(y, proba, labels=labels))
    out = {}
    for name, value in raw.items():
        if math.isfinite(value):
            out[name] = value
        else:
            unavailable.setdefault(name, f"not finite on this holdout ({value})")
    return out, unavailable


def train(
    frame: pd.DataFrame,
    *,
    label_column: str,
    task: str | None = None,
    features: Mapping[str, Any] | None = None,
    selection: Sequence[Mapping[str, Any]] | None = None,
    estimator: str = "sklearn.ensemble.RandomForestClassifier",
    estimator_params: Mapping[str, Any] | None = None,
    tuning: Mapping[str, Any] | None = None,
    split_strategy: str = "auto",
    test_size: float = 0.2,
    time_column: str | None = None,
    seed: int = 0,
    candidates: Sequence[Mapping[str, Any]] | None = None,
    sample_weight: Any = None,
    holdout_since: Any = None,
) -> TrainResult:
    """
    Fit the whole Pipeline on the training split, tune it, and evaluate it on the holdout.

    ``sample_weight`` (one per row of ``frame``, e.g. from
    :func:`airflow_provider_mlops.ml.windows.apply_window`) reaches the estimator as
    ``model__sample_weight`` in every fit of every search (:func:`check_sample_weight` refuses, by
    name, a tuning method or an estimator that cannot take it). CV scores and holdout metrics are
    not weighted. ``holdout_since`` (the drift onset's start): a time split holds out the newest
    share of the rows since then only (:func:`split`'s ``since``).

    With ``candidates`` (see :mod:`airflow_provider_mlops.ml.candidates`) ``estimator`` and
    ``estimator_params`` are not used: every candidate is tuned with ``tuning`` on the same CV folds
    of the training split, and the best by mean CV score is the model evaluated on the holdout.
    """
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.pipeline import Pipeline

    from airflow_provider_mlops.ml.features import build_features, categorical_as_object
    from airflow_provider_mlops.ml.selection import build_selectors, selected_features

    started = time.monotonic()
    if label_column not in frame.columns:
        raise TrainingError(
            f"Label column {label_column!r} is not in the data (columns: {list(frame.columns)})"
        )
    weights = None
    if sample_weight is not None:
        import pandas as pd

        sample_weight = list(sample_weight)
        if len(sample_weight) != len(frame):
            raise TrainingError(
                f"sample_weight has {len(sample_weight)} weights for {len(frame)} rows: give one per row"
            )
        if not frame.index.is_unique:  # weights follow the rows by position: labels must tell rows apart
            frame = frame.reset_index(drop=True)
        weights = pd.Series(sample_weight, index=frame.index, dtype=float)
        if not weights.map(math.isfinite).all() or (weights < 0).any():
            raise TrainingError("sample_weight needs one finite, non-negative weight per row of the data")
    labelled = frame[label_column].notna()
    dropped = int((~labelled).sum())
    if dropped:
        log.info(
            "Dropped %s of %s rows whose label %r is missing (they cannot be learned from)",
            dropped,
            len(frame),
            label_column,
        )
        frame = frame[labelled]
    if len(frame) < 10:
        raise TrainingError(f"Only {len(frame)} labelled rows: too few to train and evaluate")
    task = task or infer_task(frame[label_column])
    if task not in ("classification", "regression"):
        raise TrainingError(f"task must be classification or regression, got {task!r}")
    check_selection(features, selection)
    if candidates is not None:
        from airflow_provider_mlops.ml.candidates import check_candidates

        check_candidates(candidates)
    else:
        params = dict(estimator_params or {})
        model = load_estimator(estimator, params, task=task)
        if "random_state" in model.get_params() and "random_state" not in params:
            model.set_params(random_state=seed)
        if weights is not None:
            check_sample_weight(tuning, model, estimator)
    plan = build_features(frame, features, target=label_column, task=task, time_column=time_column)
    numeric, categorical = plan.numeric, plan.categorical
    frame = categorical_as_object(frame, [c for c in categorical if c in frame.columns])
    train_frame, test_frame = split(
        frame,
        target=label_column,
        task=task,
        strategy=split_strategy,
        test_size=test_size,
        time_column=time_column,
        seed=seed,
        since=holdout_since,
    )
    columns = plan.inputs  # the raw columns: derived ones are computed inside the Pipeline
    x_train, y_train = train_frame[columns], train_frame[label_column]
    x_test, y_test = test_frame[columns], test_frame[label_column]
    if task == "classification":  # before any fitting: a class the training part lacks is refused
        absent = check_split_classes(
            y_train,
            y_test,
            target=label_column,
            strategy=split_strategy
            if split_strategy != "auto"
            else ("time" if time_column else "stratified"),
            time_column=time_column,
        )
        if absent:
            log.warning(
                "Classes %s of %r are absent from the holdout (%s rows): the metrics needing them "
                "(ROC AUC) are left out",
                [plain(c) for c in absent],
                label_column,
                len(y_test),
            )

    def make_pipeline(model: Any) -> Any:
        return seeded(
            Pipeline([*plan.steps(), *build_selectors(selection, task=task, seed=seed), ("model", model)]),
            seed,
        )

    from airflow_provider_mlops.ml.search import collapsed_warnings

    leaderboard: list[dict[str, Any]] = []
    if candidates is not None:
        from airflow_provider_mlops.ml.candidates import run_candidates

        outcomes, leaderboard, _ = run_candidates(
            candidates,
            make_pipeline=make_pipeline,
            tuning=tuning,
            task=task,
            seed=seed,
            x=x_train,
            y=y_train,
            sample_weight=None if weights is None else weights.loc[train_frame.index].to_numpy(),
        )
        search, fitted, best_params = outcomes[0].search, outcomes[0].fitted, outcomes[0].best_params
        estimator = outcomes[0].estimator
        log.info(
            "Candidates by mean CV score: %s", [(r["candidate"], r["mean_cv_score"]) for r in leaderboard]
        )
    else:
        search = build_search(make_pipeline(model), tuning, task=task, seed=seed)
        fit_started = time.monotonic()
        fit_params = (
            {} if weights is None else {"model__sample_weight": weights.loc[train_frame.index].to_numpy()}
        )
        with collapsed_warnings(f"Training {type(model).__name__}"):
            search.fit(x_train, y_train, **fit_params)
        log.info(
            "Fitted %s (tuning %s) on %s rows in %.1f s",
            type(model).__name__,
            (tuning or {}).get("method") or "none",
            len(x_train),
            time.monotonic() - fit_started,
        )
        fitted = getattr(search, "best_estimator_", search)
        best_params = {
            k.removeprefix("model__"): plain(v) for k, v in getattr(search, "best_params_", {}).items()
        }
    dummy = (DummyClassifier(strategy="most_frequent") if task == "classification" else DummyRegressor()).fit(
        x_train, y_train
    )
    cv_results = []
    if hasattr(search, "cv_results_") and "params" in search.cv_results_:
        results = search.cv_results_
        for i in range(len(results["params"])):
            cv_results.append(
                {
                    "params": {k: plain(v) for k, v in results["params"][i].items()},
                    "mean_test_score": float(results["mean_test_score"][i]),
                }
            )
    elif hasattr(search, "trials_"):  # OptunaSearchCV
        cv_results = [
            {"params": {k: plain(v) for k, v in t.params.items()}, "mean_test_score": float(t.value)}
            for t in search.trials_
            if t.value is not None
        ]
    with collapsed_warnings("Holdout evaluation"):  # 200 bootstrap resamples repeat their warnings
        metrics, unavailable = evaluate_with_reasons(fitted, x_test, y_test, task)
        baseline_metrics = evaluate(dummy, x_test, y_test, task)
        uncertainty = holdout_uncertainty(fitted, x_test, y_test, task, list(metrics), seed=seed)
    for name, reason in unavailable.items():
        log.warning("Holdout metric %s left out: %s", name, reason)
    return TrainResult(
        pipeline=fitted,
        task=task,
        metrics=metrics,
        baseline_metrics=baseline_metrics,
        best_params=best_params,
        selected_features=selected_features(fitted),
        # the raw input columns that are features (what a reference profile can describe)
        numeric_features=[c for c in numeric if c in columns],
        categorical_features=[c for c in categorical if c in columns],
        train_rows=len(train_frame),
        test_rows=len(test_frame),
        x_test=x_test,
        y_test=y_test,
        cv_results=cv_results,
        seconds=time.monotonic() - started,
        metric_uncertainty=uncertainty,
        dropped_missing_label=dropped,
        estimator=estimator,
        leaderboard=leaderboard,
        metrics_unavailable=unavailable,
    )


# Tuning methods whose fit cannot pass sample_weight to the estimator.
def seeded(pipeline: Any, seed: int) -> Any:
    """
    Give ``seed`` to every component of ``pipeline`` that draws random numbers: each
    ``random_state`` left at None (estimators, selectors' estimators, encoders), and scikit-learn's
    TargetEncoder, whose cross-fitting shuffles its folds (scikit-learn >= 1.9 takes the seed through
    a splitter as ``cv``; older versions through ``random_state``). An explicit ``random_state``
    in the spec is kept. Returns the pipeline.
    """
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.preprocessing import TargetEncoder

    params = pipeline.get_params(deep=True)
    updates: dict[str, Any] = {k: seed for k, v in params.items() if k.endswith("random_state") and v is None}
    for key, value in params.items():
        if not isinstance(value, TargetEncoder):
            continue
        prefix = f"{key}__"
        if value.random_state == "deprecated":  # scikit-learn >= 1.9
            updates.pop(f"{prefix}random_state", None)
            if isinstance(value.cv, int) or value.cv is None:
                folds = value.cv or 5
                splitter = KFold if value.target_type == "continuous" else StratifiedKFold
                updates[f"{prefix}cv"] = splitter(n_splits=folds, shuffle=True, random_state=seed)
        elif value.random_state is None:
            updates[f"{prefix}random_state"] = seed
    if updates:
        pipeline.set_params(**updates)
    return pipeline


def holdout_uncertainty(
    model: Any, x: Any, y: Any, task: str, names: Sequence[str], *, n_boot: int = 200, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Bootstrap spread of each holdout metric (200 resamples: ~0.5 s for four metrics on 1k rows)."""
    from airflow_provider_mlops.ml.stats import predictions, uncertainty

    scored = predictions(model, x, y, task)
    out = {}
    for name in names:
        with contextlib.suppress(ValueError):
            spread = uncertainty(name, scored, n_boot=n_boot, seed=seed)
            if not non_finite(spread):  # a resample without a class: no finite spread to report
                out[name] = spread
    return out


def check_selection(
    features: Mapping[str, Any] | None, selection: Sequence[Mapping[str, Any]] | None
) -> None:
    """
    Refuse, before any fitting, a chi2 k-best selection after a scaling that yields negative values
    (scikit-learn's chi2 needs non-negative input and would fail mid-search with "Input X must be
    non-negative").
    """
    from airflow_provider_mlops.ml.features import DEFAULT_SPEC
    from airflow_provider_mlops.ml.selection import SelectionSpecError

    scale = ({**DEFAULT_SPEC["numeric"], **dict((features or {}).get("numeric") or {})}).get(
        "scale"
    ) or "none"
    for index, step in enumerate(selection or []):
        if step.get("method") == "kbest" and step.get("score") == "chi2" and scale in ("standard", "robust"):
            raise SelectionSpecError(
                f"Selection step {index}: kbest with score chi2 needs non-negative features, but numeric "
                f"scale is {scale!r} (the default is 'standard'), which centres them around 0. Use "
                "features={'numeric': {'scale': 'minmax'}} (or 'none' when the raw values are "
                "non-negative), or another score: f_classif, mutual_info."
            )
