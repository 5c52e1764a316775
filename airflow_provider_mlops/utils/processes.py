"""Stopping a child process and everything it started (a server started with ``start_new_session``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def stop_process_group(process: subprocess.Popen, *, grace: float = 20.0) -> None:
    """
    SIGTERM to ``process``'s process group, SIGKILL after ``grace`` seconds if it is still running.
    The process must lead its group (``start_new_session=True``), or its parent's group is signalled.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
