"""
The injector primitives of tests/harness/injectors.py the harness uses, adapted to its fault points.
"""

from __future__ import annotations

from tests.harness.injectors import (
    Injection,
    SupervisedProcess,
    kill_on_request,
    mongo_write_match,
    restart_mongo,
    restart_postgres,
)
from tests.harness.proxy import Fault


def cut_fault(after_bytes: int) -> Fault:
    """The answer's status and headers, ``after_bytes`` of its body, then the connection closes."""
    return Fault.cut(after_bytes)


__all__ = [
    "Injection",
    "SupervisedProcess",
    "cut_fault",
    "kill_on_request",
    "mongo_write_match",
    "restart_mongo",
    "restart_postgres",
]
