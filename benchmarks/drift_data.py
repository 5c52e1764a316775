"""
Data for the drift benchmarks: 25 columns (20 numeric, 5 categorical) of varied shapes.

Plain numpy + pyarrow and no import of the provider, because the same module runs in the
Evidently venv (pandas < 3) and in the provider's environment: both sides generate the same rows
from the same seed, and :func:`checksum` proves it (the runner compares the two checksums).

Columns: ``n00``-``n19`` are normal, log-normal, exponential, uniform, Poisson counts, a bimodal
mixture and a t distribution, some with ~1% nulls; ``c0``-``c4`` are categorical with 4, 5, 8, 20
and 50 categories of Zipf-like shares.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa

NUMERIC = [f"n{i:02d}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
LEVELS = {"c0": 4, "c1": 5, "c2": 8, "c3": 20, "c4": 50}

# The five columns shifted in the 1M-row comparison, and how.
SHIFTED = {
    "n00": "mean + 0.5 SD (normal)",
    "n08": "values x 1.5 (log-normal)",
    "n10": "uniform range moved by 20%",
    "c1": "category shares reversed",
    "c3": "30% of rows moved to one category",
}

# The calibration's "mixed" current sample: one change per column, the other 19 columns unchanged.
POWER = {
    "n00": ("mean shift 0.1 SD", 0.1),
    "n01": ("mean shift 0.25 SD", 0.25),
    "n02": ("mean shift 0.5 SD", 0.5),
    "c0": ("new category at 5%", 0.05),
    "n03": ("null surge +20%", 0.2),
    "c2": ("null surge +20%", 0.2),
}


def _shares(k: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, k + 1) ** 0.8
    return weights / weights.sum()


def _numeric(rng: np.random.Generator, i: int, n: int) -> tuple[np.ndarray, float]:
    """Column ``n{i}``: (values, the population standard deviation of its distribution)."""
    kind = i % 7
    if kind == 0:
        return rng.normal(10 * i, 1 + i, n), 1.0 + i
    if kind == 1:
        sigma = 0.5 + i / 40
        return rng.lognormal(0, sigma, n), float(np.sqrt((np.exp(sigma**2) - 1) * np.exp(sigma**2)))
    if kind == 2:
        return rng.exponential(2 + i, n), 2.0 + i
    if kind == 3:
        return rng.uniform(-i, i + 1, n), (2 * i + 1) / np.sqrt(12)
    if kind == 4:
        return rng.poisson(3 + i, n).astype("float64"), float(np.sqrt(3 + i))
    if kind == 5:
        mode = rng.random(n) < 0.3
        return np.where(mode, rng.normal(-2, 0.5, n), rng.normal(3, 1, n)), float(np.sqrt(6.025))
    return rng.standard_t(5, n) * (1 + i / 10), float(np.sqrt(5 / 3) * (1 + i / 10))


def table(seed: int, n: int, change: dict[str, Any] | None = None) -> pa.Table:
    """
    ``n`` rows from seed ``seed``. ``change`` names columns to alter: ``"shifted"`` applies
    :data:`SHIFTED`, ``"power"`` applies :data:`POWER`; None leaves the distribution as it is.
    """
    rng = np.random.default_rng(seed)
    mode = (change or {}).get("mode")
    columns: dict[str, pa.Array] = {}
    for i, name in enumerate(NUMERIC):
        values, sd = _numeric(rng, i, n)
        # mean shifts in standard deviations of the column's distribution (normal, log-normal, exponential)
        if mode == "power" and name in ("n00", "n01", "n02"):
            values = values + POWER[name][1] * sd
        if mode == "shifted":
            if name == "n00":
                values = values + 0.5 * sd
            elif name == "n08":
                values = values * 1.5
            elif name == "n10":
                values = values + 0.2 * (2 * 10 + 1)
        mask = None
        if i % 4 == 1:
            mask = rng.random(n) < 0.01
        if mode == "power" and name == "n03":
            surge = rng.random(n) < POWER[name][1]
            mask = surge if mask is None else mask | surge
        columns[name] = pa.array(values, mask=mask)
    for name in CATEGORICAL:
        k = LEVELS[name]
        shares = _shares(k)
        if mode == "shifted" and name == "c1":
            shares = shares[::-1]
        codes = rng.choice(k, size=n, p=shares)
        if mode == "shifted" and name == "c3":
            codes = np.where(rng.random(n) < 0.3, k - 1, codes)
        labels = np.array([f"{name}_{j}" for j in range(k)] + [f"{name}_new"], dtype=object)
        if mode == "power" and name == "c0":
            codes = np.where(rng.random(n) < POWER[name][1], k, codes)
        mask = rng.random(n) < 0.01 if name == "c4" else None
        if mode == "power" and name == "c2":
            mask = rng.random(n) < POWER[name][1]
        columns[name] = pa.array(labels[codes], pa.string(), mask=mask)
    return pa.table(columns)


def checksum(data: pa.Table) -> str:
    """A digest of the values (not of the Parquet bytes), equal across pyarrow/numpy versions."""
    digest = hashlib.sha256()
    for name in data.column_names:
        column = data.column(name).combine_chunks()
        digest.update(name.encode())
        for buffer in column.buffers():
            if buffer is not None:
                digest.update(memoryview(buffer))
    return digest.hexdigest()[:16]


def write(path: str, seed: int, n: int, change: dict[str, Any] | None = None, chunk: int = 250_000) -> str:
    """Write ``n`` rows as Parquet in row groups of ``chunk`` (each its own seed); return the checksum."""
    import pyarrow.parquet as pq

    writer = None
    digest = hashlib.sha256()
    for index, offset in enumerate(range(0, n, chunk)):
        part = table(seed * 1000 + index, min(chunk, n - offset), change)
        digest.update(checksum(part).encode())
        if writer is None:
            writer = pq.ParquetWriter(path, part.schema, compression="zstd")
        writer.write_table(part, row_group_size=chunk)
    assert writer is not None
    writer.close()
    return digest.hexdigest()[:16]
