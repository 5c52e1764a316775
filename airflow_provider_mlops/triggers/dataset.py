"""A trigger that waits, in the triggerer, until a dataset's manifest exists."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


# Transient storage errors (a restart, a network blip) are waited out; this many in a row are not.
MAX_CONSECUTIVE_FAILURES = 10
_PERMANENT_S3_CODES = frozenset(
    {
        "403",
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "NoSuchBucket",
        "InvalidBucketName",
    }
)


def _is_permanent(err: BaseException) -> bool:
    """
    Errors that no amount of waiting fixes: configuration, credentials, permissions, and what the
    provider raises as not retryable (AirflowFailException: an untrusted TLS certificate...).
    """
    if isinstance(err, ValueError | TypeError | KeyError | PermissionError):
        return True
    name = type(err).__name__
    if name in (
        "AirflowNotFoundException",
        "AirflowFailException",
        "NoCredentialsError",
        "PartialCredentialsError",
    ):
        return True
    code = str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
    return code in _PERMANENT_S3_CODES


class DatasetReadyTrigger(BaseTrigger):
    """
    Fire when the Delta table at ``uri`` has a commit (``<uri>/_delta_log/`` holds a log entry: a
    dataset written by this provider is complete).

    The check is one small existence test every ``poke_interval`` seconds, run in a thread so the
    triggerer's event loop (shared by many DAGs) never blocks; no statistics run here.

    :param uri: the dataset prefix (``s3://...``, ``file://...`` or a local path).
    :param storage_conn_id: connection for ``s3://`` URIs.
    :param poke_interval: seconds between checks.
    :param timeout: give up (event ``status: timeout``) after this many seconds; None waits forever.
    :param max_failures: storage errors in a row that end the wait with ``status: error``; errors no
        wait can fix (a bad URI, a missing connection, denied access, an untrusted TLS certificate)
        end it at once.
    """

    def __init__(
        self,
        uri: str,
        storage_conn_id: str | None = None,
        poke_interval: float = 60.0,
        timeout: float | None = None,
        max_failures: int = MAX_CONSECUTIVE_FAILURES,
    ) -> None:
        super().__init__()
        self.max_failures = max_failures
        self.uri = uri
        self.storage_conn_id = storage_conn_id
        self.poke_interval = poke_interval
        self.timeout = timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "uri": self.uri,
                "storage_conn_id": self.storage_conn_id,
                "poke_interval": self.poke_interval,
                "timeout": self.timeout,
                "max_failures": self.max_failures,
            },
        )

    def _ready(self) -> bool:
        from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

        return ObjectStorageHook(aws_conn_id=self.storage_conn_id).is_table(self.uri)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = time.monotonic()
        failures = 0
        while True:
            try:
                ready = await asyncio.to_thread(self._ready)
                failures = 0
            except Exception as err:
                failures += 1
                if _is_permanent(err) or failures >= self.max_failures:
                    # waiting cannot fix a bad URI, a missing connection or denied access: say so
                    # instead of polling forever
                    yield TriggerEvent(
                        {"status": "error", "uri": self.uri, "message": f"{type(err).__name__}: {err}"}
                    )
                    return
                self.log.warning("Checking %s failed (%s in a row): %s", self.uri, failures, err)
                ready = False
            if ready:
                yield TriggerEvent({"status": "ready", "uri": self.uri})
                return
            if self.timeout is not None and time.monotonic() - started >= self.timeout:
                yield TriggerEvent({"status": "timeout", "uri": self.uri})
                return
            await asyncio.sleep(self.poke_interval)
