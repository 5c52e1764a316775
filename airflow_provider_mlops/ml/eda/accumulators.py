"""
The first pass's per-column accumulators: value hashes, distinct values, moments, category counts,
the row sample and the duplicate row hashes (each bounded whatever the number of rows).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from airflow_provider_mlops.ml.eda.options import ProfileOptions

_GOLDEN = 0x9E3779B97F4A7C15

_NULL_HASH = 0x5BD1E9955BD1E995


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
    if t.is_string(dtype) or t.is_large_string(dtype) or t.is_dictionary(dtype):
        return "categorical"
    if t.is_binary(dtype) or t.is_large_binary(dtype) or t.is_fixed_size_binary(dtype):
        return "categorical"
    return "other"


def _canonical(array: pa.Array) -> pa.Array:
    """
    The array in a layout every kernel used here supports: extension types as their storage, run-end
    encoded arrays decoded, string / binary views as large string / binary (same values), and
    dictionary-encoded numbers, booleans and dates decoded (the encoding is a storage detail: they
    are profiled as what they are; dictionary-encoded text stays as it is).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    if pa.types.is_run_end_encoded(array.type):
        array = pc.run_end_decode(array)
    if pa.types.is_dictionary(array.type) and _kind(array.type.value_type) != "categorical":
        array = array.dictionary_decode()
    if pa.types.is_string_view(array.type):
        return array.cast(pa.large_string())
    if pa.types.is_binary_view(array.type):
        return array.cast(pa.large_binary())
    return array


def _epoch_ints(array: pa.Array) -> pa.Array:
    """
    A date / time / timestamp / duration array as int64 of its stored unit (days, s, ms, us, ns from
    the epoch or midnight): a reinterpretation of the storage, so every unit and time zone works
    (Arrow has no date32 -> int64 cast).
    """
    import pyarrow as pa

    storage = pa.int32() if array.type.bit_width == 32 else pa.int64()
    return array.view(storage).cast(pa.int64())


def _from_epoch(dtype: pa.DataType, value: int) -> Any:
    """The Python value of ``value`` (int64 of the stored unit) as type ``dtype``."""
    import pyarrow as pa

    storage = pa.int32() if dtype.bit_width == 32 else pa.int64()
    return pa.array([value], storage).view(dtype)[0].as_py()


def _as_float(array: pa.Array, kind: str) -> np.ndarray:
    """The column as float64 (nulls as NaN); datetimes as their integer epoch value."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind == "datetime":
        return np.asarray(_epoch_ints(array).to_numpy(zero_copy_only=False), dtype=np.float64)
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
            ints = _epoch_ints(array) if kind == "datetime" else array
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
        m2, m3 = float(self.m2), float(self.m3)
        if not math.isfinite(m3):
            return None
        # m3 / m2 / sqrt(m2), not m3 / m2 ** 1.5: m2 ** 1.5 overflows for values near 1e100 and more
        # (a constant column of such values has a tiny rounding m2 > 0, far from the float limits)
        g1 = math.sqrt(n) * (m3 / m2) / math.sqrt(m2)
        skew = g1 * math.sqrt(n * (n - 1)) / (n - 2)
        return float(skew) if math.isfinite(skew) else None


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
        self.epoch: tuple[int, int] | None = None  # datetimes: (min, max) as int64 of the stored unit
        self.moments = _Moments()
        self.distinct = _Distinct(options.distinct_exact_limit, options.distinct_sketch_size)
        self.categories = (
            _Categories(options.category_limit) if self.kind in ("categorical", "boolean") else None
        )
        self.histogram: list[int] = []
        self.edges: list[float] = []
        self.outliers = {"low": 0, "high": 0}
        self.bounds: tuple[float, float] | None = None
        #: why the column could not be summarised (an Arrow kernel refused its type), else None
        self.error: str | None = None

    def add(self, array: pa.Array) -> np.ndarray:
        """
        Count one batch of the column; the row hashes of its values. A type the kernels refuse marks
        the column unsupported (named in the profile's warnings) and hashes as null from then on.
        """
        import numpy as np

        if self.error is None:
            try:
                return self._add(array)
            except Exception as exc:  # any kernel error: the column is reported, not fatal
                self.error = f"{type(exc).__name__}: {exc}"
        self.nulls += array.null_count
        return np.full(len(array), np.uint64(_NULL_HASH))

    def _add(self, array: pa.Array) -> np.ndarray:
        import numpy as np
        import pyarrow.compute as pc

        nulls = array.null_count
        if self.kind in ("numeric", "datetime"):
            values = _as_float(array, self.kind)
            nan = np.isnan(values)
            nans = int(nan.sum()) - nulls
            finite = values[np.isfinite(values)]
            low = high = None
            if len(finite):
                if self.kind == "datetime":
                    lo, hi = (v.as_py() for v in pc.min_max(_epoch_ints(array)).values())
                    self.epoch = (
                        (lo, hi) if self.epoch is None else (min(self.epoch[0], lo), max(self.epoch[1], hi))
                    )
                elif not _is_float(array):
                    low, high = (v.as_py() for v in pc.min_max(array).values())
                else:
                    low, high = float(finite.min()), float(finite.max())
            hashes = _value_hashes(array, self.kind)
            self.nans += nans
            self.pos_inf += int(np.isposinf(values).sum())
            self.neg_inf += int(np.isneginf(values).sum())
            self.zeros += int((finite == 0).sum())
            self.moments.add(finite)
            if low is not None:
                self.min = low if self.min is None else min(self.min, low)
                self.max = high if self.max is None else max(self.max, high)
            if self.kind == "datetime" and self.epoch is not None:
                self.min, self.max = (_from_epoch(self.dtype, v) for v in self.epoch)
        else:
            hashes = _value_hashes(array, self.kind)
            if self.categories is not None:
                self.categories.add(array)
        self.nulls += nulls
        if nulls or self.nans:
            valid = _valid_values(array, self.kind)
            self.distinct.add(hashes[valid])
        else:
            self.distinct.add(hashes)
        return hashes


def _is_float(array: pa.Array) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_floating(array.type))


def _valid_values(array: pa.Array, kind: str) -> np.ndarray:
    import numpy as np

    valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if kind in ("numeric", "datetime") and _is_float(array):
        valid &= ~np.isnan(_as_float(array, kind))
    return valid
