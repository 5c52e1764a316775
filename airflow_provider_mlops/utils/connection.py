"""Helpers shared by the hooks: typed connection extras and secret-free error messages."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}


def as_bool(value: Any, *, name: str = "value", default: bool | None = None) -> bool | None:
    """
    Read a boolean that may arrive as a JSON boolean, a number or a string from the connection form.

    The official Mongo hook crashes on ``{"ssl": "false"}``-style extras: here ``"false"``, ``"0"``, ``0``
    and ``False`` all mean False, and anything unrecognised is an error that names the field.
    """
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"Connection extra {name!r} must be a boolean (true/false), got {value!r}")


def as_int(value: Any, *, name: str = "value", default: int | None = None) -> int | None:
    """Read an integer extra that may arrive as a string."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, bool):
        raise ValueError(f"Connection extra {name!r} must be an integer, got {value!r}")
    try:
        return int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValueError(f"Connection extra {name!r} must be an integer, got {value!r}") from None


def as_float(value: Any, *, name: str = "value", default: float | None = None) -> float | None:
    """Read a float extra that may arrive as a string."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Connection extra {name!r} must be a number, got {value!r}") from None


def redact(message: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each non-empty secret in ``message`` with ``***``."""
    out = message
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        out = out.replace(secret, "***")
    # Credentials embedded in URIs (scheme://user:password@host) are redacted whatever they are.
    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", out)
