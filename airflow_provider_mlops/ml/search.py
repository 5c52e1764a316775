"""
Searches beyond scikit-learn's own: Hyperopt's TPE and a genetic algorithm (sklearn-genetic-opt).

Both read the search space in the one form every method accepts (the Optuna-like form of
``tuning.param_grid``): a list is a categorical choice, ``{"low": a, "high": b}`` a uniform range
(integers when both ends are integers), ``"log": true`` makes it log-uniform. Each behaves like a
scikit-learn search after ``fit``: ``best_estimator_`` (refitted on all the training rows),
``best_params_``, ``best_score_``, ``best_index_`` and ``cv_results_`` with ``params``,
``mean_test_score``, ``std_test_score`` and ``split<i>_test_score``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def _is_int_range(spec: Mapping[str, Any]) -> bool:
    return isinstance(spec["low"], int) and isinstance(spec["high"], int)


def hyperopt_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """The space as Hyperopt expressions (``hp.choice``, ``hp.uniform``, ``hp.loguniform``, ints)."""
    from hyperopt import hp
    from hyperopt.pyll import scope

    out: dict[str, Any] = {}
    for key, value in space.items():
        if isinstance(value, Mapping):
            low, high, log = value["low"], value["high"], bool(value.get("log"))
            if _is_int_range(value):
                out[key] = scope.int(
                    hp.qloguniform(key, math.log(low), math.log(high), 1)
                    if log
                    else hp.quniform(key, low, high, 1)
                )
            elif log:
                out[key] = hp.loguniform(key, math.log(low), math.log(high))
            else:
                out[key] = hp.uniform(key, float(low), float(high))
        else:
            out[key] = hp.choice(key, list(value))
    return out


def genetic_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """The space as sklearn-genetic-opt dimensions (``Categorical``, ``Integer``, ``Continuous``)."""
    from sklearn_genetic.space import Categorical, Continuous, Integer

    out: dict[str, Any] = {}
    for key, value in space.items():
        if isinstance(value, Mapping):
            distribution = "log-uniform" if value.get("log") else "uniform"
            if _is_int_range(value):
                out[key] = Integer(value["low"], value["high"], distribution="uniform")
            else:
                out[key] = Continuous(float(value["low"]), float(value["high"]), distribution=distribution)
        else:
            out[key] = Categorical(list(value))
    return out


class HyperoptSearchCV:
    """Tree-structured Parzen estimator (Hyperopt) over ``space``, scored by cross-validation."""

    def __init__(
        self,
        estimator: Any,
        space: Mapping[str, Any],
        *,
        cv: Any,
        scoring: Any,
        n_trials: int = 20,
        timeout: float | None = None,
        n_jobs: int | None = 1,
        seed: int = 0,
    ) -> None:
        self.estimator = estimator
        self.space = dict(space)
        self.cv = cv
        self.scoring = scoring
        self.n_trials = n_trials
        self.timeout = timeout
        self.n_jobs = n_jobs
        self.seed = seed

    def fit(self, x: Any, y: Any) -> HyperoptSearchCV:
        import numpy as np
        from hyperopt import STATUS_OK, Trials, fmin, tpe
        from sklearn.base import clone
        from sklearn.model_selection import cross_val_score

        trials: list[dict[str, Any]] = []

        def objective(params: dict[str, Any]) -> dict[str, Any]:
            params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
            model = clone(self.estimator).set_params(**params)
            scores = cross_val_score(
                model, x, y, cv=self.cv, scoring=self.scoring, n_jobs=self.n_jobs, error_score="raise"
            )
            trials.append({"params": params, "scores": scores})
            return {"loss": -float(scores.mean()), "status": STATUS_OK}

        fmin(
            objective,
            hyperopt_space(self.space),
            algo=tpe.suggest,
            max_evals=self.n_trials,
            trials=Trials(),
            rstate=np.random.default_rng(self.seed),
            timeout=self.timeout,
            show_progressbar=False,
        )
        means = np.array([t["scores"].mean() for t in trials])
        self.best_index_ = int(np.argmax(means))
        self.best_params_ = dict(trials[self.best_index_]["params"])
        self.best_score_ = float(means[self.best_index_])
        self.cv_results_: dict[str, Any] = {
            "params": [t["params"] for t in trials],
            "mean_test_score": means,
            "std_test_score": np.array([t["scores"].std() for t in trials]),
        }
        for i in range(len(trials[0]["scores"])):
            self.cv_results_[f"split{i}_test_score"] = np.array([t["scores"][i] for t in trials])
        self.best_estimator_ = clone(self.estimator).set_params(**self.best_params_).fit(x, y)
        return self

    def predict(self, x: Any) -> Any:
        return self.best_estimator_.predict(x)


def genetic_search(
    estimator: Any,
    space: Mapping[str, Any],
    *,
    cv: Any,
    scoring: Any,
    population_size: int = 10,
    generations: int = 5,
    n_jobs: int | None = 1,
    seed: int = 0,
) -> Any:
    """
    sklearn-genetic-opt's ``GASearchCV`` over ``space``. It draws from numpy's and Python's global
    random state (it takes no seed), so both are seeded here: reruns search the same way.
    """
    import random

    import numpy as np
    from sklearn_genetic import GASearchCV

    random.seed(seed)
    np.random.seed(seed)
    return GASearchCV(
        estimator,
        cv=cv,
        param_grid=genetic_space(space),
        scoring=scoring,
        population_size=population_size,
        generations=generations,
        n_jobs=n_jobs,
        refit=True,
        verbose=False,
        error_score="raise",
    )
