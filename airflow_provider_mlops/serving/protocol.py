"""
MLflow's scoring protocol, parsed into a validated DataFrame (pure logic: no web framework here).

Accepted like ``mlflow models serve``: JSON with one of ``dataframe_split`` (``{"columns": [...],
"data": [[...]]}``), ``dataframe_records`` (``[{...}]``), ``instances`` or ``inputs`` (records, a
dict of columns, or rows in the schema's column order), and ``text/csv`` with a header. The answer is
``{"predictions": [...]}``.

Validation happens before the model sees a row, and every refusal names what is wrong: missing and
unknown columns, values that do not fit a column's type, too many rows.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

NUMERIC = {"double", "float", "long", "integer", "number", "boolean"}


class RequestError(ValueError):
    """A request the server refuses: ``status`` is the HTTP status, the message names the problem."""

    def __init__(self, message: str, status: int = 400, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    def body(self) -> dict[str, str]:
        # MLflow's scoring server answers errors with this shape.
        return {"error_code": self.code, "message": str(self)}


@dataclass(frozen=True)
class InputSchema:
    """The columns a model expects, in order, and their MLflow types (``None`` when unknown)."""

    columns: tuple[str, ...]
    types: tuple[str | None, ...]

    @classmethod
    def for_model(cls, model: Any, signature: Any = None) -> InputSchema | None:
        """From an MLflow signature when there is one, else the fitted model's ``feature_names_in_``."""
        inputs = getattr(signature, "inputs", None)
        if inputs is not None and getattr(inputs, "has_input_names", lambda: False)():
            names, types = [], []
            for spec in inputs.inputs:
                names.append(str(spec.name))
                kind = getattr(spec, "type", None)
                types.append(str(getattr(kind, "name", kind)) if kind is not None else None)
            return cls(tuple(names), tuple(types))
        fitted = getattr(model, "feature_names_in_", None)
        if fitted is not None:
            return cls(tuple(str(n) for n in fitted), tuple(None for _ in fitted))
        return None

    def describe(self) -> list[dict[str, str | None]]:
        return [{"name": n, "type": t} for n, t in zip(self.columns, self.types, strict=True)]


def parse_request(
    body: bytes, content_type: str | None, schema: InputSchema | None, *, max_rows: int
) -> pd.DataFrame:
    """The request body as a DataFrame in the schema's column order, or :class:`RequestError`."""
    import pandas as pd

    kind = (content_type or "application/json").split(";")[0].strip().lower()
    if kind == "text/csv":
        try:
            frame = pd.read_csv(io.BytesIO(body))
        except Exception as err:
            raise RequestError(f"The CSV body could not be read: {err}") from None
    elif kind in ("application/json", ""):
        try:
            payload = json.loads(body or b"null")
        except ValueError as err:
            raise RequestError(f"The body is not valid JSON: {err}") from None
        frame = _frame_from_json(payload, schema)
    else:
        raise RequestError(
            f"Content type {kind!r} is not supported: send application/json or text/csv",
            status=415,
            code="UNSUPPORTED_MEDIA_TYPE",
        )
    if len(frame) > max_rows:
        raise RequestError(
            f"{len(frame)} rows is more than this server accepts per request ({max_rows}): split the batch",
            status=413,
            code="REQUEST_TOO_LARGE",
        )
    if len(frame) == 0:
        raise RequestError("The request holds no rows")
    return conform(frame, schema)


def _frame_from_json(payload: Any, schema: InputSchema | None) -> pd.DataFrame:
    import pandas as pd

    if not isinstance(payload, dict):
        raise RequestError(
            "The JSON body must be an object with one of 'dataframe_split', 'dataframe_records', "
            "'instances' or 'inputs'"
        )
    keys = [k for k in ("dataframe_split", "dataframe_records", "instances", "inputs") if k in payload]
    if len(keys) != 1:
        raise RequestError(
            "The JSON body must hold exactly one of 'dataframe_split', 'dataframe_records', "
            f"'instances' or 'inputs' (got {sorted(payload)})"
        )
    key, value = keys[0], payload[keys[0]]
    try:
        if key == "dataframe_split":
            if not isinstance(value, dict) or "data" not in value:
                raise RequestError('\'dataframe_split\' must be {"columns": [...], "data": [[...], ...]}')
            columns = value.get("columns") or (list(schema.columns) if schema else None)
            return pd.DataFrame(value["data"], columns=columns)
        if key == "dataframe_records":
            if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
                raise RequestError("'dataframe_records' must be a list of objects, one per row")
            return pd.DataFrame.from_records(value)
        # instances / inputs
        if isinstance(value, dict):
            return pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in value.items()})
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            return pd.DataFrame.from_records(value)
        if isinstance(value, list) and all(isinstance(r, list) for r in value):
            if schema is None:
                raise RequestError(f"'{key}' as rows of values needs a model with named inputs")
            return pd.DataFrame(value, columns=list(schema.columns))
        raise RequestError(f"'{key}' must be a list of objects, a list of rows or an object of columns")
    except RequestError:
        raise
    except (ValueError, TypeError) as err:
        raise RequestError(f"'{key}' does not describe a table: {err}") from None


def _check_columns(present: list[str], schema: InputSchema) -> None:
    missing = [c for c in schema.columns if c not in present]
    unknown = [c for c in present if c not in schema.columns]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if unknown:
            parts.append(f"unknown column(s) {unknown}")
        raise RequestError(f"{'; '.join(parts)}: the model expects {list(schema.columns)}")


def _numeric(name: str, kind: str, values: Any) -> Any:
    import numpy as np

    out = np.empty(len(values), dtype="float64")
    integral = True
    for i, value in enumerate(values):
        if value is None:
            out[i] = np.nan
            integral = False
            continue
        if isinstance(value, bool | int | float | np.number):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise RequestError(
                    f"column {name!r} expects {kind}, got {value!r} (str) in row {i}"
                ) from None
        else:
            raise RequestError(
                f"column {name!r} expects {kind}, got {value!r} ({type(value).__name__}) in row {i}"
            )
        out[i] = number
        integral = integral and number.is_integer()
    # Keep integer columns integer when they can be (the model was fitted on int64).
    return out.astype("int64") if kind in ("long", "integer") and integral else out


def _strings(name: str, values: Any) -> Any:
    import numpy as np

    for i, value in enumerate(values):
        if value is not None and not isinstance(value, str):
            if isinstance(value, float) and math.isnan(value):
                continue
            raise RequestError(
                f"column {name!r} expects string, got {value!r} ({type(value).__name__}) in row {i}"
            )
    return np.asarray(values, dtype=object)


def conform(frame: pd.DataFrame, schema: InputSchema | None) -> pd.DataFrame:
    """Check the columns and types against ``schema``; return the columns in the schema's order."""
    import pandas as pd

    if schema is None:
        return frame
    _check_columns([str(c) for c in frame.columns], schema)
    columns = {}
    for name, kind in zip(schema.columns, schema.types, strict=True):
        values = frame[name].tolist()
        if kind in NUMERIC:
            columns[name] = _numeric(name, kind, values)
        elif kind == "string":
            columns[name] = _strings(name, values)
        else:
            columns[name] = frame[name].to_numpy()
    return pd.DataFrame(columns, copy=False)


def predictions_body(predictions: Any) -> bytes:
    """``{"predictions": [...]}`` as MLflow answers it (NumPy types become JSON numbers)."""
    values = predictions.tolist() if hasattr(predictions, "tolist") else list(predictions)
    return json.dumps({"predictions": values}, separators=(",", ":")).encode()
