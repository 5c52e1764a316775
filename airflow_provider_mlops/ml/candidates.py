"""
Candidate model families: several estimators, each tuned with the configured method and compared
by cross-validation on the same folds; the best one wins.

A candidate is ``{"estimator": <allowlisted class path or alias>, "params": {fixed parameters},
"search_space" (or "param_grid"): {its own space}, "name": optional label}``.

Estimators come only from :data:`ALLOWED_ESTIMATORS` (scikit-learn classes, plus xgboost / lightgbm
when installed) or from :func:`register_estimator`. This module imports nothing heavy: the
operator checks the candidates when the DAG is parsed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Why an allowlist and not any import path: ``candidates`` is plain data, and plain data in a DAG
# often comes from somewhere else (a YAML/JSON config rendered into DAGs, a generated DAG, params
# of a triggered run). Importing a string runs the module-level code of whatever module it names on
# the worker, with the worker's credentials; a fixed list of estimator classes means such data can
# only *choose* among known estimators. Adding one is a code change (register_estimator), reviewed
# like code. The paths are strings so that checking a DAG imports neither scikit-learn nor xgboost.
_SK = "sklearn."
ALLOWED_ESTIMATORS: frozenset[str] = frozenset(
    [
        *(
            f"{_SK}linear_model.{c}"
            for c in (
                "LogisticRegression",
                "RidgeClassifier",
                "SGDClassifier",
                "LinearRegression",
                "Ridge",
                "Lasso",
                "ElasticNet",
                "SGDRegressor",
                "HuberRegressor",
            )
        ),
        *(
            f"{_SK}ensemble.{family}{kind}"
            for family in (
                "RandomForest",
                "ExtraTrees",
                "GradientBoosting",
                "HistGradientBoosting",
                "AdaBoost",
            )
            for kind in ("Classifier", "Regressor")
        ),
        *(f"{_SK}tree.DecisionTree{k}" for k in ("Classifier", "Regressor")),
        *(f"{_SK}neighbors.KNeighbors{k}" for k in ("Classifier", "Regressor")),
        *(f"{_SK}neural_network.MLP{k}" for k in ("Classifier", "Regressor")),
        *(f"{_SK}dummy.Dummy{k}" for k in ("Classifier", "Regressor")),
        f"{_SK}svm.SVC",
        f"{_SK}svm.SVR",
        f"{_SK}svm.LinearSVC",
        f"{_SK}svm.LinearSVR",
        f"{_SK}naive_bayes.GaussianNB",
        # optional: used only when installed (not dependencies of this provider)
        "xgboost.XGBClassifier",
        "xgboost.XGBRegressor",
        "lightgbm.LGBMClassifier",
        "lightgbm.LGBMRegressor",
    ]
)

# Short aliases: (classification class path, regression class path); None where there is none.
ALIASES: dict[str, tuple[str | None, str | None]] = {
    "logistic_regression": (f"{_SK}linear_model.LogisticRegression", None),
    "linear_regression": (None, f"{_SK}linear_model.LinearRegression"),
    "ridge": (f"{_SK}linear_model.RidgeClassifier", f"{_SK}linear_model.Ridge"),
    "lasso": (None, f"{_SK}linear_model.Lasso"),
    "elastic_net": (None, f"{_SK}linear_model.ElasticNet"),
    "sgd": (f"{_SK}linear_model.SGDClassifier", f"{_SK}linear_model.SGDRegressor"),
    "random_forest": (f"{_SK}ensemble.RandomForestClassifier", f"{_SK}ensemble.RandomForestRegressor"),
    "extra_trees": (f"{_SK}ensemble.ExtraTreesClassifier", f"{_SK}ensemble.ExtraTreesRegressor"),
    "gradient_boosting": (
        f"{_SK}ensemble.GradientBoostingClassifier",
        f"{_SK}ensemble.GradientBoostingRegressor",
    ),
    "hist_gradient_boosting": (
        f"{_SK}ensemble.HistGradientBoostingClassifier",
        f"{_SK}ensemble.HistGradientBoostingRegressor",
    ),
    "adaboost": (f"{_SK}ensemble.AdaBoostClassifier", f"{_SK}ensemble.AdaBoostRegressor"),
    "decision_tree": (f"{_SK}tree.DecisionTreeClassifier", f"{_SK}tree.DecisionTreeRegressor"),
    "knn": (f"{_SK}neighbors.KNeighborsClassifier", f"{_SK}neighbors.KNeighborsRegressor"),
    "svm": (f"{_SK}svm.SVC", f"{_SK}svm.SVR"),
    "linear_svm": (f"{_SK}svm.LinearSVC", f"{_SK}svm.LinearSVR"),
    "naive_bayes": (f"{_SK}naive_bayes.GaussianNB", None),
    "mlp": (f"{_SK}neural_network.MLPClassifier", f"{_SK}neural_network.MLPRegressor"),
    "dummy": (f"{_SK}dummy.DummyClassifier", f"{_SK}dummy.DummyRegressor"),
    "xgboost": ("xgboost.XGBClassifier", "xgboost.XGBRegressor"),
    "lightgbm": ("lightgbm.LGBMClassifier", "lightgbm.LGBMRegressor"),
}

# Estimators registered by code (register_estimator): name -> class or import path.
_REGISTERED: dict[str, Any] = {}


class CandidateSpecError(ValueError):
    """A ``candidates`` entry is malformed or names an estimator outside the allowlist."""


def register_estimator(name: str, estimator: Any) -> None:
    """
    Allow ``name`` as a candidate's ``estimator``: ``estimator`` is a class (or an import path
    written in code). Call it in code that both the DAG processor and the worker import (the DAG
    file, or a module it imports), before the operator is constructed::

        from airflow_provider_mlops.ml.candidates import register_estimator
        register_estimator("my_gbm", "my_company.models.TunedGBM")
    """
    if not isinstance(name, str) or not name:
        raise CandidateSpecError("register_estimator needs a non-empty name")
    _REGISTERED[name] = estimator


def known_estimators() -> list[str]:
    return sorted({*ALIASES, *ALLOWED_ESTIMATORS, *_REGISTERED})


def check_estimator_name(name: Any) -> None:
    """Raise :class:`CandidateSpecError` unless ``name`` is allowlisted, an alias or registered."""
    if isinstance(name, str) and (name in ALLOWED_ESTIMATORS or name in ALIASES or name in _REGISTERED):
        return
    raise CandidateSpecError(
        f"estimator {name!r} is not allowed (candidates and TrainModelOperator's estimator share one "
        "allowlist): use a scikit-learn class path from the "
        f"allowlist (e.g. 'sklearn.ensemble.RandomForestClassifier'), an alias ({', '.join(sorted(ALIASES))}), "
        "or register your own in code with "
        "airflow_provider_mlops.ml.candidates.register_estimator(name, cls). Arbitrary import paths "
        "from a DAG are refused because importing them runs code on the worker."
    )


def check_candidates(candidates: Sequence[Mapping[str, Any]] | None) -> None:
    """Validate the ``candidates`` spec without importing anything (DAG parse time)."""
    if candidates is None:
        return
    if isinstance(candidates, (str, bytes, Mapping)) or not isinstance(candidates, Sequence):
        raise CandidateSpecError("candidates must be a list of {'estimator': ..., 'params': ..., ...}")
    if not candidates:
        raise CandidateSpecError("candidates is empty: give at least one, or leave it None")
    names: set[str] = set()
    for index, spec in enumerate(candidates):
        if not isinstance(spec, Mapping) or "estimator" not in spec:
            raise CandidateSpecError(f"candidates[{index}] must be a dict with an 'estimator'")
        unknown = set(spec) - {"estimator", "params", "search_space", "param_grid", "name"}
        if unknown:
            raise CandidateSpecError(
                f"candidates[{index}] has unknown keys {sorted(unknown)} "
                "(expected estimator, params, search_space / param_grid, name)"
            )
        if "search_space" in spec and "param_grid" in spec:
            raise CandidateSpecError(f"candidates[{index}]: give search_space or param_grid, not both")
        try:
            check_estimator_name(spec["estimator"])
        except CandidateSpecError as err:
            raise CandidateSpecError(f"candidates[{index}]: {err}") from None
        for key in ("params", "search_space", "param_grid"):
            if spec.get(key) is not None and not isinstance(spec[key], Mapping):
                raise CandidateSpecError(f"candidates[{index}].{key} must be a dict")
        name = candidate_name(spec, index)
        if name in names:
            raise CandidateSpecError(f"candidates[{index}]: duplicate name {name!r}: give each a 'name'")
        names.add(name)


def candidate_name(spec: Mapping[str, Any], index: int) -> str:
    return str(spec.get("name") or str(spec["estimator"]).rpartition(".")[2] or f"candidate_{index}")


def resolve_estimator(name: str, task: str) -> tuple[str, Any]:
    """(class path, class) for an allowlisted path, an alias (by task) or a registered name."""
    import importlib

    from airflow_provider_mlops.ml.search import TrainingError

    check_estimator_name(name)
    target: Any = name
    if name in _REGISTERED:
        target = _REGISTERED[name]
    elif name in ALIASES:
        target = ALIASES[name][0 if task == "classification" else 1]
        if target is None:
            raise CandidateSpecError(f"estimator alias {name!r} has no {task} estimator")
    if not isinstance(target, str):
        return f"{target.__module__}.{target.__qualname__}", target
    module_name, _, class_name = target.rpartition(".")
    try:
        return target, getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise TrainingError(
            f"Cannot import estimator {target!r} ({err}); xgboost and lightgbm are optional: install them"
        ) from None


@dataclass
class CandidateOutcome:
    name: str
    estimator: str
    search: Any
    fitted: Any
    best_params: dict[str, Any]
    fold_scores: list[float]
    seconds: float
    folds_sha256: str
    n_configurations: int


def folds_digest(folds: Sequence[tuple[Any, Any]]) -> str:
    """sha256 of the folds' (train, test) row positions: equal digests mean identical folds."""
    digest = hashlib.sha256()
    for train_idx, test_idx in folds:
        digest.update(json.dumps([[int(i) for i in train_idx], [int(i) for i in test_idx]]).encode())
    return digest.hexdigest()


def _fold_scores_of_best(search: Any, n_folds: int) -> list[float] | None:
    """The best configuration's per-fold scores when the search kept them (on the full folds)."""
    results = getattr(search, "cv_results_", None)
    index = getattr(search, "best_index_", None)
    if not isinstance(results, Mapping) or index is None or "split0_test_score" not in results:
        return None
    if "n_resources" in results:  # successive halving: scores of subsampled folds; re-score instead
        return None
    return [float(results[f"split{i}_test_score"][index]) for i in range(n_folds)]


def run_candidates(
    candidates: Sequence[Mapping[str, Any]],
    *,
    make_pipeline: Any,
    tuning: Mapping[str, Any] | None,
    task: str,
    seed: int,
    x: Any,
    y: Any,
    sample_weight: Any = None,
) -> tuple[list[CandidateOutcome], list[dict[str, Any]], list[tuple[Any, Any]]]:
    """
    Tune every candidate on the same folds. ``make_pipeline(estimator)`` builds the Pipeline around
    an estimator. Returns (outcomes best first, leaderboard rows best first, the folds).

    The folds are drawn once from one seeded splitter (stratified for classification) and the same
    list of row positions is given to every search; each candidate's score is the mean (and spread)
    over those folds of its best configuration, so candidates are compared on identical data.
    ``sample_weight`` reaches each candidate's estimator (``model__sample_weight``) in every fit; a
    candidate or tuning method that cannot take it is refused by name before any fitting.
    """
    import numpy as np
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

    from airflow_provider_mlops.ml.search import (
        SearchProgress,
        TrainingError,
        build_search,
        check_sample_weight,
        collapsed_warnings,
        plain,
        time_budget,
    )

    check_candidates(candidates)
    tuning = dict(tuning or {})
    method = tuning.get("method", "none") or "none"
    if method == "keras_tuner":
        raise TrainingError(
            "candidates compare scikit-learn estimators: they do not combine with keras_tuner"
        )
    n_folds = int(tuning.get("cv", 5))
    splitter = (StratifiedKFold if task == "classification" else KFold)(
        n_splits=n_folds, shuffle=True, random_state=seed
    )
    folds = [(np.asarray(a), np.asarray(b)) for a, b in splitter.split(x, y)]
    scoring = tuning.get("scoring") or (
        "f1_weighted" if task == "classification" else "neg_root_mean_squared_error"
    )
    shared_space = dict(tuning.get("param_grid") or tuning.get("param_distributions") or {})
    # tuning.time_budget bounds the whole comparison: one deadline shared by every candidate's
    # search (each evaluates at least one configuration, so every candidate gets a score).
    budget = time_budget(tuning)
    deadline = None if budget is None else time.monotonic() + budget
    outcomes = []
    for index, spec in enumerate(candidates):
        started = time.monotonic()
        name = candidate_name(spec, index)
        progress = SearchProgress(name, deadline=deadline, budget=budget)
        if progress.deadline is not None and time.monotonic() >= progress.deadline:
            log.warning(
                "Candidate %s (%s of %s) starts after the time_budget of %s s: one configuration only",
                name,
                index + 1,
                len(candidates),
                budget,
            )
        path, cls = resolve_estimator(str(spec["estimator"]), task)
        params = dict(spec.get("params") or {})
        try:
            estimator = cls(**params)
        except TypeError as err:
            raise TrainingError(f"candidate {name!r}: bad parameters for {path}: {err}") from None
        if "random_state" in estimator.get_params() and "random_state" not in params:
            estimator.set_params(random_state=seed)
        fit_params = {}
        if sample_weight is not None:
            try:
                check_sample_weight(tuning, estimator, path)
            except TrainingError as err:
                raise TrainingError(f"candidate {name!r}: {err}") from None
            fit_params = {"model__sample_weight": sample_weight}
        pipeline = make_pipeline(estimator)
        space = {**shared_space, **dict(spec.get("search_space") or spec.get("param_grid") or {})}
        if method != "none" and space:
            search = build_search(
                pipeline,
                {**tuning, "scoring": scoring, "param_grid": space, "param_distributions": None},
                task=task,
                seed=seed,
                cv=folds,
                progress=progress,
            )
            with collapsed_warnings(f"Candidate {name}"):
                search.fit(x, y, **fit_params)
            fitted = search.best_estimator_
            best = dict(search.best_params_)
            scores = _fold_scores_of_best(search, n_folds)
            if scores is None:
                scores = cross_val_score(
                    clone(pipeline).set_params(**best),
                    x,
                    y,
                    cv=folds,
                    scoring=scoring,
                    error_score="raise",
                    params=fit_params or None,
                ).tolist()
            configurations = len(getattr(search, "cv_results_", {}).get("params", [])) or int(
                len(getattr(search, "trials_", [])) or 1
            )
        else:  # no search (or nothing to search): the candidate as given, on the same folds
            search = pipeline
            with collapsed_warnings(f"Candidate {name}"):
                scores = cross_val_score(
                    pipeline, x, y, cv=folds, scoring=scoring, error_score="raise", params=fit_params or None
                ).tolist()
                fitted = clone(pipeline).fit(x, y, **fit_params)
            best, configurations = {}, 1
            progress.record({}, float(np.mean(scores)), total=1, note="(as given)")
        outcomes.append(
            CandidateOutcome(
                name=name,
                estimator=path,
                search=search,
                fitted=fitted,
                best_params={k.removeprefix("model__"): plain(v) for k, v in best.items()},
                fold_scores=[float(s) for s in scores],
                seconds=time.monotonic() - started,
                folds_sha256=folds_digest(getattr(search, "cv", folds) if search is not pipeline else folds),
                n_configurations=configurations,
            )
        )
    outcomes.sort(key=lambda o: float(np.mean(o.fold_scores)), reverse=True)
    board = [
        {
            "rank": rank,
            "candidate": o.name,
            "estimator": o.estimator,
            "best_params": o.best_params,
            "mean_cv_score": float(np.mean(o.fold_scores)),
            "std_cv_score": float(np.std(o.fold_scores)),
            "fold_scores": o.fold_scores,
            "scoring": scoring if isinstance(scoring, str) else str(scoring),
            "tuning_method": method,
            "configurations": o.n_configurations,
            "fit_seconds": round(o.seconds, 3),
            "folds_sha256": o.folds_sha256,
        }
        for rank, o in enumerate(outcomes, start=1)
    ]
    return outcomes, board, folds


def leaderboard_csv(board: Sequence[Mapping[str, Any]]) -> bytes:
    import csv
    import io

    columns = [
        "rank",
        "candidate",
        "estimator",
        "mean_cv_score",
        "std_cv_score",
        "fit_seconds",
        "configurations",
        "scoring",
        "tuning_method",
        "best_params",
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in board:
        writer.writerow({**row, "best_params": json.dumps(row["best_params"], default=str, sort_keys=True)})
    return buffer.getvalue().encode()


def leaderboard_files(board: Sequence[Mapping[str, Any]]) -> dict[str, bytes]:
    """The leaderboard as MLflow artifacts: ``leaderboard.csv``, ``leaderboard.json`` and a bar chart."""
    from airflow_provider_mlops.ml.plots import leaderboard_png

    return {
        "leaderboard.csv": leaderboard_csv(board),
        "leaderboard.json": json.dumps(list(board), indent=1, default=str).encode(),
        "leaderboard.png": leaderboard_png(board),
    }
