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
        "datetime": {
            "columns": "auto",                      # or a list; "auto" = date/time columns but time_column
            "features": ["month", "day_of_week"],   # calendar parts; [] (default): the columns are dropped
        },
        "derive": {                                 # new columns from expressions over the raw columns
            "charges_per_month": "total_charges / tenure",
        },
        "drop": ["customer_id"],
    }

Date, time and timestamp columns (any Arrow / pandas temporal type, and object columns holding
``datetime.date`` / ``datetime.time`` values) are never given raw to an encoder or a scaler: they
become the calendar parts the ``datetime`` section asks for (``<column>_<part>``, numbers), or they
are left out with a log line naming them. ``time_column`` (the column a time split orders by) is
not a feature unless it is listed (in ``datetime.columns`` for a date, or in ``numeric.columns`` /
``categorical.columns``).

Decimal columns (PostgreSQL NUMERIC) are numeric features, given to the model as float64;
list / struct / map and binary columns are left out with a log line (refused when listed). Infinite values in
a numeric feature, and features missing in every row when nothing else is left, are refused before
fitting, naming the columns (:func:`check_feature_values`).

``derive`` expressions are TransformOperator's: DuckDB SQL expressions over the raw columns
(docs/operators/transform.rst), except that a zero divisor gives a missing value instead of an
error. A model saved before the move to SQL (0.x, expression language ``arrow``) is refused when it
loads, with a message to re-train it. Derived and calendar columns
are computed by the first step of the model's Pipeline
(:class:`~airflow_provider_mlops.ml.transformers.DerivedFeatures`), so the model's inputs are the
raw columns: training, batch prediction and the model server compute them identically. Derived
columns are then features like any other (``numeric`` / ``categorical`` "auto" picks them up).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

log = logging.getLogger(__name__)

IMPUTERS = ("mean", "median", "most_frequent", "constant", "knn", "none")
SCALERS = ("standard", "minmax", "robust", "none")
ENCODERS = ("onehot", "ordinal", "target")
OUTLIER_METHODS = ("iqr", "zscore")

DEFAULT_SPEC: dict[str, Any] = {
    "numeric": {"columns": "auto", "impute": "median", "outliers": None, "scale": "standard"},
    "categorical": {"columns": "auto", "impute": "most_frequent", "encode": "onehot", "max_categories": 30},
    "datetime": {"columns": "auto", "features": []},
    "derive": {},
    "drop": [],
}
SPEC_KEYS = ("numeric", "categorical", "datetime", "derive", "drop")


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


def temporal_columns(frame: pd.DataFrame) -> dict[str, str]:
    """
    The date / time / timestamp / duration columns of ``frame`` and their kind: pandas datetime,
    timedelta and period dtypes, Arrow-backed temporal dtypes, and object columns holding
    ``datetime.date`` / ``datetime.time`` / ``datetime.timedelta`` values (how pandas reads Arrow
    ``date32`` and ``time64`` columns).
    """
    import datetime as dt

    import numpy as np
    import pandas as pd

    out: dict[str, str] = {}
    for column in frame.columns:
        dtype = frame[column].dtype
        arrow = getattr(dtype, "pyarrow_dtype", None)
        if arrow is not None:
            from airflow_provider_mlops.ml.transformers import temporal_family

            family = temporal_family(arrow)
            if family:
                out[column] = family
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            out[column] = "timestamp"
        elif pd.api.types.is_timedelta64_dtype(dtype):
            out[column] = "duration"
        elif isinstance(dtype, pd.PeriodDtype):
            out[column] = "period"
        elif pd.api.types.is_object_dtype(dtype):
            kinds = set(frame[column].dropna().map(type).unique())
            for kind, family in (
                (dt.datetime, "timestamp"),
                (np.datetime64, "timestamp"),
                (dt.date, "date"),
                (dt.time, "time"),
                (dt.timedelta, "duration"),
                (np.timedelta64, "duration"),
            ):
                if any(issubclass(k, kind) for k in kinds):
                    out[column] = family
                    break
    return out


def decimal_columns(frame: pd.DataFrame) -> list[str]:
    """
    The decimal columns of ``frame``: Arrow-backed decimal dtypes, and object columns whose values
    are all ``decimal.Decimal`` (how pandas reads Arrow ``decimal128``, e.g. PostgreSQL NUMERIC).
    They are numbers: numeric features, given to the model as float64 (:func:`categorical_as_object`).
    """
    import decimal

    import pandas as pd
    import pyarrow as pa

    out: list[str] = []
    for column in frame.columns:
        dtype = frame[column].dtype
        arrow = getattr(dtype, "pyarrow_dtype", None)
        if arrow is not None:
            if pa.types.is_decimal(arrow):
                out.append(column)
        elif pd.api.types.is_object_dtype(dtype):
            present = frame[column].dropna()
            if len(present) and all(isinstance(v, decimal.Decimal) for v in present):
                out.append(column)
    return out


def unencodable_columns(frame: pd.DataFrame) -> dict[str, str]:
    """
    The list / struct / map / binary columns of ``frame`` and their kind (``list``, ``struct``,
    ``map``, ``binary``): Arrow-backed nested or binary dtypes, and object columns holding arrays,
    lists, tuples, dicts or bytes (how pandas reads Arrow's). No encoder or imputer takes them (raw
    bytes have no JSON form a model server client could send back); derive a column from them instead.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    out: dict[str, str] = {}
    for column in frame.columns:
        dtype = frame[column].dtype
        arrow = getattr(dtype, "pyarrow_dtype", None)
        if arrow is not None:
            if pa.types.is_nested(arrow):
                out[column] = (
                    "map" if pa.types.is_map(arrow) else "struct" if pa.types.is_struct(arrow) else "list"
                )
            elif (
                pa.types.is_binary(arrow)
                or pa.types.is_large_binary(arrow)
                or pa.types.is_fixed_size_binary(arrow)
            ):
                out[column] = "binary"
        elif pd.api.types.is_object_dtype(dtype):
            present = frame[column].dropna()
            if not len(present):
                continue
            first = present.iloc[0]
            if isinstance(first, bytes | bytearray | memoryview):
                out[column] = "binary"
            elif isinstance(first, dict):
                out[column] = "struct"
            elif isinstance(first, list | tuple | np.ndarray):
                items = [v for v in first if v is not None]
                is_map = items and all(isinstance(v, tuple) and len(v) == 2 for v in items)
                out[column] = "map" if is_map else "list"
    return out


_UNENCODABLE_WAY_OUT = (
    "no encoder takes it; derive a feature from it (e.g. its length or one element, with "
    "TransformOperator's derive step) or drop it"
)


def _unencodable_reason(kind: str) -> str:
    return f"a {kind} column: {_UNENCODABLE_WAY_OUT}"


def _as_float(values: pd.Series, column: str) -> pd.Series:
    """A decimal column as float64 (NaN for missing), with a log line when a value is rounded."""
    import decimal

    import numpy as np
    import pandas as pd

    objects = values.to_numpy(dtype=object, na_value=None)
    floats = np.array([np.nan if v is None or v != v else float(v) for v in objects], dtype="float64")
    present = [(v, f) for v, f in zip(objects, floats, strict=True) if v is not None and v == v]
    rounded = sum(1 for v, f in present if decimal.Decimal(repr(float(f))) != v)
    if rounded:
        log.info(
            "Column %r: %s of %s decimal values have more digits than float64 holds (15-17 significant): "
            "read rounded to the nearest float64",
            column,
            rounded,
            len(present),
        )
    return pd.Series(floats, index=values.index, name=values.name)


def resolve_columns(
    frame: pd.DataFrame,
    spec: Mapping[str, Any],
    target: str | None,
    *,
    exclude: Mapping[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """
    The numeric and categorical feature columns the spec selects in ``frame``. ``exclude``: columns
    "auto" never picks (column -> why); date and time columns are refused in an explicit list.
    """
    import pandas as pd

    drop = set(spec.get("drop") or []) | ({target} if target else set())
    missing = [c for c in drop if c and c not in frame.columns and c != target]
    if missing:
        raise FeatureSpecError(f"drop names column(s) {missing} that the data does not have")
    exclude = dict(exclude or {})
    temporal = temporal_columns(frame)
    unencodable = unencodable_columns(frame)
    decimals = set(decimal_columns(frame))
    available = [
        c
        for c in frame.columns
        if c not in drop and c not in exclude and c not in temporal and c not in unencodable
    ]
    numeric_spec = dict(spec.get("numeric") or {})
    categorical_spec = dict(spec.get("categorical") or {})
    num_cols = numeric_spec.get("columns", "auto")
    cat_cols = categorical_spec.get("columns", "auto")
    if num_cols == "auto":
        num_cols = [
            c
            for c in available
            if (
                c in decimals
                or (pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]))
            )
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
        raw = [c for c in columns if c in temporal]
        if raw:
            raise FeatureSpecError(
                f"{kind}.columns lists {raw}, which hold {temporal[raw[0]]} values: a date or time is "
                f"never encoded or scaled raw. Derive calendar features instead, e.g. "
                f"features={{'datetime': {{'columns': {raw}, 'features': ['month', 'day_of_week']}}}}"
            )
        listed = [c for c in columns if c in unencodable]
        if listed:
            raise FeatureSpecError(
                f"{kind}.columns lists {listed}, which hold {unencodable[listed[0]]} values: "
                f"{_UNENCODABLE_WAY_OUT}"
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


@dataclass
class FeaturePlan:
    """
    What :func:`build_features` makes of a spec.

    :ivar derive: the :class:`~airflow_provider_mlops.ml.transformers.DerivedFeatures` step that
        precedes ``preprocessor`` in the Pipeline (None without ``derive`` / calendar features).
    :ivar preprocessor: the ``ColumnTransformer``.
    :ivar numeric: its numeric columns (raw or derived).
    :ivar categorical: its categorical columns (raw or derived).
    :ivar inputs: the raw columns the model needs, in the order it takes them.
    :ivar left_out: columns that are not features, and why (date/time columns, time_column).
    """

    derive: Any
    preprocessor: Any
    numeric: list[str]
    categorical: list[str]
    inputs: list[str]
    left_out: dict[str, str] = field(default_factory=dict)

    def steps(self) -> list[tuple[str, Any]]:
        """The Pipeline's feature steps: ``derive`` (when there is one), then ``features``."""
        return [
            *((("derive", self.derive),) if self.derive is not None else ()),
            ("features", self.preprocessor),
        ]


def _merged(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    unknown = set(spec or {}) - set(SPEC_KEYS)
    if unknown:
        raise FeatureSpecError(
            f"Unknown feature spec key(s) {sorted(unknown)}; expected {', '.join(SPEC_KEYS)}"
        )
    merged: dict[str, Any] = {
        key: {**DEFAULT_SPEC[key], **dict((spec or {}).get(key) or {})}
        for key in ("numeric", "categorical", "datetime")
    }
    merged["drop"] = list((spec or {}).get("drop") or [])
    derive = (spec or {}).get("derive") or {}
    if not isinstance(derive, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in derive.items()
    ):
        raise FeatureSpecError(f"derive must map new column names to expressions (text), got {derive!r}")
    merged["derive"] = dict(derive)
    return merged


def _calendar(
    frame: pd.DataFrame,
    spec: Mapping[str, Any],
    temporal: Mapping[str, str],
    *,
    target: str | None,
    time_column: str | None,
) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """([column, part] pairs to derive, {temporal column left out: why})."""
    from airflow_provider_mlops.ml.transformers import CALENDAR_PARTS

    section = spec["datetime"]
    parts = list(section.get("features") or [])
    unknown = [p for p in parts if p not in CALENDAR_PARTS]
    if unknown:
        raise FeatureSpecError(
            f"datetime.features {unknown} are not calendar parts; use {list(CALENDAR_PARTS)}"
        )
    drop = set(spec["drop"]) | ({target} if target else set())
    listed = section.get("columns", "auto")
    if listed == "auto":
        columns = [c for c in temporal if c not in drop and c != time_column]
    else:
        columns = list(listed)
        wrong = [c for c in columns if c not in temporal]
        if wrong:
            raise FeatureSpecError(
                f"datetime.columns lists {wrong}, which are not date, time or timestamp columns "
                f"(those are: {list(temporal)})"
            )
    pairs: list[tuple[str, str]] = []
    left_out: dict[str, str] = {}
    for column in columns:
        family = temporal[column]
        usable = [p for p in parts if family in CALENDAR_PARTS[p][1]]
        skipped = [p for p in parts if p not in usable]
        if skipped:
            log.info(
                "datetime.features %s do not apply to %s column %r: not derived", skipped, family, column
            )
        pairs.extend((column, p) for p in usable)
        if not usable:
            left_out[column] = (
                f"a {family} column, not a feature: ask for calendar features with features={{'datetime': "
                "{'features': ['month', 'day_of_week']}}"
            )
    for column, family in temporal.items():
        if column not in columns and column not in drop:
            left_out[column] = (
                "time_column: not a feature unless listed in datetime.columns"
                if column == time_column
                else f"a {family} column not listed in datetime.columns"
            )
    return pairs, left_out


def build_features(
    frame: pd.DataFrame,
    spec: Mapping[str, Any] | None,
    *,
    target: str | None,
    task: str = "classification",
    time_column: str | None = None,
) -> FeaturePlan:
    """
    The feature steps for ``spec`` (defaults filled in): the derive step, the ``ColumnTransformer``,
    the columns they use and the raw input columns of the model. ``frame`` is inspected for names
    and types (and the derive expressions are evaluated on it once, to check them and learn their
    types); nothing is fitted for the model here.
    """
    import difflib

    from airflow_provider_mlops.etl.expressions import quote_name
    from airflow_provider_mlops.ml.transformers import DerivedFeatures, SQLExpression

    merged = _merged(spec)
    temporal = temporal_columns(frame)
    calendar, left_out = _calendar(frame, merged, temporal, target=target, time_column=time_column)
    derive = list(merged["derive"].items())
    step: Any = None
    derived = frame
    raw = [c for c in frame.columns if c != target]
    if derive or calendar:
        for name, text in derive:
            try:
                reads = SQLExpression(text).columns()
            except ValueError as err:
                raise FeatureSpecError(f"derive {name!r}: {err}") from None
            unknown = [c for c in reads if c not in frame.columns and c not in merged["derive"]]
            if unknown:
                near = difflib.get_close_matches(unknown[0], [str(c) for c in frame.columns], n=3)
                hint = f"; did you mean {', '.join(quote_name(c) for c in near)}?" if near else ""
                raise FeatureSpecError(
                    f"derive {name!r} ({text!r}) reads column(s) {unknown} that the data does not have{hint}"
                )
            if target and target in reads:
                raise FeatureSpecError(
                    f"derive {name!r} reads the target {target!r} ({text!r}): it would not exist when "
                    "the model predicts"
                )
        step = DerivedFeatures(derive=[list(p) for p in derive], calendar=[list(p) for p in calendar])
        try:
            derived = step.fit_transform(frame[raw])
        except ValueError as err:
            raise FeatureSpecError(f"Derived features: {err}") from None
    exclude = dict(left_out)
    if time_column and time_column not in temporal:
        listed = [
            *(merged["numeric"].get("columns") if merged["numeric"].get("columns") != "auto" else []),
            *(merged["categorical"].get("columns") if merged["categorical"].get("columns") != "auto" else []),
        ]
        if time_column not in listed and time_column in frame.columns:
            exclude[time_column] = (
                "time_column: not a feature unless listed in numeric or categorical columns"
            )
            left_out[time_column] = exclude[time_column]
    drop = set(merged["drop"]) | ({target} if target else set())
    for column, kind in unencodable_columns(frame).items():
        if column not in drop and column not in left_out:
            left_out[column] = exclude[column] = _unencodable_reason(kind)
    for column, why in left_out.items():
        log.info("Column %r is left out of the features: %s", column, why)
    preprocessor, numeric, categorical = _column_transformer(
        derived, merged, target=target, task=task, exclude=exclude
    )
    check_feature_values(derived, numeric, categorical)
    if step is None:
        return FeaturePlan(None, preprocessor, numeric, categorical, numeric + categorical, left_out)
    used = set(numeric) | set(categorical) | set(step.reads())
    inputs = [c for c in raw if c in used]
    step = DerivedFeatures(derive=step.derive, calendar=step.calendar)  # unfitted: the Pipeline fits it
    return FeaturePlan(step, preprocessor, numeric, categorical, inputs, left_out)


def build_preprocessor(
    frame: pd.DataFrame,
    spec: Mapping[str, Any] | None,
    *,
    target: str | None,
    task: str = "classification",
    time_column: str | None = None,
) -> tuple[Any, list[str], list[str]]:
    """
    The ``ColumnTransformer`` for ``spec`` and the numeric / categorical columns it uses, for a spec
    without ``derive`` or calendar features (those need the derive step: use :func:`build_features`).
    """
    plan = build_features(frame, spec, target=target, task=task, time_column=time_column)
    if plan.derive is not None:
        raise FeatureSpecError("This spec derives features: build_features() gives the derive step with it")
    return plan.preprocessor, plan.numeric, plan.categorical


def _column_transformer(
    frame: pd.DataFrame,
    merged: Mapping[str, Any],
    *,
    target: str | None,
    task: str,
    exclude: Mapping[str, str],
) -> tuple[Any, list[str], list[str]]:
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

    numeric, categorical = resolve_columns(frame, merged, target, exclude=exclude)
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
        why = "; ".join(f"{c}: {reason}" for c, reason in exclude.items())
        dropped = sorted(str(c) for c in (set(merged.get("drop") or []) | ({target} if target else set())))
        raise FeatureSpecError(
            "The feature spec selects no column"
            + (f". Left out: {why}" if why else "")
            + (f". Dropped (drop, target): {dropped}" if dropped else "")
        )
    preprocessor = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
    preprocessor.set_output(transform="pandas")
    return preprocessor, numeric, categorical


def check_feature_values(frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> None:
    """
    Refuse, before any fitting, what no imputer or estimator takes, naming the columns: infinite
    values in a numeric feature (scikit-learn's "Input X contains infinity" names none; the model
    server refuses them too), and features that are missing in every row when no other is left (the
    imputer drops an all-missing column; with none left the estimator gets no input). A feature that
    is all missing beside others is dropped by the imputer, with a warning here.
    """
    import numpy as np
    import pandas as pd

    infinite = []
    for column in numeric:
        values = frame[column]
        if not pd.api.types.is_float_dtype(values):
            values = pd.to_numeric(values, errors="coerce")
        numbers = np.asarray(values, dtype="float64")
        positive, negative = int(np.isposinf(numbers).sum()), int(np.isneginf(numbers).sum())
        if positive or negative:
            infinite.append(
                f"{column!r} holds {positive + negative} infinite values ({positive} inf, {negative} -inf) "
                f"in {len(numbers)} rows"
            )
    if infinite:
        raise FeatureSpecError(
            f"Numeric feature(s) with infinite values: {'; '.join(infinite)}. A model cannot learn from "
            "infinity (and the model server refuses it). Clip them in the ETL (TransformOperator's "
            "{'clip': {column: [low, high]}} step), make them missing (a derive/cast step upstream), or "
            "drop the column (features={'drop': [...]})."
        )
    features = [*numeric, *categorical]
    empty = [c for c in features if bool(frame[c].isna().all())]
    if empty and len(empty) == len(features):
        raise FeatureSpecError(
            f"Feature(s) {empty} are missing in every row ({len(frame)} rows) and no other feature is "
            "left: nothing to learn from. Fix the source (a join or a cast that produced nulls) or add "
            "features."
        )
    if empty:
        log.warning(
            "Feature(s) %s are missing in every one of the %s rows: the imputer leaves them out",
            empty,
            len(frame),
        )


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
    """
    The frame as a model takes it: categorical ``columns`` as plain object dtype with NaN for missing
    (what the encoders expect), and every decimal column (:func:`decimal_columns`) as float64, like
    any number (training, batch prediction and the model server's JSON numbers alike). A decimal
    with more significant digits than float64 holds is rounded, with a log line naming the column.
    """
    import numpy as np

    out = frame.copy()
    decimals = decimal_columns(out)
    for column in decimals:
        out[column] = _as_float(out[column], str(column))
    for column in columns:
        if column in decimals:
            continue
        values = out[column].astype(object)
        out[column] = values.where(values.notna(), np.nan)
    return out
