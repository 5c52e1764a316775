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


# --------------------------------------------------------------------------------------------------
# derived features: expressions and calendar parts, computed inside the model
# --------------------------------------------------------------------------------------------------
# calendar part -> (pyarrow.compute function, the Arrow type families it applies to)
CALENDAR_PARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "year": ("year", ("date", "timestamp")),
    "quarter": ("quarter", ("date", "timestamp")),
    "month": ("month", ("date", "timestamp")),
    "week": ("iso_week", ("date", "timestamp")),
    "day": ("day", ("date", "timestamp")),
    "day_of_week": ("day_of_week", ("date", "timestamp")),
    "day_of_year": ("day_of_year", ("date", "timestamp")),
    "hour": ("hour", ("timestamp", "time")),
    "minute": ("minute", ("timestamp", "time")),
    "second": ("second", ("timestamp", "time")),
}


def temporal_family(arrow_type: Any) -> str | None:
    """``date``, ``timestamp``, ``time`` or ``duration`` for an Arrow temporal type, else None."""
    import pyarrow as pa

    for family, test in (
        ("date", pa.types.is_date),
        ("timestamp", pa.types.is_timestamp),
        ("time", pa.types.is_time),
        ("duration", pa.types.is_duration),
    ):
        if test(arrow_type):
            return family
    return None


class SQLExpression:
    """
    One derive expression, evaluated over an Arrow table: the only place the derive step meets the
    expression language.

    The language is TransformOperator's: a DuckDB SQL expression over the columns, in the same
    sandbox (:mod:`airflow_provider_mlops.etl.expressions`), with one difference: a zero divisor of
    ``/``, ``//`` or ``%`` gives a null (a missing value, imputed like any other) instead of failing,
    so that one row cannot fail a whole request. A model stores only the expression's text and the
    language's name (``DerivedFeatures.language``), so it re-parses the text on load and holds no
    object of the language.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def columns(self) -> list[str]:
        """The column names the expression reads."""
        from airflow_provider_mlops.etl.expressions import referenced_columns

        return referenced_columns(self.text)

    def evaluate(self, table: Any) -> Any:
        """The expression's values for every row of ``table`` (a ``pyarrow.Table``), as one array."""
        from airflow_provider_mlops.etl.expressions import evaluate_column

        return evaluate_column(table, self.text, zero_division="null").combine_chunks()

    @staticmethod
    def evaluate_all(table: Any, expressions: list[tuple[str, str]]) -> dict[str, Any]:
        """``(name, text)`` pairs evaluated in order over ``table``, in one query: arrays by name."""
        from airflow_provider_mlops.etl.expressions import evaluate_columns

        values = evaluate_columns(table, expressions, zero_division="null", what="derive")
        return {name: array.combine_chunks() for name, array in values.items()}


# expression languages by the name a model stores (DerivedFeatures.language): a saved model
# evaluates its expressions in the language it was trained with
EXPRESSION_LANGUAGES: dict[str, type[SQLExpression]] = {"duckdb": SQLExpression}
# languages models were once saved with, and why they no longer load
RETIRED_LANGUAGES = {
    "arrow": (
        "the provider's own expression language of 0.x before issue #24, replaced by DuckDB SQL; "
        "re-train the model (its derive expressions rewritten in SQL, e.g. `a / b` stays, "
        "`if_else(c, x, y)` becomes `CASE WHEN c THEN x ELSE y END`, backticks become double quotes)"
    ),
}


def _type_name(arrow_type: Any) -> str:
    return str(arrow_type)


def _parse_type(name: str) -> Any:
    """The Arrow type written by :func:`_type_name` (``timestamp[us, tz=UTC]`` included)."""
    import re

    import pyarrow as pa

    stamp = re.fullmatch(r"timestamp\[(\w+)(?:, tz=(.+))?\]", name)
    if stamp:
        return pa.timestamp(stamp.group(1), tz=stamp.group(2))
    duration = re.fullmatch(r"duration\[(\w+)\]", name)
    if duration:
        return pa.duration(duration.group(1))
    decimal = re.fullmatch(r"decimal(128|256)\((\d+), (-?\d+)\)", name)
    if decimal:
        make = pa.decimal128 if decimal.group(1) == "128" else pa.decimal256
        return make(int(decimal.group(2)), int(decimal.group(3)))
    return pa.type_for_alias(name)


def _is_text(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def _arrow_column(name: str, values: Any, expected: Any = None) -> Any:
    """
    A pandas column as an Arrow array (missing values, NaN included, as nulls), cast to ``expected``
    (the type the column had at fit) when given. Text that spells a date, a timestamp or a time (a
    JSON request) is parsed; anything else that does not convert names the column and the value.
    """
    import datetime as dt

    import pyarrow as pa

    try:
        zone = getattr(getattr(values, "dtype", None), "tz", None)
        if zone is not None:  # pandas' tz-aware dtype: its UTC values and the zone (pyarrow would warn)
            utc = values.dt.tz_convert(None).to_numpy()
            array = pa.array(utc, type=pa.timestamp(values.dtype.unit, tz=str(zone)), from_pandas=True)
        else:
            array = pa.array(values, from_pandas=True)
        if pa.types.is_dictionary(array.type):  # a pandas Categorical: its values are what counts
            array = array.dictionary_decode()
        if pa.types.is_decimal(
            array.type
        ):  # a number like any other for a model (and * 2 needs no precision)
            array = array.cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as err:
        raise ValueError(f"column {name!r} cannot be read as one type: {err}") from None
    if expected is None or array.type == expected:
        return array
    if temporal_family(expected) and not (
        temporal_family(array.type) or _is_text(array.type) or pa.types.is_null(array.type)
    ):
        # a number is not a date: epoch units differ between clients (pandas' to_json writes ms)
        raise ValueError(
            f"column {name!r} holds {expected} values: send them as ISO 8601 text "
            f"(e.g. '2024-01-05', '2024-01-05T10:00:00Z'), got {array.type}"
        )
    try:
        if _is_text(array.type) and pa.types.is_time(expected):  # no Arrow cast for this one
            parsed = [None if v is None else dt.time.fromisoformat(v) for v in array.to_pylist()]
            return pa.array(parsed, type=expected)
        return array.cast(expected)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"column {name!r} was {expected} when the model was trained and cannot be converted from "
            f"{array.type}: {message}"
        ) from None


class DerivedFeatures(TransformerMixin, BaseEstimator):
    """
    The first step of a Pipeline whose feature spec has a ``derive`` or ``datetime`` section: adds
    the derived columns to the raw input columns, so training, batch prediction and the model server
    compute them with the same code from the same raw inputs.

    Input: a DataFrame with (at least) the raw columns seen at fit; output: those columns, unchanged
    and in the fit's order, followed by the derived ones (numbers as float64 with NaN for missing,
    text as object with NaN for missing). Columns the expressions read are converted to the Arrow type
    they had at fit (``2.0`` for an integer column, ``"2024-01-05"`` for a date column, as a JSON
    request sends them); decimals are read as float64, categoricals as their values. A derived number that is not finite (``ln(0)``, an overflow to inf) is
    missing; so is a division by zero (see :class:`SQLExpression`).

    :param derive: ``[name, expression]`` pairs, evaluated in order (a later expression may read an
        earlier one's column).
    :param calendar: ``[column, part]`` pairs: a part of :data:`CALENDAR_PARTS` of a date, timestamp
        or time column, named ``<column>_<part>``.
    :param language: the expression language (a key of :data:`EXPRESSION_LANGUAGES`), stored with
        the model so that it is evaluated as it was trained.

    Only the expressions' text and type names are stored: the step persists with skops under the
    provider's allowlist.
    """

    def __init__(self, derive: Any = (), calendar: Any = (), language: str = "duckdb") -> None:
        self.derive = derive
        self.calendar = calendar
        self.language = language

    # ------------------------------------------------------------------------------------ helpers
    def _expressions(self) -> list[tuple[str, SQLExpression]]:
        if self.language in RETIRED_LANGUAGES:
            raise ValueError(
                f"This model's derive step was saved with the expression language {self.language!r}: "
                f"{RETIRED_LANGUAGES[self.language]}"
            )
        if self.language not in EXPRESSION_LANGUAGES:
            raise ValueError(
                f"Unknown expression language {self.language!r}; known: {sorted(EXPRESSION_LANGUAGES)}"
            )
        language = EXPRESSION_LANGUAGES[self.language]
        return [(str(name), language(str(text))) for name, text in self.derive]

    def reads(self) -> list[str]:
        """The raw columns the derived features read, in order of first use."""
        made: set[str] = set()
        reads: list[str] = []
        for name, expression in self._expressions():
            for column in expression.columns():
                if column not in made and column not in reads:
                    reads.append(column)
            made.add(name)
        for column, _ in self.calendar:
            if column not in made and column not in reads:
                reads.append(str(column))
        return reads

    def derived_names(self) -> list[str]:
        """The names of the derived columns, in output order."""
        return [str(n) for n, _ in self.derive] + [f"{c}_{p}" for c, p in self.calendar]

    def _table(self, X: Any, types: dict[str, str] | None) -> Any:
        import pyarrow as pa

        reads = self.reads()
        present = X.columns if hasattr(X, "columns") else X  # a DataFrame or a dict of arrays
        missing = [c for c in reads if c not in present]
        if missing:
            raise ValueError(f"Derived features need column(s) {missing}, which the data does not have")
        arrays = [_arrow_column(c, X[c], None if types is None else _parse_type(types[c])) for c in reads]
        return pa.Table.from_arrays(arrays, names=reads) if reads else pa.table({})

    def _derive(self, table: Any, rows: int) -> tuple[dict[str, Any], dict[str, str]]:
        """(derived Arrow arrays by name, their kinds: number / text) evaluated on ``table``."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if table.num_columns == 0:
            table = pa.table({"__rows__": pa.nulls(rows)})
        out: dict[str, Any] = {}
        kinds: dict[str, str] = {}
        expressions = self._expressions()
        # one query for all of them: a one-row request pays DuckDB's per-query cost once
        evaluated = SQLExpression.evaluate_all(table, [(name, e.text) for name, e in expressions])
        for name, expression in expressions:
            array = evaluated[name]
            kinds[name] = self._kind(name, f"expression {expression.text!r}", array.type)
            out[name] = array
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, array)
            else:
                table = table.append_column(name, array)
        for column, part in self.calendar:
            function, families = CALENDAR_PARTS[part]
            source = table.column(column)
            if temporal_family(source.type) not in families:
                raise ValueError(
                    f"calendar part {part!r} does not apply to column {column!r} ({source.type}); "
                    f"it applies to {' and '.join(families)} columns"
                )
            name = f"{column}_{part}"
            out[name] = getattr(pc, function)(source).combine_chunks()
            kinds[name] = "number"
        return out, kinds

    @staticmethod
    def _kind(name: str, what: str, arrow_type: Any) -> str:
        import pyarrow as pa

        if (
            pa.types.is_integer(arrow_type)
            or pa.types.is_floating(arrow_type)
            or pa.types.is_boolean(arrow_type)
            or pa.types.is_decimal(arrow_type)
            or pa.types.is_null(arrow_type)
        ):
            return "number"
        if _is_text(arrow_type):
            return "text"
        raise ValueError(
            f"derive {name!r} ({what}) gives {arrow_type}: a derived feature must be a number, a boolean "
            "or text (for parts of a date or timestamp use the datetime section's features)"
        )

    # ------------------------------------------------------------------------------------ estimator API
    def fit(self, X: Any, y: Any = None) -> DerivedFeatures:
        if not hasattr(X, "columns"):
            raise ValueError("DerivedFeatures needs a DataFrame: its expressions read columns by name")
        for _, part in self.calendar:
            if part not in CALENDAR_PARTS:
                raise ValueError(f"Unknown calendar part {part!r}; one of {sorted(CALENDAR_PARTS)}")
        names = self.derived_names()
        clashes = sorted({n for n in names if n in X.columns} | {n for n in names if names.count(n) > 1})
        if clashes:
            raise ValueError(f"Derived feature name(s) {clashes} are already columns or given twice")
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        table = self._table(X, None)
        self.input_types_ = {name: _type_name(table.column(name).type) for name in table.column_names}
        _, self.output_kinds_ = self._derive(table, len(X))
        return self

    def transform(self, X: Any) -> Any:
        import pandas as pd

        check_is_fitted(self, ("input_types_", "output_kinds_"))
        if not hasattr(X, "columns"):
            X = pd.DataFrame(X, columns=self.feature_names_in_)
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"The data lacks the model's input column(s) {missing}")
        columns = {c: X[c] for c in self.feature_names_in_}
        columns.update(self.derived_columns(X, len(X)))
        return pd.DataFrame(columns, index=X.index, copy=False)

    def derived_columns(self, X: Any, rows: int) -> dict[str, Any]:
        """
        The derived columns as NumPy arrays (float64 / object), computed from the raw columns of ``X``
        (a DataFrame, or a dict of column arrays as the model server and batch prediction hold them).
        """
        check_is_fitted(self, ("input_types_", "output_kinds_"))
        arrays, _ = self._derive(self._table(X, self.input_types_), rows)
        return {name: self._numpy(name, arrays[name]) for name in self.derived_names()}

    def _numpy(self, name: str, array: Any) -> Any:
        import pyarrow as pa

        if self.output_kinds_[name] == "text":
            values = np.asarray(array.cast(pa.large_string()).to_numpy(zero_copy_only=False), dtype=object)
            values[array.is_null().to_numpy(zero_copy_only=False)] = np.nan
            return values
        values = array.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
        values[~np.isfinite(values)] = np.nan
        return values

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        check_is_fitted(self, "output_kinds_")
        return np.asarray([*self.feature_names_in_, *self.derived_names()], dtype=object)
