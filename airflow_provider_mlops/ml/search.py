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

import contextlib
import inspect
import logging
import math
import time
import warnings
from collections.abc import Iterator, Mapping
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
        progress: SearchProgress | None = None,
    ) -> None:
        self.estimator = estimator
        self.space = dict(space)
        self.cv = cv
        self.scoring = scoring
        self.n_trials = n_trials
        self.timeout = timeout
        self.n_jobs = n_jobs
        self.seed = seed
        self.progress = progress

    def fit(self, x: Any, y: Any, **fit_params: Any) -> HyperoptSearchCV:
        """Search, then refit the best configuration; ``fit_params`` (``model__sample_weight``) reach every fit."""
        import numpy as np
        from hyperopt import STATUS_OK, Trials, fmin, tpe
        from sklearn.base import clone
        from sklearn.model_selection import cross_val_score

        trials: list[dict[str, Any]] = []
        progress = self.progress or SearchProgress(
            "hyperopt",
            deadline=None if self.timeout is None else time.monotonic() + float(self.timeout),
            budget=self.timeout,
        )

        def objective(params: dict[str, Any]) -> dict[str, Any]:
            params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
            model = clone(self.estimator).set_params(**params)
            scores = cross_val_score(
                model,
                x,
                y,
                cv=self.cv,
                scoring=self.scoring,
                n_jobs=self.n_jobs,
                error_score="raise",
                params=fit_params or None,
            )
            trials.append({"params": params, "scores": scores})
            progress.record(params, float(scores.mean()), total=self.n_trials)
            return {"loss": -float(scores.mean()), "status": STATUS_OK}

        def out_of_time(_trials: Any, *args: Any) -> tuple[bool, Any]:
            if progress.over_budget():  # checked after each trial: the first one always runs
                progress.stop(self.n_trials)
                return True, args
            return False, args

        fmin(
            objective,
            hyperopt_space(self.space),
            algo=tpe.suggest,
            max_evals=self.n_trials,
            trials=Trials(),
            rstate=np.random.default_rng(self.seed),
            early_stop_fn=out_of_time,
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
        self.best_estimator_ = clone(self.estimator).set_params(**self.best_params_).fit(x, y, **fit_params)
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
    progress: SearchProgress | None = None,
) -> Any:
    """
    sklearn-genetic-opt's ``GASearchCV`` over ``space``. It draws from numpy's and Python's global
    random state (it takes no seed), so both are seeded here: reruns search the same way. With
    ``progress``: a line per evaluated individual; once the deadline passes, the individuals left in
    the generation are not fitted (they get the worst fitness) and the search stops when it closes.
    """
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    search = _genetic_class()(
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
    search.progress = progress
    return search


_GENETIC: list[type] = []


def _genetic_class() -> type:
    """GASearchCV with progress lines and the deadline (defined on first use: sklearn-genetic is optional)."""
    if _GENETIC:
        return _GENETIC[0]
    from sklearn_genetic import GASearchCV
    from sklearn_genetic.callbacks.base import BaseCallback

    class _Deadline(BaseCallback):
        def __init__(self, progress: SearchProgress) -> None:
            self.progress = progress

        def on_step(self, record: Any = None, logbook: Any = None, estimator: Any = None) -> bool:
            if self.progress.over_budget():
                self.progress.stop()
                return True
            return False

    class GeneticSearchCV(GASearchCV):  # type: ignore[misc]
        progress: SearchProgress | None = None
        _fitness_size = 1

        def evaluate(self, individual: Any) -> Any:
            progress = self.progress
            if progress is not None and progress.evaluated and progress.over_budget():
                # Past the deadline: DEAP evaluates a generation as a whole, so the rest of it is not
                # fitted; the worst possible fitness keeps these individuals out of the hall of fame,
                # and the deadline callback ends the search when the generation closes.
                return [-self.criteria_sign * math.inf, *([0.0] * (self._fitness_size - 1))]
            fitness = super().evaluate(individual)
            self._fitness_size = len(fitness)
            if progress is not None:
                params = {key: individual[n] for n, key in enumerate(self.space.parameters)}
                self.progress.record(params, float(fitness[0]))
            return fitness

        def fit(self, X: Any, y: Any = None, callbacks: Any = None) -> Any:
            extra = [_Deadline(self.progress)] if self.progress is not None else []
            return super().fit(X, y, callbacks=[*(callbacks or []), *extra] or None)

    _GENETIC.append(GeneticSearchCV)
    return GeneticSearchCV


# --------------------------------------------------------------------------------------------------
# progress lines, collapsed warnings and the time budget of every search method
# --------------------------------------------------------------------------------------------------
log = logging.getLogger(__name__)

# Methods that stop at tuning.time_budget (and keep the best configuration so far).
BUDGETED_METHODS = ("grid", "random", "halving_grid", "halving_random", "optuna", "hyperopt", "genetic")


class SearchProgress:
    """
    One line per evaluated configuration (family, parameters, mean CV score, best so far, elapsed)
    and the time budget: ``deadline`` (``time.monotonic()`` seconds) is shared by every candidate of
    one training, so ``tuning.time_budget`` bounds the whole tuning. At least one configuration of
    each search is evaluated (a search needs one to have a best).
    """

    def __init__(self, family: str, *, deadline: float | None = None, budget: float | None = None) -> None:
        self.family = family
        self.deadline = deadline
        self.budget = budget
        self.started = time.monotonic()
        self.evaluated = 0
        self.best: float | None = None
        self.stopped = False

    def over_budget(self) -> bool:
        return self.deadline is not None and self.evaluated > 0 and time.monotonic() >= self.deadline

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def record(
        self, params: Mapping[str, Any], score: float, *, total: int | None = None, note: str = ""
    ) -> None:
        self.evaluated += 1
        if math.isfinite(score) and (self.best is None or score > self.best):
            self.best = score
        shown = {
            k.removeprefix("model__"): (v.item() if hasattr(v, "item") else v) for k, v in params.items()
        }
        log.info(
            "Tuning %s: configuration %s%s %s%s: score %.4f (best %s), %.1f s elapsed",
            self.family,
            self.evaluated,
            f"/{total}" if total else "",
            shown,
            f" {note}" if note else "",
            score,
            "n/a" if self.best is None else f"{self.best:.4f}",
            time.monotonic() - self.started,
        )

    def stop(self, planned: int | None = None) -> None:
        """The time budget ran out: say so (once) and what was kept."""
        if self.stopped:
            return
        self.stopped = True
        log.warning(
            "Tuning %s: time_budget of %s s reached after %s configuration(s)%s and %.1f s: keeping the "
            "best so far (score %s)",
            self.family,
            self.budget,
            self.evaluated,
            f" of {planned}" if planned else "",
            time.monotonic() - self.started,
            "n/a" if self.best is None else f"{self.best:.4f}",
        )


class _OutOfTime(Exception):
    pass


_BUDGETED_CLASSES: dict[type, type] = {}


def budgeted(search_class: type) -> type:
    """
    A subclass of a scikit-learn search (grid, random, successive halving) that evaluates its
    configurations one at a time (folds still in parallel with ``n_jobs``), logs a progress line
    for each (:class:`SearchProgress`, set as ``search.progress``) and stops at the deadline; the
    best of what was evaluated is refitted as usual (for halving: the best of the last iteration
    reached).
    """
    if search_class in _BUDGETED_CLASSES:
        return _BUDGETED_CLASSES[search_class]

    # scikit-learn >= 1.7 passes callback_ctx only to a _run_search whose signature names it; 1.6's
    # own _run_search takes none, so it is passed on only where the parent accepts it.
    parent_takes_ctx = "callback_ctx" in inspect.signature(search_class._run_search).parameters

    def _run_search(self: Any, evaluate_candidates: Any, *, callback_ctx: Any = None) -> None:
        progress: SearchProgress = getattr(self, "progress", None) or SearchProgress(type(self).__name__)

        def one_at_a_time(candidate_params: Any, cv: Any = None, more_results: Any = None, **_: Any) -> Any:
            candidate_params = list(candidate_params)
            results = None
            for index, params in enumerate(candidate_params):
                if progress.over_budget():
                    raise _OutOfTime
                extra = {k: [v[index]] for k, v in more_results.items()} if more_results else None
                # no per-fit callback context: it is built for the whole batch of candidates
                results = evaluate_candidates([params], cv, extra)
                note = f"(iteration {extra['iter'][0]}, {extra['n_resources'][0]} rows)" if extra else ""
                progress.record(
                    params, float(results["mean_test_score"][-1]), total=len(candidate_params), note=note
                )
            return results

        try:
            if parent_takes_ctx:
                search_class._run_search(self, one_at_a_time, callback_ctx=callback_ctx)
            else:
                search_class._run_search(self, one_at_a_time)
        except _OutOfTime:
            progress.stop()

    subclass = type(search_class.__name__, (search_class,), {"_run_search": _run_search})
    subclass.__module__ = __name__
    _BUDGETED_CLASSES[search_class] = subclass
    return subclass


@contextlib.contextmanager
def collapsed_warnings(where: str) -> Iterator[None]:
    """
    Record the warnings raised inside the block (scikit-learn repeats the same ConvergenceWarning or
    UndefinedMetricWarning for every fold and configuration) and log each distinct one once, with
    how many times it was raised. Warnings raised in joblib worker processes (``n_jobs`` > 1) are
    printed by those processes and not collapsed.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            counts: dict[tuple[str, str], int] = {}
            for item in caught:
                key = (item.category.__name__, str(item.message).strip())
                counts[key] = counts.get(key, 0) + 1
            for (category, message), count in counts.items():
                log.warning(
                    "%s: %s%s",
                    where,
                    f"{category}: {message}",
                    f" (raised {count} times)" if count > 1 else "",
                )


# ------------------------------------------------------------------------------------------------
# building a search (TrainModelOperator's tuning spec), shared by training and the candidates
# ------------------------------------------------------------------------------------------------
TUNING_METHODS = (
    "none",
    "grid",
    "random",
    "halving_grid",
    "halving_random",
    "optuna",
    "hyperopt",
    "genetic",
    "keras_tuner",
)


class TrainingError(ValueError):
    """The training inputs are not usable (missing target, empty data, unknown estimator...)."""


def step_names(pipeline: Any) -> dict[str, str]:
    """
    Friendly aliases of the Pipeline's step names for ``param_grid`` keys: ``numeric__...`` and
    ``categorical__...`` for ``features__numeric__...`` / ``features__categorical__...``, and a
    selection method (``kbest``) or ``select_<i>`` for ``select_<i>_<method>`` when unambiguous.
    """
    aliases: dict[str, str] = {"numeric": "features__numeric", "categorical": "features__categorical"}
    methods: dict[str, list[str]] = {}
    for name, _ in pipeline.steps:
        if name.startswith("select_"):
            index, _, method = name.removeprefix("select_").partition("_")
            aliases[f"select_{index}"] = name
            methods.setdefault(method, []).append(name)
    for method, names in methods.items():
        if len(names) == 1:
            aliases[method] = names[0]
    return aliases


def _prefixed(grid: Mapping[str, Any], pipeline: Any = None) -> dict[str, Any]:
    """
    Let users write ``{"n_estimators": [...]}``: unprefixed names are the estimator's; a first
    segment that is an alias of :func:`step_names` is replaced by the step's full name.
    """
    aliases = step_names(pipeline) if pipeline is not None else {}
    steps = {name for name, _ in pipeline.steps} if pipeline is not None else set()
    out = {}
    for key, value in grid.items():
        if "__" not in key:
            out[f"model__{key}"] = value
            continue
        head, _, rest = key.partition("__")
        if head not in steps and head in aliases:
            key = f"{aliases[head]}__{rest}"
        out[key] = value
    return out


def _require_extra(method: str, *modules: str) -> None:
    """A clear error naming the extra to install when ``tuning.method``'s library is missing."""
    import importlib

    try:
        for module in modules:
            importlib.import_module(module)
    except ImportError:
        raise TrainingError(
            f"tuning.method={method!r} needs the {method} extra: pip install 'airflow-provider-mlops[{method}]'"
        ) from None


def time_budget(tuning: Mapping[str, Any] | None) -> float | None:
    """
    ``tuning.time_budget`` (seconds; ``timeout`` is its older name, still read), checked: a positive
    number, and a method that can stop at it (every search but ``keras_tuner``; ``none`` has no
    search to stop). None when not set.
    """

    tuning = dict(tuning or {})
    method = tuning.get("method", "none") or "none"
    given = {k: tuning[k] for k in ("time_budget", "timeout") if tuning.get(k) is not None}
    if not given:
        return None
    if len(given) == 2 and given["time_budget"] != given["timeout"]:
        raise TrainingError(
            f"tuning has time_budget={given['time_budget']!r} and timeout={given['timeout']!r}: "
            "give time_budget only (timeout is its older name)"
        )
    key, value = next(iter(given.items()))
    if method not in BUDGETED_METHODS:
        raise TrainingError(
            f"tuning.{key} cannot be honoured by tuning.method={method!r}: "
            + (
                "there is no search to stop (give a search method or leave the budget out)"
                if method == "none"
                else f"{method} cannot stop a search at a deadline; the methods that can: "
                f"{', '.join(BUDGETED_METHODS)} (limit {method} with max_trials / epochs instead)"
            )
        )
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not math.isfinite(seconds) or seconds <= 0:
        raise TrainingError(f"tuning.{key} must be a positive number of seconds, got {value!r}")
    return seconds


def build_search(
    pipeline: Any,
    tuning: Mapping[str, Any] | None,
    *,
    task: str,
    seed: int,
    cv: Any = None,
    progress: Any = None,
) -> Any:
    """
    Wrap the pipeline in the requested search (or return it unchanged). ``cv``: the folds to use
    (a splitter or a list of (train, test) row positions) instead of ``tuning.cv`` seeded folds.
    ``progress``: a :class:`~airflow_provider_mlops.ml.search.SearchProgress` (progress lines and
    the deadline of ``tuning.time_budget``); one is made from ``tuning`` when not given.
    """
    from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV, StratifiedKFold

    tuning = dict(tuning or {})
    method = tuning.get("method", "none") or "none"
    if method not in TUNING_METHODS:
        raise TrainingError(f"tuning.method must be one of {TUNING_METHODS}, got {method!r}")
    budget = time_budget(tuning)
    if method == "none":
        return pipeline
    if progress is None:
        family = type(pipeline.steps[-1][1]).__name__ if hasattr(pipeline, "steps") else "model"
        progress = SearchProgress(
            family, deadline=None if budget is None else time.monotonic() + budget, budget=budget
        )
    if cv is None:
        cv = (StratifiedKFold if task == "classification" else KFold)(
            n_splits=int(tuning.get("cv", 5)), shuffle=True, random_state=seed
        )
    scoring = tuning.get("scoring") or (
        "f1_weighted" if task == "classification" else "neg_root_mean_squared_error"
    )
    n_jobs = tuning.get("n_jobs", 1)
    if method == "keras_tuner":  # the space is the build_model's hp calls, not param_grid
        try:
            from airflow_provider_mlops.ml.keras_tuning import import_keras, keras_search

            import_keras()
        except ImportError as err:
            raise TrainingError(str(err)) from None
        try:
            return keras_search(pipeline, tuning, cv=cv, task=task, seed=seed)
        except ValueError as err:
            raise TrainingError(str(err)) from None
    space = _prefixed(tuning.get("param_grid") or tuning.get("param_distributions") or {}, pipeline)
    if not space:
        raise TrainingError(f"tuning.method={method!r} needs param_grid (or param_distributions)")
    common = {"cv": cv, "scoring": scoring, "n_jobs": n_jobs, "refit": True, "error_score": "raise"}
    search: Any
    if method == "grid":
        search = budgeted(GridSearchCV)(pipeline, space, **common)
    elif method == "random":
        search = budgeted(RandomizedSearchCV)(
            pipeline, _distributions(space), n_iter=int(tuning.get("n_iter", 20)), random_state=seed, **common
        )
    elif method in ("halving_grid", "halving_random"):
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingGridSearchCV, HalvingRandomSearchCV

        halving = {"factor": tuning.get("factor", 3), "random_state": seed, **common}
        halving.pop("refit")
        if method == "halving_grid":
            search = budgeted(HalvingGridSearchCV)(pipeline, space, **halving)
        else:
            # A bounded number of candidates: "exhaust" on continuous distributions can mean hundreds.
            candidates = tuning.get("n_candidates", tuning.get("n_iter", 20))
            search = budgeted(HalvingRandomSearchCV)(
                pipeline, _distributions(space), n_candidates=candidates, **halving
            )
    if method in ("grid", "random", "halving_grid", "halving_random"):
        search.progress = progress
        return search
    if method == "hyperopt":
        _require_extra("hyperopt", "hyperopt")

        return HyperoptSearchCV(
            pipeline,
            space,
            cv=cv,
            scoring=scoring,
            n_trials=int(tuning.get("n_trials", 20)),
            n_jobs=n_jobs,
            seed=seed,
            progress=progress,
        )
    if method == "genetic":
        _require_extra("genetic", "sklearn_genetic")

        return genetic_search(
            pipeline,
            space,
            cv=cv,
            scoring=scoring,
            population_size=int(tuning.get("population_size", 10)),
            generations=int(tuning.get("generations", 5)),
            n_jobs=n_jobs,
            seed=seed,
            progress=progress,
        )
    _require_extra("optuna", "optuna", "optuna_integration")
    import optuna
    from optuna_integration import OptunaSearchCV

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_trials = int(tuning.get("n_trials", 20))

    def after_trial(study: Any, trial: Any) -> None:
        # A line per trial, and the deadline checked after each one (the first always runs).
        if trial.value is not None:
            progress.record(trial.params, float(trial.value), total=n_trials)
        if progress.over_budget():
            progress.stop(n_trials)
            study.stop()

    return OptunaSearchCV(
        pipeline,
        _optuna_space(space),
        cv=cv,
        scoring=scoring,
        n_jobs=n_jobs,
        n_trials=n_trials,
        random_state=seed,
        refit=True,
        callbacks=[after_trial],
    )


def _distributions(space: Mapping[str, Any]) -> dict[str, Any]:
    """Lists stay lists; ``{"low": a, "high": b, "log": bool}`` becomes a scipy distribution."""
    from scipy.stats import loguniform, randint, uniform

    out: dict[str, Any] = {}
    for key, value in space.items():
        if isinstance(value, Mapping):
            low, high = value["low"], value["high"]
            if isinstance(low, int) and isinstance(high, int) and not value.get("log"):
                out[key] = randint(low, high + 1)
            elif value.get("log"):
                out[key] = loguniform(low, high)
            else:
                out[key] = uniform(low, high - low)
        else:
            out[key] = list(value)
    return out


def _optuna_space(space: Mapping[str, Any]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for key, value in space.items():
        if isinstance(value, Mapping):
            low, high, log = value["low"], value["high"], bool(value.get("log"))
            if isinstance(low, int) and isinstance(high, int):
                out[key] = IntDistribution(low, high, log=log)
            else:
                out[key] = FloatDistribution(float(low), float(high), log=log)
        else:
            out[key] = CategoricalDistribution(list(value))
    return out


NO_SAMPLE_WEIGHT = {
    "genetic": "sklearn-genetic-opt's GASearchCV.fit takes no fit parameters",
    "keras_tuner": "the Keras tuner fits a network, not the Pipeline's scikit-learn estimator",
}


def check_sample_weight(tuning: Mapping[str, Any] | None, model: Any, name: str) -> None:
    """Refuse, by name, a tuning method or an estimator that cannot take ``sample_weight``."""
    from sklearn.utils.validation import has_fit_parameter

    method = (tuning or {}).get("method") or "none"
    if method in NO_SAMPLE_WEIGHT:
        raise TrainingError(
            f"tuning.method {method!r} cannot take sample weights ({NO_SAMPLE_WEIGHT[method]}): "
            "remove window.half_life or use grid, random, halving_grid, halving_random, optuna or hyperopt"
        )
    if not has_fit_parameter(model, "sample_weight"):
        raise TrainingError(
            f"estimator {name!r} ({type(model).__name__}) takes no sample_weight in fit(): remove "
            "window.half_life or choose an estimator that does (e.g. random_forest, logistic_regression, "
            "hist_gradient_boosting)"
        )


def plain(value: Any) -> Any:
    """numpy scalars -> Python values (for JSON, MLflow params and XCom)."""
    return value.item() if hasattr(value, "item") and callable(value.item) else value
