"""
The data profile, computed from Arrow record batches in bounded memory.

Two passes over the batches (``make_batches`` is called twice):

1. per column: rows, nulls, NaN, +/-inf, exact min/max, mean / std / skewness (moments merged batch
   by batch with Pebay's formulas: the same result, up to float rounding, for any batch split),
   distinct values (exact as a set of 64-bit hashes up to ``distinct_exact_limit``, then a
   k-minimum-values estimate from the ``distinct_sketch_size`` smallest hashes), category counts
   (exact up to ``category_limit`` categories, then Misra-Gries lower bounds); across columns: a
   bottom-k row sample (``sample_size`` rows picked by a hash of the row's position: the same rows
   whatever the batch split) and 64-bit row hashes for duplicates (all of them up to
   ``duplicate_hash_limit``; beyond, only hashes whose top bits are zero, scaled back up);
2. exact histogram counts between the exact min and max, and exact outlier counts against the
   bounds of the feature spec's rule (``iqr``: quartiles from the sample; ``zscore``: exact mean
   and std).

Quantiles, correlations, associations and the target's relationship with each feature come from
the sample (exact when the data has no more rows than ``sample_size``). The summary says which
figures are exact and which are estimated, and how.

The code: :mod:`~airflow_provider_mlops.ml.eda.accumulators` (the first pass's per-column state),
:mod:`~airflow_provider_mlops.ml.eda.sample_stats` (what the sample gives),
:mod:`~airflow_provider_mlops.ml.eda.findings` (the warnings) and this module (the two passes and
the summary document).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.ml.eda.accumulators import (
    _as_float,
    _canonical,
    _Column,
    _Duplicates,
    _Sample,
    _splitmix,
)
from airflow_provider_mlops.ml.eda.findings import _warnings
from airflow_provider_mlops.ml.eda.options import ProfileOptions
from airflow_provider_mlops.ml.eda.sample_stats import (
    _associations,
    _correlations,
    _finite,
    _sample_arrays,
    _target_relations,
    correlation_ratio,
    cramers_v,
    predictive_power,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import numpy as np
    import pyarrow as pa

__all__ = [
    "QUANTILES",
    "READ_BATCH_SIZE",
    "SCHEMA",
    "SCHEMA_VERSION",
    "ProfileOptions",
    "correlation_ratio",
    "cramers_v",
    "predictive_power",
    "profile_batches",
    "profile_table",
]

SCHEMA = "mlops.data-profile"

SCHEMA_VERSION = 1

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)

#: The batch size to read a dataset with for a profile: the reader's buffers and each batch's
#: temporaries scale with it; 10,000 rows keeps 1M x 25 columns under 300 MB (docs/performance.md).
READ_BATCH_SIZE = 10_000


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats as strings, datetimes / decimals / bytes as text."""
    import datetime as dt
    import decimal

    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(float(value))
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (dt.timedelta, decimal.Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return _clean(value.item())
    return value


def profile_batches(
    make_batches: Callable[[], Iterable[pa.RecordBatch]],
    *,
    target: str | None = None,
    options: ProfileOptions | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """
    The data profile of the batches ``make_batches()`` yields (called twice: two passes).

    :param target: the label column: its relationship with every feature and leakage warnings.
    :param source: what the data is (a URI), recorded in the summary.
    """
    import numpy as np
    import pyarrow as pa

    options = options or ProfileOptions()
    method = str(options.outliers.get("method", "iqr"))
    if method not in ("iqr", "zscore"):
        raise ValueError(f"outliers.method must be 'iqr' or 'zscore', got {method!r}")
    factor = float(options.outliers.get("factor", 1.5 if method == "iqr" else 3.0))

    pool = pa.default_memory_pool()
    columns: dict[str, _Column] = {}
    sample = _Sample(options.sample_size, options.seed)
    duplicates = _Duplicates(options.duplicate_hash_limit)
    rows = 0
    schema = None
    for batch in map(_canonical_batch, make_batches()):
        if schema is None:
            schema = batch.schema
            columns = {f.name: _Column(f.name, f.type, options) for f in schema}
            if len(columns) != len(schema):
                raise ValueError(f"Duplicate column names in {schema.names}: a profile needs unique names")
            if target is not None and target not in columns:
                raise KeyError(f"target {target!r} is not a column of the data (columns: {schema.names})")
        elif batch.schema.names != schema.names:
            raise ValueError(
                f"Batch columns {batch.schema.names} differ from the first batch's {schema.names}"
            )
        row_hash = np.zeros(batch.num_rows, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for i, column in enumerate(columns.values()):
                row_hash = _splitmix(
                    row_hash ^ (column.add(batch.column(i)) + np.uint64((i + 1) * 0x632BE59BD9B4E019 % 2**64))
                )
        duplicates.add(row_hash)
        sample.add(batch, rows)
        rows += batch.num_rows
        del batch, row_hash  # not held while the reader makes the next batch
        _release(pool)
    if schema is None:
        raise ValueError("The data has no batches: nothing to profile")

    sample_table = sample.table()
    del sample
    arrays = _sample_arrays(sample_table, columns, options) if sample_table is not None else {}
    sample_rows = 0 if sample_table is None else sample_table.num_rows
    del sample_table  # the sample lives on as one numpy array per column (``arrays``)
    pool.release_unused()  # give the first pass's buffers back before the second

    # bounds of the outlier rule and histogram edges, then the second pass counts exactly
    for column in columns.values():
        if column.kind != "numeric" or column.moments.n == 0 or column.error:
            continue
        if method == "iqr":
            values = _finite(arrays, column.name)
            if len(values):
                q1, q3 = np.percentile(values, [25, 75])
                with np.errstate(over="ignore", invalid="ignore"):
                    column.bounds = (q1 - factor * (q3 - q1), q3 + factor * (q3 - q1))
        else:
            std = math.sqrt(column.moments.m2 / column.moments.n)
            column.bounds = (column.moments.mean - factor * std, column.moments.mean + factor * std)
    for column in columns.values():
        if column.kind in ("numeric", "datetime") and column.moments.n and not column.error:
            if column.kind == "datetime" and column.epoch is not None:
                low, high = float(column.epoch[0]), float(column.epoch[1])
            else:
                low, high = float(column.min), float(column.max)
            steps = np.linspace(0.0, 1.0, options.bins + 1)
            edges = low * (1 - steps) + high * steps  # no high - low: it overflows near the float64 limits
            edges[0], edges[-1] = low, high
            column.edges = list(np.maximum.accumulate(edges)) if high > low else [low, high]
            column.histogram = [0] * (len(column.edges) - 1)
    for batch in map(_canonical_batch, make_batches()):
        for j, column in enumerate(columns.values()):
            if not column.histogram:
                continue
            values = _as_float(batch.column(j), column.kind)
            values = values[np.isfinite(values)]
            if len(column.edges) == 2 and column.edges[0] == column.edges[1]:
                column.histogram[0] += len(values)
            else:
                counts, _ = np.histogram(values, bins=column.edges)
                column.histogram = [a + int(b) for a, b in zip(column.histogram, counts, strict=True)]
            if column.bounds is not None:
                column.outliers["low"] += int((values < column.bounds[0]).sum())
                column.outliers["high"] += int((values > column.bounds[1]).sum())
        del batch
        _release(pool)
    pool.release_unused()

    result_columns = [_column_summary(c, rows, arrays, options, method, factor) for c in columns.values()]
    by_name = {c["name"]: c for c in result_columns}

    skipped: dict[str, str] = {}
    for c in result_columns:
        if c["kind"] in ("categorical", "boolean") and c["distinct"] > options.max_association_categories * 2:
            skipped[c["name"]] = f"high cardinality ({c['distinct']:,} distinct values)"
        elif c["non_missing"] == 0:
            skipped[c["name"]] = "no values"

    correlations = _correlations(arrays, columns, options)
    associations = _associations(arrays, columns, options, skipped)
    relations = (
        _target_relations(arrays, columns, target, options, skipped)
        if target is not None and sample_rows
        else None
    )
    dup = duplicates.result(rows)
    warnings = _warnings(result_columns, relations, dup, options, target)
    for w in warnings:
        if w.get("column") in by_name:
            by_name[w["column"]].setdefault("warnings", []).append(w["kind"])
    return _clean(
        {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "source": source,
            "rows": rows,
            "columns": len(result_columns),
            "target": target,
            "options": {k: v for k, v in asdict(options).items()},
            "sampling": {
                "rows": sample_rows,
                "exact": sample_rows == rows,
                "method": (
                    f"bottom-{options.sample_size:,} rows by a 64-bit hash of the row position "
                    f"(seed {options.seed}): a uniform sample without replacement, the same rows for "
                    "any batch split"
                ),
                "used_for": "quantiles, IQR outlier bounds, correlations, associations, target relations",
            },
            "exact": (
                "rows, missing / NaN / inf counts, min, max, mean, std, skewness, histograms, outlier "
                "counts against the stated bounds; distinct counts while <= "
                f"{options.distinct_exact_limit:,} (then a k-minimum-values estimate from "
                f"{options.distinct_sketch_size:,} hashes, about "
                f"{100 / math.sqrt(options.distinct_sketch_size):.1f}% error); category counts while "
                f"<= {options.category_limit:,} categories (then Misra-Gries lower bounds)"
            ),
            "duplicates": dup,
            "column_summaries": result_columns,
            "correlations": correlations,
            "associations": associations,
            "target_relations": relations,
            "warnings": warnings,
        }
    )


def _release(pool: pa.MemoryPool) -> None:
    """Give the allocator's cached pages back after a batch (mimalloc keeps freed batches otherwise)."""
    pool.release_unused()


def profile_table(
    table: Any,
    *,
    target: str | None = None,
    options: ProfileOptions | None = None,
    source: str | None = None,
    batch_size: int = 50_000,
) -> dict[str, Any]:
    """:func:`profile_batches` of an in-memory Arrow table or pandas DataFrame."""
    import pyarrow as pa

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    return profile_batches(
        lambda: table.to_batches(max_chunksize=batch_size), target=target, options=options, source=source
    )


def _canonical_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with every column in a layout the accumulators support (views, extensions decoded)."""
    import pyarrow as pa

    arrays = [_canonical(column) for column in batch.columns]
    if all(a is c for a, c in zip(arrays, batch.columns, strict=True)):
        return batch
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _column_summary(
    column: _Column,
    rows: int,
    arrays: dict[str, tuple[str, np.ndarray]],
    options: ProfileOptions,
    method: str,
    factor: float,
) -> dict[str, Any]:
    import numpy as np

    missing = column.nulls + column.nans
    non_missing = rows - missing
    summary: dict[str, Any] = {
        "name": column.name,
        "kind": column.kind,
        "type": str(column.dtype),
        "rows": rows,
        "missing": missing,
        "missing_share": missing / rows if rows else 0.0,
        "nulls": column.nulls,
        "non_missing": non_missing,
        "distinct": column.distinct.count(),
        "distinct_exact": column.distinct.exact,
    }
    if column.error:
        summary["kind"] = "unsupported"
        summary["error"] = column.error
        summary.pop("distinct")
        return summary
    if column.kind in ("numeric", "datetime"):
        m = column.moments
        summary.update(
            {
                "nan": column.nans,
                "pos_inf": column.pos_inf,
                "neg_inf": column.neg_inf,
                "finite": m.n,
                "min": column.min,
                "max": column.max,
            }
        )
        if column.kind == "numeric":
            summary.update(
                {
                    "zeros": column.zeros,
                    "mean": m.mean if m.n else None,
                    "std": m.std(),
                    "skewness": m.skew(),
                }
            )
            values = _finite(arrays, column.name)
            if len(values):
                summary["quantiles"] = {
                    str(q): float(v) for q, v in zip(QUANTILES, np.quantile(values, QUANTILES), strict=True)
                }
            if column.bounds is not None:
                summary["outliers"] = {
                    "method": method,
                    "factor": factor,
                    "lower": column.bounds[0],
                    "upper": column.bounds[1],
                    "low": column.outliers["low"],
                    "high": column.outliers["high"],
                    "count": column.outliers["low"] + column.outliers["high"],
                    "bounds_from": "sample quartiles" if method == "iqr" else "exact mean and std (ddof=0)",
                }
        if column.histogram:
            summary["histogram"] = {"edges": column.edges, "counts": column.histogram}
    if column.categories is not None:
        cats = column.categories
        top = sorted(cats.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[: options.top_k]
        summary["top"] = [{"value": k, "count": v} for k, v in top]
        summary["top_exact"] = cats.exact
        summary["empty_strings"] = cats.empty_strings
    return summary
