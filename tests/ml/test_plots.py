"""Permutation importance: what it ranks, and what a wide table costs (issue 28's 1,000 features)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.inspection import permutation_importance as sk_permutation_importance
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from airflow_provider_mlops.ml.plots import permutation_importance


class Counting:
    """A fitted model that counts its predict calls (scikit-learn sees the wrapped estimator's tags)."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, 0

    def __sklearn_tags__(self):
        return self.model.__sklearn_tags__()

    def fit(self, *args, **kwargs):  # scikit-learn's own function checks that it has one
        raise AssertionError("permutation importance must not refit the model")

    def score(self, x, y):
        self.calls += 1
        return self.model.score(x, y)

    def predict(self, x):
        self.calls += 1
        return self.model.predict(x)


def _frame(rows: int, columns: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(rows, columns)), columns=[f"c{i:04d}" for i in range(columns)])
    y = pd.Series((x["c0000"] + 0.3 * rng.normal(size=rows) > 0).astype(int))
    return x, y


def test_a_thousand_columns_cost_a_few_predict_calls_and_the_informative_one_ranks_first() -> None:
    x, y = _frame(60, 1000)
    model = Counting(make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).fit(x, y))
    importance = permutation_importance(model, x.iloc[:12], y.iloc[:12], seed=1)
    assert len(importance) == 1000
    assert max(importance, key=importance.get) == "c0000"
    # 3,000 shuffles of 12 rows x 1,000 columns in blocks of 4M values: 10 calls, plus the baseline
    assert model.calls == 1 + 10


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_the_same_scores_as_scikit_learn_on_average(kind: str) -> None:
    """Same score (accuracy / R2) and definition: over many repeats both converge to the same means."""
    x, y = _frame(400, 4, seed=3)
    if kind == "regressor":
        y = x["c0000"] * 2 + x["c0001"] + np.random.default_rng(4).normal(size=len(x)) * 0.1
        model = Ridge().fit(x, y)
    else:
        model = LogisticRegression().fit(x, y)
    ours = permutation_importance(model, x, y, seed=0, n_repeats=40)
    theirs = sk_permutation_importance(model, x, y, n_repeats=40, random_state=0).importances_mean
    assert list(ours) == list(x.columns)
    assert np.allclose(list(ours.values()), theirs, atol=0.03), (ours, theirs)
