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
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    import numpy as np
    import pyarrow as pa

SCHEMA = "mlops.data-profile"
SCHEMA_VERSION = 1
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
#: The batch size to read a dataset with for a profile: the reader's buffers and each batch's
#: temporaries scale with it; 10,000 rows keeps 1M x 25 columns under 300 MB (docs/performance.md).
READ_BATCH_SIZE = 10_000
_GOLDEN = 0x9E3779B97F4A7C15
_NULL_HASH = 0x5BD1E9955BD1E995


@dataclass
class ProfileOptions:
    """How much the profiler keeps and when it warns (the defaults hold 1M x 25 under 300 MB)."""

    sample_size: int = 50_000
    bins: int = 20
    top_k: int = 10
    seed: int = 0
    distinct_exact_limit: int = 65_536
    distinct_sketch_size: int = 4_096
    category_limit: int = 10_000
    duplicate_hash_limit: int = 2_000_000
    outliers: Mapping[str, Any] = field(default_factory=lambda: {"method": "iqr", "factor": 1.5})
    max_correlation_columns: int = 40
    max_association_categories: int = 50
    target_bins: int = 100
    high_cardinality: int = 50
    many_missing: float = 0.2
    heavy_skew: float = 2.0
    leakage: float = 0.95


# --------------------------------------------------------------------------------------------------
# hashing (numpy uint64 arithmetic wraps, which is what a hash wants)
# --------------------------------------------------------------------------------------------------
def _splitmix(values: np.ndarray) -> np.ndarray:
    import numpy as np

    with np.errstate(over="ignore"):
        z = values.astype(np.uint64, copy=True) + np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _kind(dtype: pa.DataType) -> str:
    import pyarrow.types as t

    if t.is_integer(dtype) or t.is_floating(dtype) or t.is_decimal(dtype):
        return "numeric"
    if t.is_boolean(dtype):
        return "boolean"
    if t.is_timestamp(dtype) or t.is_date(dtype) or t.is_time(dtype) or t.is_duration(dtype):
        return "datetime"
    if t.is_string(dtype) or t.is_large_string(dtype) or t.is_dictionary(dtype) or t.is_binary(dtype):
        return "categorical"
    if t.is_large_binary(dtype) or getattr(t, "is_string_view", lambda _: False)(dtype):
        return "categorical"
    return "other"


def _as_float(array: pa.Array, kind: str) -> np.ndarray:
    """The column as float64 (nulls as NaN); datetimes as their integer epoch value."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind == "datetime":
        ints = array.cast(pa.int64()) if not pa.types.is_date32(array.type) else array.cast(pa.int32())
        return np.asarray(ints.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    if pa.types.is_decimal(array.type) or pa.types.is_integer(array.type):
        array = pc.cast(array, pa.float64(), safe=False)
    elif pa.types.is_floating(array.type) and array.type != pa.float64():
        array = array.cast(pa.float64())
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)


def _value_hashes(array: pa.Array, kind: str) -> np.ndarray:
    """A 64-bit hash per row (nulls share one value); equal values hash equal within one run."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind in ("numeric", "datetime") and not pa.types.is_decimal(array.type):
        if pa.types.is_floating(array.type):
            values = _as_float(array, kind)
            values = np.where(values == 0.0, 0.0, values)  # -0.0 == 0.0
            values = np.where(np.isnan(values), np.nan, values)  # one NaN
            bits = values.view(np.uint64)
        else:
            ints = array.cast(pa.int64()) if kind == "datetime" else array
            filled = pc.fill_null(ints, 0) if ints.null_count else ints
            bits = np.asarray(filled.to_numpy(zero_copy_only=False)).astype(np.int64).view(np.uint64)
        hashed = _splitmix(bits)
    else:
        if kind == "boolean":
            encoded = pc.dictionary_encode(array.cast(pa.string()))
        elif pa.types.is_dictionary(array.type):
            encoded = array
        elif kind == "other":
            encoded = pc.dictionary_encode(pa.array([repr(v) for v in array.to_pylist()], pa.string()))
        else:
            encoded = pc.dictionary_encode(array)
        # Python's hash of str/bytes (SipHash, salted per process): consistent within one profile,
        # which is all a distinct count or a duplicate check needs; only the batch's unique values
        # cross into Python.
        dictionary = np.array([hash(v) for v in encoded.dictionary.to_pylist()] or [0], dtype=np.int64).view(
            np.uint64
        )
        indices = pc.fill_null(encoded.indices, 0).to_numpy(zero_copy_only=False)
        hashed = _splitmix(dictionary[np.asarray(indices, dtype=np.int64)])
    if array.null_count:
        valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        hashed = np.where(valid, hashed, np.uint64(_NULL_HASH))
    return hashed


# --------------------------------------------------------------------------------------------------
# streaming pieces
# --------------------------------------------------------------------------------------------------
class _Distinct:
    """Exact set of value hashes up to ``limit``, then the ``k`` smallest (k-minimum-values)."""

    def __init__(self, limit: int, k: int) -> None:
        import numpy as np

        self.limit, self.k = limit, k
        self.hashes = np.empty(0, dtype=np.uint64)
        self.exact = True

    def add(self, hashes: np.ndarray) -> None:
        import numpy as np

        if not self.exact:
            cut = self.hashes[-1]
            hashes = hashes[hashes < cut]
        merged = np.union1d(self.hashes, hashes)
        if self.exact and len(merged) > self.limit:
            self.exact = False
        self.hashes = merged if self.exact else merged[: self.k]

    def count(self) -> int:
        if self.exact:
            return len(self.hashes)
        # KMV: (k - 1) / (k-th smallest hash as a fraction of 2**64)
        return round((self.k - 1) / (float(self.hashes[-1]) / 2.0**64))


class _Moments:
    """Count, mean, M2, M3 of finite values, merged per batch (Pebay 2008)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: Any = 0.0
        self.m2: Any = 0.0
        self.m3: Any = 0.0

    def add(self, values: np.ndarray) -> None:
        import numpy as np

        nb = len(values)
        if not nb:
            return
        # numpy scalars: values near the float64 limits give inf / nan, not OverflowError
        with np.errstate(all="ignore"):
            mb = values.mean()
            dev = values - mb
            m2b, m3b = (dev**2).sum(), (dev**3).sum()
            na, n = np.float64(self.n), np.float64(self.n + nb)
            delta = mb - self.mean
            self.m3 = (
                self.m3
                + m3b
                + delta**3 * na * nb * (na - nb) / n**2
                + 3 * delta * (na * m2b - nb * self.m2) / n
            )
            self.m2 = self.m2 + m2b + delta**2 * na * nb / n
            self.mean = self.mean + delta * nb / n
        self.n += nb

    def std(self) -> float | None:
        return float(math.sqrt(self.m2 / (self.n - 1))) if self.n > 1 and self.m2 >= 0 else None

    def skew(self) -> float | None:
        """The adjusted Fisher-Pearson skewness (what pandas' ``Series.skew`` computes)."""
        n = self.n
        if n < 3 or not self.m2 > 0 or not math.isfinite(self.m2):
            return None
        g1 = math.sqrt(n) * float(self.m3) / float(self.m2) ** 1.5
        return float(g1 * math.sqrt(n * (n - 1)) / (n - 2))


class _Categories:
    """Exact counts up to ``limit`` categories, then Misra-Gries (counts become lower bounds)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[Any, int] = {}
        self.exact = True
        self.empty_strings = 0

    def add(self, array: pa.Array) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        if pa.types.is_boolean(array.type):
            array = array.cast(pa.string())
        counted = pc.value_counts(array.drop_null())
        counts = self.counts
        for value, count in zip(
            counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True
        ):
            counts[value] = counts.get(value, 0) + count
        if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
            self.empty_strings += int(pc.sum(pc.equal(array, "")).as_py() or 0)
        if len(counts) > self.limit:
            self.exact = False
            cut = sorted(counts.values(), reverse=True)[self.limit]
            self.counts = {k: v - cut for k, v in counts.items() if v > cut}


class _Sample:
    """The rows with the ``size`` smallest hashes of (position, seed): split-independent."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed
        self.parts: list[pa.Table] = []
        self.keys: list[np.ndarray] = []
        self.held = 0
        self.cut: int | None = None

    def add(self, batch: pa.RecordBatch, offset: int) -> None:
        import numpy as np
        import pyarrow as pa

        positions = np.arange(offset, offset + batch.num_rows, dtype=np.uint64)
        keys = _splitmix(positions ^ _splitmix(np.array([self.seed], dtype=np.uint64))[0])
        part = pa.Table.from_batches([batch])
        if self.cut is not None:
            keep = np.flatnonzero(keys <= np.uint64(self.cut))
            keys, positions = keys[keep], positions[keep]
            part = part.take(pa.array(keep))
        self.parts.append(part.append_column("__pos__", pa.array(positions)))
        self.keys.append(keys)
        self.held += len(keys)
        if self.held > self.size + self.size // 4:
            self._shrink()

    def _shrink(self) -> None:
        import numpy as np
        import pyarrow as pa

        table = pa.concat_tables(self.parts, promote_options="permissive")
        keys = np.concatenate(self.keys)
        if len(keys) > self.size:
            order = np.argpartition(keys, self.size - 1)[: self.size]
            keys = keys[order]
            table = table.take(pa.array(order))
            self.cut = int(keys.max())
        self.parts, self.keys, self.held = [table], [keys], len(keys)

    def table(self) -> pa.Table | None:
        import pyarrow.compute as pc

        if not self.parts:
            return None
        self._shrink()
        table = self.parts[0]
        return table.take(pc.sort_indices(table["__pos__"])).drop_columns(["__pos__"])


class _Duplicates:
    """64-bit row hashes: all while <= ``limit``, else those whose top ``level`` bits are 0."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.level = 0
        self.parts: list[np.ndarray] = []
        self.held = 0

    def add(self, hashes: np.ndarray) -> None:
        import numpy as np

        if self.level:
            hashes = hashes[(hashes >> np.uint64(64 - self.level)) == 0]
        self.parts.append(hashes)
        self.held += len(hashes)
        while self.held > self.limit:
            self.level += 1
            kept = np.concatenate(self.parts)
            kept = kept[(kept >> np.uint64(64 - self.level)) == 0]
            self.parts, self.held = [kept], len(kept)

    def result(self, rows: int) -> dict[str, Any]:
        import numpy as np

        # sorted in place, repeats counted as equal neighbours: one copy of the hashes, not the four
        # of np.sort + np.unique (the same count)
        kept = np.concatenate(self.parts) if self.parts else np.empty(0, dtype=np.uint64)
        self.parts = []
        kept.sort()
        repeated = int(np.count_nonzero(kept[1:] == kept[:-1])) if len(kept) else 0
        scale = 2**self.level
        return {
            "rows": repeated * scale,
            "share": (repeated * scale / rows) if rows else 0.0,
            "exact": self.level == 0,
            "method": (
                "64-bit hash of every row's values (null equals null, NaN equals NaN, a null is not a NaN, -0.0 == 0.0); a row is a "
                "duplicate when its hash was seen before"
                + (
                    ""
                    if self.level == 0
                    else f"; counted on the rows whose hash falls in 1/{scale} of the hash space "
                    f"(bound: {self.limit:,} hashes), scaled by {scale}"
                )
            ),
        }


class _Column:
    def __init__(self, name: str, dtype: pa.DataType, options: ProfileOptions) -> None:
        self.name, self.dtype, self.kind = name, dtype, _kind(dtype)
        self.nulls = self.nans = self.pos_inf = self.neg_inf = self.zeros = 0
        self.min: Any = None
        self.max: Any = None
        self.moments = _Moments()
        self.distinct = _Distinct(options.distinct_exact_limit, options.distinct_sketch_size)
        self.categories = (
            _Categories(options.category_limit) if self.kind in ("categorical", "boolean") else None
        )
        self.histogram: list[int] = []
        self.edges: list[float] = []
        self.outliers = {"low": 0, "high": 0}
        self.bounds: tuple[float, float] | None = None

    def add(self, array: pa.Array) -> np.ndarray:
        import numpy as np
        import pyarrow.compute as pc

        self.nulls += array.null_count
        if self.kind in ("numeric", "datetime"):
            values = _as_float(array, self.kind)
            nan = np.isnan(values)
            self.nans += int(nan.sum()) - array.null_count
            self.pos_inf += int(np.isposinf(values).sum())
            self.neg_inf += int(np.isneginf(values).sum())
            finite = values[np.isfinite(values)]
            self.zeros += int((finite == 0).sum())
            self.moments.add(finite)
            if len(finite):
                if self.kind == "numeric" and not _is_float(array):
                    low, high = (v.as_py() for v in pc.min_max(array).values())
                else:
                    low, high = _finite_min_max(array, finite, self.kind)
                self.min = low if self.min is None else min(self.min, low)
                self.max = high if self.max is None else max(self.max, high)
        elif self.categories is not None:
            self.categories.add(array)
        hashes = _value_hashes(array, self.kind)
        if array.null_count or self.nans:
            valid = _valid_values(array, self.kind)
            self.distinct.add(hashes[valid])
        else:
            self.distinct.add(hashes)
        return hashes


def _is_float(array: pa.Array) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_floating(array.type))


def _finite_min_max(array: pa.Array, finite: np.ndarray, kind: str) -> tuple[Any, Any]:
    import pyarrow.compute as pc

    if kind == "datetime":
        low, high = pc.min_max(array).values()
        return low.as_py(), high.as_py()
    return float(finite.min()), float(finite.max())


def _valid_values(array: pa.Array, kind: str) -> np.ndarray:
    import numpy as np

    valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if kind in ("numeric", "datetime") and _is_float(array):
        valid &= ~np.isnan(_as_float(array, kind))
    return valid


# --------------------------------------------------------------------------------------------------
# across columns, from the sample
# --------------------------------------------------------------------------------------------------
def _compact(*codes: np.ndarray) -> list[np.ndarray]:
    """Rows where every code is >= 0, each code renumbered 0..k-1."""
    import numpy as np

    valid = np.logical_and.reduce([c >= 0 for c in codes])
    return [np.unique(c[valid], return_inverse=True)[1].astype(np.int64) for c in codes]


def _table(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    import numpy as np

    r, k = int(x.max()) + 1, int(y.max()) + 1
    return np.bincount(x * k + y, minlength=r * k).reshape(r, k).astype(np.float64)


def _factorize(values: Any) -> np.ndarray:
    import numpy as np
    import pandas as pd

    return np.asarray(pd.factorize(pd.Series(values).astype(object), use_na_sentinel=True)[0], dtype=np.int64)


def cramers_v(x: Any, y: Any) -> float | None:
    """Bias-corrected Cramer's V (Bergsma 2013) of two aligned label arrays; None if undefined."""
    return _cramers_v(_factorize(x), _factorize(y))


def _cramers_v(x: np.ndarray, y: np.ndarray) -> float | None:
    x, y = _compact(x, y)
    n = len(x)
    if n < 2:
        return None
    table = _table(x, y)
    r, k = table.shape
    if r < 2 or k < 2:
        return None
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    phi2c = max(0.0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    rc = r - (r - 1) ** 2 / (n - 1)
    kc = k - (k - 1) ** 2 / (n - 1)
    denominator = min(kc - 1, rc - 1)
    if denominator <= 0:
        return None
    return float(min(1.0, math.sqrt(phi2c / denominator)))


def correlation_ratio(labels: Any, values: Any) -> float | None:
    """Correlation ratio (eta) of ``values`` grouped by ``labels``; None if undefined."""
    import numpy as np

    return _correlation_ratio(_factorize(labels), np.asarray(values, dtype=np.float64))


def _correlation_ratio(codes: np.ndarray, values: np.ndarray) -> float | None:
    import numpy as np

    valid = (codes >= 0) & np.isfinite(values)
    codes, values = np.unique(codes[valid], return_inverse=True)[1], values[valid]
    if len(values) < 2:
        return None
    mean = values.mean()
    total = float(((values - mean) ** 2).sum())
    if total <= 0:
        return None
    sums = np.bincount(codes, weights=values)
    counts = np.bincount(codes)
    between = float((counts * (sums / counts - mean) ** 2).sum())
    return float(min(1.0, math.sqrt(between / total)))


def predictive_power(labels: Any, classes: Any) -> float | None:
    """
    How much better than the majority class the majority class *per label* predicts ``classes``:
    ``(accuracy - baseline) / (1 - baseline)``, 1 = the label determines the class.
    """
    return _predictive_power(_factorize(labels), _factorize(classes))


def _predictive_power(x: np.ndarray, y: np.ndarray) -> float | None:
    x, y = _compact(x, y)
    n = len(y)
    if n < 2:
        return None
    table = _table(x, y)
    baseline = table.sum(0).max() / n
    if baseline >= 1:
        return None
    accuracy = table.max(1).sum() / n
    return float(max(0.0, (accuracy - baseline) / (1 - baseline)))


def _bin_codes(values: np.ndarray, bins: int) -> np.ndarray:
    """Quantile-bin codes of numbers (-1 where not finite)."""
    import numpy as np

    finite = np.isfinite(values)
    codes = np.full(len(values), -1, dtype=np.int64)
    if finite.any():
        edges = np.unique(np.quantile(values[finite], np.linspace(0, 1, bins + 1)))
        codes[finite] = np.searchsorted(edges[1:-1], values[finite], side="right")
    return codes


def _category_codes(array: Any, top: int) -> np.ndarray:
    """Dictionary codes of a sample column (-1 missing); categories past the ``top`` most frequent as one."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_boolean(array.type) or not (
        pa.types.is_string(array.type)
        or pa.types.is_large_string(array.type)
        or pa.types.is_binary(array.type)
    ):
        array = array.cast(pa.string()) if not pa.types.is_large_binary(array.type) else array
    encoded = pc.dictionary_encode(array)
    codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    valid = codes >= 0
    if valid.any():
        counts = np.bincount(codes[valid])
        if len(counts) > top:
            keep = np.zeros(len(counts), dtype=bool)
            keep[np.argsort(-counts, kind="stable")[:top]] = True
            codes = np.where(valid & ~keep[np.maximum(codes, 0)], len(counts), codes)
    return codes


def _sample_arrays(
    table: pa.Table, columns: dict[str, _Column], options: ProfileOptions
) -> dict[str, tuple[str, np.ndarray]]:
    """Each sample column once: ("num", float64 with NaN for missing / inf) or ("cat", codes)."""
    import numpy as np

    out: dict[str, tuple[str, np.ndarray]] = {}
    for name, column in columns.items():
        if column.kind in ("numeric", "datetime"):
            values = _as_float(table[name].combine_chunks(), column.kind)
            out[name] = ("num", np.where(np.isfinite(values), values, np.nan))
        elif column.kind in ("categorical", "boolean"):
            out[name] = ("cat", _category_codes(table[name], options.max_association_categories))
    return out


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    import numpy as np

    valid = np.isfinite(x) & np.isfinite(y)
    if valid.sum() < 3:
        return None
    a, b = x[valid] - x[valid].mean(), y[valid] - y[valid].mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else None


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks of the finite values (NaN stays NaN), like pandas' ``rank()`` (no pandas import)."""
    import numpy as np

    out = np.full(len(values), np.nan)
    finite = np.isfinite(values)
    if finite.any():
        _, inverse, counts = np.unique(values[finite], return_inverse=True, return_counts=True)
        ends = np.cumsum(counts).astype(np.float64)
        out[finite] = ((ends - counts + 1 + ends) / 2)[inverse]
    return out


def _target_relations(
    arrays: dict[str, tuple[str, np.ndarray]],
    columns: dict[str, _Column],
    target: str,
    options: ProfileOptions,
    skipped: dict[str, str],
) -> dict[str, Any]:
    import numpy as np

    tcol = columns[target]
    tkind, tvalues = arrays.get(target, ("other", np.empty(0)))
    categorical_target = tkind == "cat" or (
        tcol.kind == "numeric" and tcol.distinct.count() <= 20 and _integral(tvalues)
    )
    if tkind == "num" and categorical_target:
        classes = np.where(np.isfinite(tvalues), tvalues, np.nan)
        tcodes = np.full(len(classes), -1, dtype=np.int64)
        finite = np.isfinite(classes)
        tcodes[finite] = np.unique(classes[finite], return_inverse=True)[1]
    else:
        tcodes = tvalues if tkind == "cat" else np.empty(0, dtype=np.int64)
    out: dict[str, Any] = {
        "target": target,
        "kind": "categorical" if categorical_target else "numeric",
        "features": [],
    }
    for name in columns:
        if name == target or name not in arrays:
            continue
        if name in skipped:
            out["features"].append({"feature": name, "skipped": skipped[name]})
            continue
        kind, values = arrays[name]
        if categorical_target:
            both = (tcodes >= 0) & (np.isfinite(values) if kind == "num" else values >= 0)
        else:
            both = np.isfinite(tvalues) & (np.isfinite(values) if kind == "num" else values >= 0)
        entry: dict[str, Any] = {"feature": name, "rows": int(both.sum())}
        if entry["rows"] < 3:
            entry["skipped"] = "fewer than 3 rows with both values"
            out["features"].append(entry)
            continue
        if categorical_target:
            codes = _bin_codes(values, options.target_bins) if kind == "num" else values
            entry["cramers_v"] = _cramers_v(codes, tcodes)
            entry["predictive_power"] = _predictive_power(codes, tcodes)
            if kind == "num":
                entry["correlation_ratio"] = _correlation_ratio(tcodes, values)
            entry["score"] = entry["predictive_power"]
            entry["method"] = (
                "predictive power of the feature's "
                + (f"{options.target_bins} quantile bins" if kind == "num" else "categories")
                + " (majority class per bin vs overall)"
            )
        elif kind == "num":
            entry["pearson"] = _pearson(values, tvalues)
            entry["spearman"] = _pearson(
                _ranks(np.where(both, values, np.nan)), _ranks(np.where(both, tvalues, np.nan))
            )
            scores = [abs(v) for v in (entry["pearson"], entry["spearman"]) if v is not None]
            entry["score"] = max(scores) if scores else None
            entry["method"] = "max(|Pearson|, |Spearman|)"
        else:
            entry["correlation_ratio"] = _correlation_ratio(values, tvalues)
            entry["score"] = entry["correlation_ratio"]
            entry["method"] = "correlation ratio (eta) of the target by category"
        out["features"].append(entry)
    out["features"].sort(key=lambda e: -(e.get("score") if e.get("score") is not None else -1.0))
    return out


def _integral(values: Any) -> bool:
    import numpy as np

    numbers = np.asarray(values, dtype=np.float64)
    numbers = numbers[np.isfinite(numbers)]
    return bool(len(numbers)) and bool(np.all(numbers == np.round(numbers)))


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


# --------------------------------------------------------------------------------------------------
# the profile
# --------------------------------------------------------------------------------------------------
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
    for batch in make_batches():
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
        if column.kind != "numeric" or column.moments.n == 0:
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
        if column.kind in ("numeric", "datetime") and column.moments.n:
            if column.kind == "datetime":
                low, high = _epoch(column, column.min), _epoch(column, column.max)
            else:
                low, high = float(column.min), float(column.max)
            steps = np.linspace(0.0, 1.0, options.bins + 1)
            edges = low * (1 - steps) + high * steps  # no high - low: it overflows near the float64 limits
            edges[0], edges[-1] = low, high
            column.edges = list(np.maximum.accumulate(edges)) if high > low else [low, high]
            column.histogram = [0] * (len(column.edges) - 1)
    for batch in make_batches():
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


def _epoch(column: _Column, value: Any) -> float:
    import pyarrow as pa

    scalar = pa.array([value], column.dtype)
    return float(_as_float(scalar, "datetime")[0])


def _finite(arrays: dict[str, tuple[str, np.ndarray]], name: str) -> np.ndarray:
    import numpy as np

    kind, values = arrays.get(name, ("other", np.empty(0)))
    return values[np.isfinite(values)] if kind == "num" else np.empty(0)


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


def _correlations(
    arrays: dict[str, tuple[str, np.ndarray]], columns: dict[str, _Column], options: ProfileOptions
) -> dict[str, Any] | None:
    import numpy as np

    names = [
        c.name
        for c in columns.values()
        if c.kind == "numeric" and c.moments.n > 1 and c.moments.m2 > 0 and c.name in arrays
    ][: options.max_correlation_columns]
    if len(names) < 2:
        return None
    out: dict[str, Any] = {
        "columns": names,
        "method": "on the sample, each pair over the rows where both are finite (Spearman: Pearson of "
        "each column's average ranks among its own finite values)",
    }
    values = np.column_stack([arrays[n][1] for n in names])
    out["pearson"] = _pairwise(values, rank=False)
    out["spearman"] = _pairwise(values, rank=True)
    return out


def _pairwise(values: np.ndarray, *, rank: bool) -> list[list[float | None]]:
    """
    Pairwise-complete correlations in a few matrix products (each pair over the rows where both
    are finite; Spearman ranks each column once over its own finite values).
    """
    import numpy as np

    if rank:
        values = np.column_stack([_ranks(values[:, j]) for j in range(values.shape[1])])
    mask = np.isfinite(values)
    centered = np.where(mask, values - np.nanmean(np.where(mask, values, np.nan), axis=0), 0.0)
    m = mask.astype(np.float64)
    n = m.T @ m
    sx = centered.T @ m  # sx[i, j]: sum of column i over the rows where i and j are both finite
    sxx = (centered * centered).T @ m
    sxy = centered.T @ centered
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = n * sxy - sx * sx.T
        r = cov / np.sqrt((n * sxx - sx * sx) * (n * sxx.T - sx.T * sx.T))
    r[n < 3] = np.nan
    r = np.clip(r, -1.0, 1.0)
    out = [[float(v) if math.isfinite(v) else None for v in row] for row in r]
    for i in range(len(out)):
        if out[i][i] is not None:
            out[i][i] = 1.0
    return out


def _associations(
    arrays: dict[str, tuple[str, np.ndarray]],
    columns: dict[str, _Column],
    options: ProfileOptions,
    skipped: dict[str, str],
) -> dict[str, Any] | None:
    names = [
        c.name
        for c in columns.values()
        if c.kind in ("categorical", "boolean") and c.name not in skipped and c.name in arrays
    ][: options.max_correlation_columns]
    if len(names) < 2:
        return None
    matrix: list[list[float | None]] = [[None] * len(names) for _ in names]
    for i, a in enumerate(names):
        matrix[i][i] = 1.0
        for j in range(i + 1, len(names)):
            matrix[i][j] = matrix[j][i] = _cramers_v(arrays[a][1], arrays[names[j]][1])
    return {
        "columns": names,
        "cramers_v": matrix,
        "method": "bias-corrected Cramer's V (Bergsma 2013) on the sample, rows with both values, "
        f"top {options.max_association_categories} categories (rest grouped)",
        "skipped": {n: r for n, r in skipped.items() if columns[n].kind in ("categorical", "boolean")},
    }


def _warnings(
    summaries: list[dict[str, Any]],
    relations: dict[str, Any] | None,
    duplicates: dict[str, Any],
    options: ProfileOptions,
    target: str | None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def warn(kind: str, column: str | None, message: str) -> None:
        out.append({"kind": kind, "column": column, "message": message})

    for c in summaries:
        name = c["name"]
        if c["rows"] and c["non_missing"] == 0:
            warn("empty", name, "every value is missing")
            continue
        if c["distinct"] == 1:
            warn("constant", name, f"a single value in {c['non_missing']:,} rows")
        if c["missing_share"] >= options.many_missing:
            warn("many_missing", name, f"{c['missing_share']:.1%} missing")
        if c["kind"] == "categorical" and c["distinct"] > options.high_cardinality:
            unique = c["distinct"] >= c["non_missing"] and c["non_missing"] > 1
            warn(
                "high_cardinality",
                name,
                f"{c['distinct']:,} distinct values"
                + (" (every value unique: an identifier?)" if unique else ""),
            )
        skew = c.get("skewness")
        if skew is not None and abs(skew) > options.heavy_skew:
            warn("skewed", name, f"skewness {skew:.2f}")
        if c.get("pos_inf") or c.get("neg_inf"):
            warn("infinite", name, f"{c.get('pos_inf', 0) + c.get('neg_inf', 0):,} infinite values")
    if relations:
        for entry in relations["features"]:
            score = entry.get("score")
            if score is not None and score >= options.leakage:
                warn(
                    "leakage",
                    entry["feature"],
                    f"almost perfectly predicts the target {target!r} ({entry['method']}: {score:.3f}): "
                    "is it known at prediction time?",
                )
    if duplicates["rows"]:
        warn(
            "duplicates",
            None,
            f"{duplicates['rows']:,} duplicate rows ({duplicates['share']:.1%})"
            + ("" if duplicates["exact"] else ", estimated"),
        )
    return out
