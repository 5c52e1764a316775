"""
What the frozen source and sink specs share: errors that name the field, and templated fields.

A spec (:mod:`airflow_provider_mlops.sources`, :mod:`airflow_provider_mlops.sinks`) is a frozen
dataclass checked when it is built. The fields named in its ``templated`` are Jinja-rendered by the
operator when the task runs: Airflow renders an object with ``template_fields`` by setting its
attributes, which a frozen spec refuses, so the operator renders a copy (:meth:`Spec.render`, called
from the operator's ``render_template_fields``). A plain module: nothing heavy is imported.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Self

if TYPE_CHECKING:
    from collections.abc import Callable


def fail(spec: object, field: str, problem: str) -> None:
    """Raise ``ValueError("<Spec>.<field>: <problem>")``."""
    raise ValueError(f"{type(spec).__name__}.{field}: {problem}")


def require_text(spec: object, field: str, value: Any) -> None:
    """``value`` must be a non-empty string (an XComArg, resolved when rendered, passes)."""
    if hasattr(value, "resolve") and not isinstance(value, str):
        return
    if not isinstance(value, str) or not value.strip():
        fail(spec, field, f"must be a non-empty string, got {value!r}")


def require_columns(spec: object, field: str, value: Any) -> None:
    """``value`` must be None or a list of distinct, non-empty column names."""
    if value is None:
        return
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        fail(spec, field, f"must be a list of column names, got {value!r}")
    if not value or not all(isinstance(v, str) and v for v in value) or len(set(value)) != len(value):
        fail(spec, field, f"must be a non-empty list of distinct column names, got {value!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Spec:
    """A frozen spec whose ``templated`` fields the operator renders into a copy."""

    templated: ClassVar[tuple[str, ...]] = ()

    def render(self, render: Callable[[Any], Any]) -> Self:
        """A copy with the ``templated`` fields passed through ``render`` (the operator's Jinja)."""
        changes = {field: render(getattr(self, field)) for field in self.templated}
        return dataclasses.replace(self, **changes)
