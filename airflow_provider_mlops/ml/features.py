"""
Feature engineering as a declarative spec, built into a scikit-learn ``ColumnTransformer``.

Everything is fitted on the training split only and travels inside the model's Pipeline, so serving
applies exactly what training learned. A spec (dict/YAML friendly)::

    {
        "numeric": {
            "columns": "auto",                      # or a list; "auto" = numeric dtypes
            "impute": "median",                     # mean | median | most_frequent | constant | knn | none
            "fill_value": 0,                        # for impute: constant
            "outliers": {"method": "iqr", "factor": 1.5},   # or zscore (factor = z); learned at fit
            "scale": "standard",                    # standard | minmax | robust | none
        },
        "categorical": {
            "columns": "auto",                      # or a list; "auto" = the other columns
            "impute": "most_frequent",              # most_frequent | constant | none
            "encode": "onehot",                     # onehot (unknown categories ignored) | ordinal | target
            "max_categories": 30,                   # onehot: rarer categories grouped
        },
        "drop": ["customer_id"],
    }
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd

IMPUTERS = ("mean", "median", "most_frequent", "constant", "knn", "none")
SCALERS = ("standard", "minmax", "robust", "none")
ENCODERS = ("onehot", "ordinal", "target")
OUTLIER_METHODS = ("iqr", "zscore")

DEFAULT_SPEC: dict[str, Any] = {
    "numeric": {"columns": "auto", "impute": "median", "outliers": None, "scale": "standard"},
    "categorical": {"columns": "auto", "impute": "most_frequent", "encode": "onehot", "max_categories": 30},
    "drop": [],
}


class FeatureSpecError(ValueError):
    """The feature spec is malformed or names columns the data does not have."""


def _outlier_clipper_class() -> type:
    """Defined lazily so that importing this module does not import scikit-learn."""
    global _CLIPPER
    if _CLIPPER is None:
        from airflow_provider_mlops.ml.transformers import OutlierClipper

        _CLIPPER = OutlierClipper
    return _CLIPPER


_CLIPPER: type | None = None


def resolve_columns(
    frame: pd.DataFrame, spec: Mapping[str, Any], target: str | None
) -> tuple[list[str], list[str]]:
    """The numeric and categorical feature columns the spec selects in ``frame``."""
    import pandas as pd

    drop = set(spec.get("drop") or []) | ({target} if target else set())
    missing = [c for c in drop if c and c not in frame.columns and c != target]
    if missing:
        raise FeatureSpecError(f"drop names column(s) {missing} that the data does not have")
    available = [c for c in frame.columns if c not in drop]
    numeric_spec = dict(spec.get("numeric") or {})
    categorical_spec = dict(spec.get("categorical") or {})
    num_cols = numeric_spec.get("columns", "auto")
    cat_cols = categorical_spec.get("columns", "auto")
    if num_cols == "auto":
        num_cols = [
            c
            for c in available
            if pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])
            and (cat_cols == "auto" or c not in cat_cols)
        ]
    if cat_cols == "auto":
        cat_cols = [c for c in available if c not in num_cols]
    for kind, columns in (("numeric", num_cols), ("categorical", cat_cols)):
        unknown = [c for c in columns if c not in frame.columns]
        if unknown:
            raise FeatureSpecError(
                f"{kind} column(s) {unknown} are not in the data (columns: {list(frame.columns)})"
            )
    overlap = set(num_cols) & set(cat_cols)
    if overlap:
        raise FeatureSpecError(f"column(s) {sorted(overlap)} are listed as both numeric and categorical")
    return list(num_cols), list(cat_cols)


def _imputer(kind: str, method: str | None, fill_value: Any) -> Any:
    from sklearn.impute import KNNImputer, SimpleImputer

    method = method or "none"
    if method not in IMPUTERS:
        raise FeatureSpecError(f"{kind}.impute must be one of {IMPUTERS}, got {method!r}")
    if method == "none":
        return None
    if method == "knn":
        if kind != "numeric":
            raise FeatureSpecError("impute: knn applies to numeric columns only")
        return KNNImputer(n_neighbors=5)
    if method in ("mean", "median") and kind != "numeric":
        raise FeatureSpecError(f"categorical.impute cannot be {method!r}")
    if method == "constant":
        return SimpleImputer(
            strategy="constant",
            fill_value=fill_value if fill_value is not None else (0 if kind == "numeric" else "missing"),
        )
    return SimpleImputer(strategy=method)


def build_preprocessor(
    frame: pd.DataFrame, spec: Mapping[str, Any] | None, *, target: str | None, task: str = "classification"
) -> tuple[Any, list[str], list[str]]:
    """
    The ``ColumnTransformer`` for ``spec`` (defaults filled in) and the numeric / categorical
    columns it uses. ``frame`` is only inspected for column names and dtypes.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        MinMaxScaler,
        OneHotEncoder,
        OrdinalEncoder,
        RobustScaler,
        StandardScaler,
        TargetEncoder,
    )

    merged: dict[str, Any] = {
        "numeric": {**DEFAULT_SPEC["numeric"], **dict((spec or {}).get("numeric") or {})},
        "categorical": {**DEFAULT_SPEC["categorical"], **dict((spec or {}).get("categorical") or {})},
        "drop": list((spec or {}).get("drop") or []),
    }
    unknown = set(spec or {}) - {"numeric", "categorical", "drop"}
    if unknown:
        raise FeatureSpecError(
            f"Unknown feature spec key(s) {sorted(unknown)}; expected numeric, categorical, drop"
        )
    numeric, categorical = resolve_columns(frame, merged, target)
    transformers: list[tuple[str, Any, list[str]]] = []

    num = merged["numeric"]
    steps: list[tuple[str, Any]] = []
    if (imputer := _imputer("numeric", num.get("impute"), num.get("fill_value"))) is not None:
        steps.append(("impute", imputer))
    if outliers := num.get("outliers"):
        method = outliers.get("method", "iqr")
        if method not in OUTLIER_METHODS:
            raise FeatureSpecError(
                f"numeric.outliers.method must be one of {OUTLIER_METHODS}, got {method!r}"
            )
        factor = float(outliers.get("factor", 1.5 if method == "iqr" else 3.0))
        steps.append(("clip_outliers", _outlier_clipper_class()(method=method, factor=factor)))
    scale = num.get("scale") or "none"
    if scale not in SCALERS:
        raise FeatureSpecError(f"numeric.scale must be one of {SCALERS}, got {scale!r}")
    if scale != "none":
        steps.append(
            ("scale", {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}[scale]())
        )
    if numeric:
        transformers.append(("numeric", Pipeline(steps) if steps else "passthrough", numeric))

    cat = merged["categorical"]
    steps = []
    if (imputer := _imputer("categorical", cat.get("impute"), cat.get("fill_value"))) is not None:
        steps.append(("impute", imputer))
    encode = cat.get("encode") or "onehot"
    if encode not in ENCODERS:
        raise FeatureSpecError(f"categorical.encode must be one of {ENCODERS}, got {encode!r}")
    if encode == "onehot":
        encoder: Any = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            max_categories=cat.get("max_categories"),
            sparse_output=False,
        )
    elif encode == "ordinal":
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
        )
    else:
        encoder = TargetEncoder(target_type="binary" if task == "classification" else "continuous")
    steps.append(("encode", encoder))
    if categorical:
        transformers.append(("categorical", Pipeline(steps), categorical))
    if not transformers:
        raise FeatureSpecError("The feature spec selects no column")
    preprocessor = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
    preprocessor.set_output(transform="pandas")
    return preprocessor, numeric, categorical


def model_inputs(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """What a trained Pipeline predicts from: every column but ``target``, text as object dtype."""
    import pandas as pd

    features = frame.drop(columns=[target])
    text = [
        c
        for c in features.columns
        if not pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c])
    ]
    return categorical_as_object(features, text)


def categorical_as_object(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Make categorical columns plain object dtype with None for missing (what the encoders expect)."""
    import numpy as np

    out = frame.copy()
    for column in columns:
        values = out[column].astype(object)
        out[column] = values.where(values.notna(), np.nan)
    return out
