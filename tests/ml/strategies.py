"""
Hypothesis generators for the ML path (issue 28): labelled Arrow tables with every column type the
provider's sources produce, in awkward shapes, with a task kind and a split strategy.

A column's name says its kind (``f2_date``, ``f0_text_case``): an error that "names the column" can be
checked by substring, and a failing example reads at a glance. The target is always ``label_y`` and
the time column of a time split ``event_day`` (a DATE, as a warehouse table has).

Reused by :mod:`tests.ml.test_ml_path_properties`; the kinds are the sources' Arrow types (Parquet,
PostgreSQL COPY, MongoDB, JSON Lines, CSV): see tests/datasets/test_roundtrip_property.py for the ETL's.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

TARGET = "label_y"
TIME_COLUMN = "event_day"
TASKS = ("binary", "multiclass", "regression")
SPLITS = ("auto", "stratified", "random", "time")

# Values kept modest: the point is the type and the shape, not float extremes (those have their own kind).
_FLOAT = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
_INT = st.integers(min_value=-1000, max_value=1000)
_DATE = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2030, 12, 31))
_NAIVE = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2030, 12, 31))
_TIME = st.times()
_DECIMAL = st.decimals(min_value=-10_000, max_value=10_000, places=4, allow_nan=False, allow_infinity=False)
# The same word in the case and whitespace spellings sources deliver: each spelling is its own value.
_TEXT_VARIANTS = ("red", "Red", "RED", " red", "red ", "blue", "Blue", "green", "")


def _floats_with_specials() -> st.SearchStrategy[float]:
    return _FLOAT | st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0])


# kind -> (Arrow type, value strategy, may hold nulls)
KINDS: dict[str, tuple[pa.DataType, st.SearchStrategy[Any], bool]] = {
    "bool": (pa.bool_(), st.booleans(), True),
    "int_nulls": (pa.int64(), _INT, True),
    "int": (pa.int64(), _INT, False),
    "float": (pa.float64(), _FLOAT, True),
    "float_special": (pa.float64(), _floats_with_specials(), True),
    "decimal": (pa.decimal128(18, 4), _DECIMAL, True),
    "date": (pa.date32(), _DATE, True),
    "time": (pa.time64("us"), _TIME, True),
    "timestamp": (pa.timestamp("us"), _NAIVE, True),
    "timestamp_tz": (pa.timestamp("us", tz="UTC"), _NAIVE.map(lambda t: t.replace(tzinfo=dt.UTC)), True),
    "text_case": (pa.string(), st.sampled_from(_TEXT_VARIANTS), True),
    "binary": (pa.binary(), st.binary(min_size=1, max_size=8), True),
    "list": (pa.list_(pa.string()), st.lists(st.sampled_from(["x", "y", "z"]), max_size=3), True),
    # shapes of a column rather than types: generated whole in _column()
    "all_null": (pa.string(), st.none(), True),
    "null_type": (pa.null(), st.none(), True),
    "constant": (pa.string(), st.just("same"), False),
    "high_cardinality": (pa.string(), st.none(), False),
}
# Kinds a model can learn from without any type question: the "clean" baseline of a table.
PLAIN_KINDS = ("bool", "int", "int_nulls", "float", "text_case")
TEMPORAL_KINDS = ("date", "time", "timestamp", "timestamp_tz")
ALL_KINDS = tuple(KINDS)


def column_kind(name: str) -> str:
    """The kind a generated column's name carries (``f3_timestamp_tz`` -> ``timestamp_tz``)."""
    return name.split("_", 1)[1] if name.startswith("f") and "_" in name else name


@st.composite
def arrow_column(draw: st.DrawFn, kind: str, rows: int) -> pa.Array:
    """``rows`` values of ``kind`` as an Arrow array (nulls sprinkled in where the kind allows them)."""
    data_type, values, nullable = KINDS[kind]
    if kind == "high_cardinality":
        return pa.array([f"id-{i:06d}-{draw(st.integers(0, 9))}" for i in range(rows)], data_type)
    if kind in ("all_null", "null_type"):
        return pa.nulls(rows, data_type)
    if kind == "constant":
        return pa.array(["same"] * rows, data_type)
    element = (st.none() | values) if nullable else values
    column = draw(st.lists(element, min_size=rows, max_size=rows))
    if kind == "decimal":
        column = [
            None if v is None else decimal.Decimal(v).quantize(decimal.Decimal("0.0001")) for v in column
        ]
    return pa.array(column, data_type)


@dataclass
class MLCase:
    """One generated training problem: the table, what to learn and how to split."""

    table: pa.Table
    task: str  # binary | multiclass | regression
    split: str  # auto | stratified | random | time
    time_column: str | None = None
    shape: str = "plain"
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return TARGET

    @property
    def features(self) -> list[str]:
        return [c for c in self.table.column_names if c not in (TARGET, self.time_column)]

    @property
    def operator_task(self) -> str:
        return "regression" if self.task == "regression" else "classification"

    def __repr__(self) -> str:  # what Hypothesis prints for a falsifying example
        return (
            f"MLCase(task={self.task!r}, split={self.split!r}, shape={self.shape!r}, "
            f"rows={self.table.num_rows}, schema={[f'{f.name}: {f.type}' for f in self.table.schema]}, "
            f"labels={self.table.column(TARGET).to_pylist()!r})"
        )


def _labels(draw: st.DrawFn, task: str, rows: int, shape: str) -> tuple[pa.Array, dict[str, Any]]:
    """The target column for ``task`` and ``shape`` (a rare class, a class only in the oldest rows)."""
    if task == "regression":
        values = draw(st.lists(_FLOAT, min_size=rows, max_size=rows))
        return pa.array(values, pa.float64()), {}
    if task == "binary":
        encoding = draw(st.sampled_from(["int", "bool", "text"]))
        classes: list[Any] = {"int": [0, 1], "bool": [False, True], "text": ["no", "yes"]}[encoding]
    else:
        classes = ["amber", "Blue", "cyan", "dusk"][: draw(st.integers(3, 4))]
    # plain: the classes in turn (balanced), shuffled; rare_class: the last class exactly twice
    common = classes if shape != "rare_class" else classes[:-1]
    rare = [] if shape != "rare_class" else [classes[-1]] * 2
    labels = [*rare, *(common[i % len(common)] for i in range(rows - len(rare)))]
    order = draw(st.permutations(range(rows)))
    labels = [labels[i] for i in order]
    notes: dict[str, Any] = {"classes": classes}
    if shape == "class_absent_from_split":
        # the last class only in the oldest rows: a time split leaves it out of the holdout
        absent = classes[-1]
        others = [c for c in classes if c != absent]
        head = max(2, rows // 5)
        labels = [
            absent if i < head else (c if c != absent else others[i % len(others)])
            for i, c in enumerate(labels)
        ]
        notes["absent_from_holdout"] = absent
    pa_type = pa.int64() if isinstance(classes[0], int) and not isinstance(classes[0], bool) else None
    return pa.array(labels, pa_type), notes


@st.composite
def ml_cases(
    draw: st.DrawFn,
    *,
    kinds: tuple[str, ...] = ALL_KINDS,
    tasks: tuple[str, ...] = TASKS,
    splits: tuple[str, ...] = SPLITS,
    shapes: tuple[str, ...] = ("plain", "tiny", "rare_class", "class_absent_from_split", "one_feature"),
    min_features: int = 1,
    max_features: int = 4,
) -> MLCase:
    """
    A labelled table: a few feature columns of the given ``kinds`` (with always one plain numeric
    column carrying some signal, unless the shape is ``one_feature``), a target for the task, and a
    DATE column ``event_day`` in row order when the split is by time.
    """
    task = draw(st.sampled_from(tasks))
    split = draw(st.sampled_from(splits))
    shape = draw(st.sampled_from(shapes))
    if task == "regression" and shape in ("rare_class", "class_absent_from_split"):
        shape = "plain"
    if shape == "class_absent_from_split":
        split = "time"
    if task == "regression" and split == "stratified":
        split = "random"
    rows = draw(st.integers(12, 16)) if shape == "tiny" else draw(st.integers(40, 90))
    labels, notes = _labels(draw, task, rows, shape)
    columns: dict[str, pa.Array] = {}
    if shape == "one_feature":
        chosen = [draw(st.sampled_from(kinds))]
    else:
        chosen = draw(st.lists(st.sampled_from(kinds), min_size=min_features, max_size=max_features))
        # a numeric column that follows the label, so a model has something to learn
        values = labels.to_pylist()
        classes = sorted({str(v) for v in values})
        signal = [
            (v * 1e-5 if task == "regression" else classes.index(str(v))) + draw(st.floats(0, 0.5))
            for v in values
        ]
        columns["f9_float"] = pa.array(signal, pa.float64())
    for i, kind in enumerate(chosen):
        columns[f"f{i}_{kind}"] = draw(arrow_column(kind, rows))
    time_column = None
    if split == "time":
        time_column = TIME_COLUMN
        start = draw(_DATE)
        columns[TIME_COLUMN] = pa.array([start + dt.timedelta(days=i) for i in range(rows)], pa.date32())
    columns[TARGET] = labels
    return MLCase(pa.table(columns), task, split, time_column, shape, notes)


def typical_column(kind: str, rows: int, seed: int = 0) -> pa.Array:
    """
    A deterministic column of ``kind`` as real data has it (varied values, about 10 % nulls where the
    kind allows them): for the per-type tests, where a shrunk Hypothesis example (all nulls) would
    prove nothing.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    data_type, _, nullable = KINDS[kind]
    if kind in ("all_null", "null_type"):
        return pa.nulls(rows, data_type)
    if kind == "constant":
        return pa.array(["same"] * rows, data_type)
    if kind == "high_cardinality":
        return pa.array([f"id-{i:06d}-{rng.integers(10)}" for i in range(rows)], data_type)
    day = dt.date(2024, 1, 1)
    moment = dt.datetime(2024, 1, 1, 6, 30)
    make = {
        "bool": lambda i: bool(rng.integers(2)),
        "int_nulls": lambda i: int(rng.integers(-50, 50)),
        "int": lambda i: int(rng.integers(-50, 50)),
        "float": lambda i: float(rng.normal(10, 3)),
        "float_special": lambda i: float(
            rng.choice([rng.normal(), math.nan, math.inf, -math.inf], p=[0.85, 0.05, 0.05, 0.05])
        ),
        "decimal": lambda i: decimal.Decimal(f"{rng.normal(100, 20):.4f}"),
        "date": lambda i: day + dt.timedelta(days=int(rng.integers(0, 400))),
        "time": lambda i: dt.time(int(rng.integers(24)), int(rng.integers(60)), int(rng.integers(60))),
        "timestamp": lambda i: moment + dt.timedelta(minutes=int(rng.integers(0, 500_000))),
        "timestamp_tz": lambda i: (moment + dt.timedelta(minutes=int(rng.integers(0, 500_000)))).replace(
            tzinfo=dt.UTC
        ),
        "text_case": lambda i: str(rng.choice(_TEXT_VARIANTS)),
        "binary": lambda i: bytes(rng.integers(0, 256, int(rng.integers(1, 6))).astype("uint8")),
        "list": lambda i: [str(v) for v in rng.choice(["x", "y", "z"], int(rng.integers(0, 4)))],
    }[kind]
    values = [make(i) for i in range(rows)]
    if nullable and kind != "int":
        values = [None if rng.random() < 0.1 else v for v in values]
    return pa.array(values, data_type)


def wide_table(features: int = 1000, rows: int = 60, seed: int = 0) -> pa.Table:
    """``features`` float columns (one carries the label) and a binary ``label_y``: the 1,000-feature shape."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, rows)
    columns = {f"w{i:04d}_float": rng.normal(size=rows) for i in range(features)}
    columns["w0000_float"] = labels + rng.normal(scale=0.3, size=rows)
    columns[TARGET] = labels
    return pa.table(columns)
