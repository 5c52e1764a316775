"""
The injector primitives the harness uses, from tests/harness/injectors.py (issue #30's other half),
with the few stand-ins of :mod:`tests.chaos._fallback` while that module is not on this branch.
"""

from __future__ import annotations

from typing import Any

from tests.harness.proxy import Fault

try:
    from tests.harness.injectors import Injection, SupervisedProcess, kill_on_request
except ImportError:  # pragma: no cover - until helper "injectors" lands
    from tests.chaos._fallback import Injection, SupervisedProcess, kill_on_request  # type: ignore[assignment]


def restart_postgres(pg: Any) -> None:
    """The whole data cluster restarted (fast shutdown: every backend ends), same port and data."""
    if hasattr(pg, "restart"):
        pg.restart("fast")
        return
    from tests.chaos._fallback import pg_restart

    pg_restart(pg)


def restart_mongo(mongo: Any) -> None:
    """MongoDB SIGKILLed, then started again on the same port and data."""
    if hasattr(mongo, "restart"):
        mongo.restart()
        return
    from tests.chaos._fallback import mongo_restart

    mongo_restart(mongo)


def cut_fault(after_bytes: int) -> Fault:
    """The answer's status and headers, ``after_bytes`` of its body, then the connection closes."""
    cut = getattr(Fault, "cut", None)
    return cut(after_bytes) if cut is not None else Fault.reset()


__all__ = [
    "Injection",
    "SupervisedProcess",
    "cut_fault",
    "kill_on_request",
    "restart_mongo",
    "restart_postgres",
]
