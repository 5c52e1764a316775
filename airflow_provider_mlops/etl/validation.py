"""
Expected-schema validation, batch by batch (plain Python, no Airflow).

A spec, YAML/JSON friendly::

    {
        "columns": {
            "customer_id": {"type": "int64", "nullable": False},
            "age": {"type": "int64", "min": 0, "max": 120},
            "plan": {"allowed": ["free", "pro", "business"]},
            "email": {"regex": "^[^@]+@[^@]+$"},
        },
        "allow_extra_columns": True,
    }

A missing column or a wrong type is a schema error (raised at the first batch). Row rules
(``nullable``, ``min``, ``max``, ``allowed``, ``regex``) are counted per column and rule over the
whole stream; bad rows are either reported at the end (``fail``) or routed to a quarantine stream
with a ``_violations`` column naming the rules they broke (``quarantine``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.etl.steps import parse_type

if TYPE_CHECKING:
    import pyarrow as pa

ROW_RULES = ("nullable", "min", "max", "allowed", "regex")


class SchemaViolation(ValueError):
    """The data does not match the expected schema."""


@dataclass
class ValidationReport:
    """Counts of bad rows per ``column: rule``."""

    rows: int = 0
    bad_rows: int = 0
    violations: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        parts = [
            f"column {key.split(':', 1)[0]!r} rule {key.split(':', 1)[1]}: {count} bad row(s)"
            for key, count in self.violations.most_common()
        ]
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "bad_rows": self.bad_rows, "violations": dict(self.violations)}


class Validator:
    """Check batches against a spec; split each batch into good and bad rows."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        columns = spec.get("columns")
        if not isinstance(columns, Mapping) or not columns:
            raise ValueError("expected_schema needs a non-empty 'columns' mapping")
        unknown = {k for rules in columns.values() for k in rules} - {"type", *ROW_RULES}
        if unknown:
            raise ValueError(
                f"Unknown rule(s) {sorted(unknown)} in expected_schema; known: type, {ROW_RULES}"
            )
        self.columns: dict[str, dict[str, Any]] = {name: dict(rules) for name, rules in columns.items()}
        self.types = {
            name: parse_type(rules["type"]) for name, rules in self.columns.items() if "type" in rules
        }
        self.allow_extra = bool(spec.get("allow_extra_columns", True))
        self.report = ValidationReport()
        self._checked_schema = False

    def check_schema(self, schema: pa.Schema) -> None:
        missing = [c for c in self.columns if c not in schema.names]
        if missing:
            raise SchemaViolation(f"Column(s) {missing} are missing (columns: {schema.names})")
        for name, expected in self.types.items():
            actual = schema.field(name).type
            if actual != expected:
                raise SchemaViolation(f"Column {name!r} has type {actual}, expected {expected} (rule: type)")
        if not self.allow_extra:
            extra = [c for c in schema.names if c not in self.columns]
            if extra:
                raise SchemaViolation(f"Unexpected column(s) {extra} (allow_extra_columns is false)")

    def split(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.RecordBatch | None]:
        """Return (good rows, bad rows with a ``_violations`` column, or None when all are good)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not self._checked_schema:
            self.check_schema(batch.schema)
            self._checked_schema = True
        self.report.rows += batch.num_rows
        failures: list[tuple[str, pa.Array]] = []
        for name, rules in self.columns.items():
            column = batch.column(name)
            if rules.get("nullable") is False and column.null_count:
                failures.append((f"{name}:not_null", pc.is_null(column)))
            if "min" in rules:
                failures.append(
                    (f"{name}:min={rules['min']}", pc.fill_null(pc.less(column, rules["min"]), False))
                )
            if "max" in rules:
                failures.append(
                    (f"{name}:max={rules['max']}", pc.fill_null(pc.greater(column, rules["max"]), False))
                )
            if "allowed" in rules:
                allowed = pc.is_in(column, value_set=pa.array(list(rules["allowed"])))
                bad = pc.and_(pc.invert(allowed), pc.is_valid(column))
                failures.append((f"{name}:allowed", bad))
            if "regex" in rules:
                matches = pc.match_substring_regex(column, pattern=rules["regex"])
                failures.append((f"{name}:regex", pc.fill_null(pc.invert(matches), False)))
        if not failures:
            return batch, None
        any_bad = None
        for key, mask in failures:
            count = pc.sum(mask).as_py() or 0
            if count:
                self.report.violations[key] += count
            any_bad = mask if any_bad is None else pc.or_(any_bad, mask)
        bad_count = pc.sum(any_bad).as_py() or 0
        if not bad_count:
            return batch, None
        self.report.bad_rows += bad_count
        good = batch.filter(pc.invert(any_bad))
        bad = batch.filter(any_bad)
        labels = []
        bad_masks = [(key, mask.filter(any_bad).to_pylist()) for key, mask in failures]
        for row in range(bad.num_rows):
            labels.append(",".join(key for key, values in bad_masks if values[row]))
        return good, bad.append_column("_violations", pa.array(labels, pa.string()))

    def raise_if_invalid(self) -> None:
        if self.report.bad_rows:
            raise SchemaViolation(
                f"{self.report.bad_rows} of {self.report.rows} rows violate the expected schema: {self.report.summary()}"
            )
