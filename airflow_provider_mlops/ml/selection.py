"""
Feature selection as a declarative spec, built from scikit-learn's own selectors.

A spec is a list of steps applied in order after feature engineering (dict/YAML friendly)::

    [
        {"method": "variance", "threshold": 0.0},
        {"method": "correlation", "threshold": 0.9},
        {"method": "kbest", "score": "f_classif", "k": 10},        # f_classif | f_regression | mutual_info | chi2
        {"method": "forward", "n_features": 5, "cv": 3},           # SequentialFeatureSelector
        {"method": "backward", "n_features": 5, "cv": 3},
        {"method": "model", "estimator": "random_forest", "threshold": "median"},  # or decision_tree
        {"method": "rfe", "n_features": 5, "estimator": "decision_tree"},
    ]

``estimator_params`` sets parameters of the built-in estimator of a ``model``, ``rfe``, ``forward``
or ``backward`` step, e.g. ``{"n_estimators": 50, "max_depth": 8}`` for a smaller ranking forest: the
default random forest (100 fully grown trees) is fitted at every CV fit of a tuned Pipeline and
travels inside the model file, so its size is training time, file size and loading time.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

METHODS = ("variance", "correlation", "kbest", "forward", "backward", "model", "rfe")


class SelectionSpecError(ValueError):
    """The feature selection spec is malformed."""


def _base_estimator(name: str, task: str, seed: int, params: Mapping[str, Any] | None = None) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    classification = task == "classification"
    factories = {
        "random_forest": lambda: (RandomForestClassifier if classification else RandomForestRegressor)(
            n_estimators=100, random_state=seed, n_jobs=1
        ),
        "decision_tree": lambda: (DecisionTreeClassifier if classification else DecisionTreeRegressor)(
            random_state=seed, max_depth=8
        ),
        "linear": lambda: LogisticRegression(max_iter=1000) if classification else LinearRegression(),
    }
    if name not in factories:
        raise SelectionSpecError(f"estimator must be one of {sorted(factories)}, got {name!r}")
    estimator = factories[name]()
    if params:
        if not isinstance(params, dict):
            raise SelectionSpecError(f"estimator_params must be a mapping, got {params!r}")
        unknown = sorted(set(params) - set(estimator.get_params(deep=False)))
        if unknown:
            raise SelectionSpecError(
                f"estimator_params {unknown} are not parameters of {type(estimator).__name__} ({name!r})"
            )
        estimator.set_params(**params)
    return estimator


def build_selectors(
    spec: Sequence[Mapping[str, Any]] | None, *, task: str, seed: int = 0
) -> list[tuple[str, Any]]:
    """Named pipeline steps for the selection spec (empty when there is none)."""
    from sklearn.feature_selection import (
        RFE,
        SelectKBest,
        SequentialFeatureSelector,
        VarianceThreshold,
        chi2,
        f_classif,
        f_regression,
        mutual_info_classif,
        mutual_info_regression,
    )

    from airflow_provider_mlops.ml.transformers import CorrelationFilter, StableSelectFromModel

    steps: list[tuple[str, Any]] = []
    for index, step in enumerate(spec or []):
        options = dict(step)
        method = options.pop("method", None)
        if method not in METHODS:
            raise SelectionSpecError(
                f"Selection step {index}: method must be one of {METHODS}, got {method!r}"
            )
        name = f"select_{index}_{method}"
        if method == "variance":
            selector: Any = VarianceThreshold(threshold=float(options.get("threshold", 0.0)))
        elif method == "correlation":
            selector = CorrelationFilter(threshold=float(options.get("threshold", 0.9)))
        elif method == "kbest":
            score = options.get("score") or ("f_classif" if task == "classification" else "f_regression")
            # Mutual information is estimated with random noise: seeded, so reruns select the same.
            mutual_info = partial(
                mutual_info_classif if task == "classification" else mutual_info_regression, random_state=seed
            )
            functions = {
                "f_classif": f_classif,
                "f_regression": f_regression,
                "chi2": chi2,
                "mutual_info": mutual_info,
            }
            if score not in functions:
                raise SelectionSpecError(f"kbest score must be one of {sorted(functions)}, got {score!r}")
            selector = SelectKBest(functions[score], k=options.get("k", 10))
        elif method in ("forward", "backward"):
            selector = SequentialFeatureSelector(
                _base_estimator(
                    options.get("estimator", "linear"), task, seed, options.get("estimator_params")
                ),
                n_features_to_select=options.get("n_features", "auto"),
                tol=options.get("tol"),
                direction=method,
                cv=int(options.get("cv", 3)),
                scoring=options.get("scoring"),
                n_jobs=options.get("n_jobs"),
            )
        elif method == "model":
            # SelectFromModel with the support mask kept from the fit (identical output, no walk over
            # the forest's trees at every transform)
            selector = StableSelectFromModel(
                _base_estimator(
                    options.get("estimator", "random_forest"), task, seed, options.get("estimator_params")
                ),
                threshold=options.get("threshold", "median"),
                max_features=options.get("max_features"),
            )
        else:
            selector = RFE(
                _base_estimator(
                    options.get("estimator", "decision_tree"), task, seed, options.get("estimator_params")
                ),
                n_features_to_select=options.get("n_features"),
                step=options.get("step", 1),
            )
        steps.append((name, selector))
    return steps


def selected_features(pipeline: Any, preprocessor_step: str = "features") -> list[str]:
    """The names of the features that reach the estimator of a fitted Pipeline."""
    names = list(pipeline.named_steps[preprocessor_step].get_feature_names_out())
    after = [name for name, _ in pipeline.steps].index(preprocessor_step) + 1
    for _, step in pipeline.steps[after:-1]:
        names = list(step.get_feature_names_out(names))
    return names
