"""
scikit-learn transformers the specs need and scikit-learn lacks: outlier clipping with bounds
learned at fit, a correlation filter, and ``SelectFromModel`` with its support mask kept from the
fit. They follow the estimator API (``get_params`` / ``set_params``, ``get_feature_names_out``,
pandas output) and persist with skops.

This is the one provider module that imports numpy and scikit-learn at the top (a class cannot
subclass a lazily imported base): it is only ever imported from inside a task.
"""

# lazy-imports: runtime-only (subclasses scikit-learn; imported only inside tasks)
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_selection import SelectFromModel, SelectorMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class OutlierClipper(TransformerMixin, BaseEstimator):
    """
    Clip each column to bounds learned on the training data.

    :param method: ``iqr`` (``[Q1 - factor*IQR, Q3 + factor*IQR]``) or ``zscore``
        (``mean +/- factor*std``).
    :param factor: the width of the bounds.
    """

    def __init__(self, method: str = "iqr", factor: float = 1.5) -> None:
        self.method = method
        self.factor = factor

    def fit(self, X: Any, y: Any = None) -> OutlierClipper:
        data = validate_data(self, X, ensure_all_finite="allow-nan", dtype="numeric")
        if self.method == "iqr":
            q1, q3 = np.nanpercentile(data, [25, 75], axis=0)
            spread = q3 - q1
            self.lower_, self.upper_ = q1 - self.factor * spread, q3 + self.factor * spread
        elif self.method == "zscore":
            mean, std = np.nanmean(data, axis=0), np.nanstd(data, axis=0)
            self.lower_, self.upper_ = mean - self.factor * std, mean + self.factor * std
        else:
            raise ValueError(f"method must be 'iqr' or 'zscore', got {self.method!r}")
        return self

    def transform(self, X: Any) -> Any:
        check_is_fitted(self, ("lower_", "upper_"))
        data = validate_data(self, X, ensure_all_finite="allow-nan", dtype="numeric", reset=False)
        return np.clip(data, self.lower_, self.upper_)

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        check_is_fitted(self, ("lower_", "upper_"))
        if input_features is not None:
            return np.asarray(input_features, dtype=object)
        return np.asarray(
            getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)]), dtype=object
        )


class CorrelationFilter(SelectorMixin, BaseEstimator):
    """
    Drop one feature of each pair whose absolute Pearson correlation exceeds ``threshold``.

    Of a correlated pair the later column is dropped, so the order of the input decides; constant
    columns (no correlation defined) are kept.
    """

    def __init__(self, threshold: float = 0.9) -> None:
        self.threshold = threshold

    def fit(self, X: Any, y: Any = None) -> CorrelationFilter:
        data = validate_data(self, X, dtype="numeric")
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.abs(np.corrcoef(data, rowvar=False))
        corr = np.nan_to_num(np.atleast_2d(corr), nan=0.0)
        keep = np.ones(data.shape[1], dtype=bool)
        for i in range(data.shape[1]):
            if not keep[i]:
                continue
            later = np.arange(i + 1, data.shape[1])
            keep[later[corr[i, later] > self.threshold]] = False
        self.support_ = keep
        return self

    def _get_support_mask(self) -> Any:
        check_is_fitted(self, "support_")
        return self.support_


class StableSelectFromModel(SelectFromModel):
    """
    scikit-learn's ``SelectFromModel`` with its support mask computed once, when it is fitted.

    ``SelectFromModel`` derives the mask from the fitted estimator's importances at every
    ``transform``: for a random forest that walks every tree each call (~50 ms for 100 fully grown
    trees: at every CV score of a search, and at every prediction of a served Pipeline). The mask
    is a function of the fitted estimator and of ``threshold`` / ``max_features`` /
    ``importance_getter`` / ``norm_order``; it is kept with those settings and computed again if
    any of them changes after the fit (``set_params``), so the result is always what
    ``SelectFromModel`` would return.
    """

    def _mask_key(self) -> tuple[str, ...]:
        return tuple(
            repr(v)
            for v in (self.threshold, self.max_features, self.importance_getter, self.norm_order, self.prefit)
        )

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> StableSelectFromModel:
        super().fit(X, y, **fit_params)
        self._remember_mask()
        return self

    def partial_fit(self, X: Any, y: Any = None, **partial_fit_params: Any) -> StableSelectFromModel:
        super().partial_fit(X, y, **partial_fit_params)
        self._remember_mask()
        return self

    def _remember_mask(self) -> None:
        self.support_mask_ = super()._get_support_mask()
        self.support_mask_key_ = self._mask_key()

    def _get_support_mask(self) -> Any:
        mask = getattr(self, "support_mask_", None)
        if mask is not None and getattr(self, "support_mask_key_", None) == self._mask_key():
            return mask
        return super()._get_support_mask()
