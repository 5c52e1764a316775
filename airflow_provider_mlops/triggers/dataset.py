"""A trigger that waits, in the triggerer, until a dataset's manifest exists."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class DatasetReadyTrigger(BaseTrigger):
    """
    Fire when ``<uri>/_manifest.json`` exists (a dataset written by this provider is complete).

    The check is one small existence test every ``poke_interval`` seconds, run in a thread so the
    triggerer's event loop (shared by many DAGs) never blocks; no statistics run here.

    :param uri: the dataset prefix (``s3://...``, ``file://...`` or a local path).
    :param storage_conn_id: connection for ``s3://`` URIs.
    :param poke_interval: seconds between checks.
    :param timeout: give up (event ``status: timeout``) after this many seconds; None waits forever.
    """

    def __init__(
        self,
        uri: str,
        storage_conn_id: str | None = None,
        poke_interval: float = 60.0,
        timeout: float | None = None,
    ) -> None:
        super().__init__()
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
            },
        )

    def _ready(self) -> bool:
        from airflow_provider_mlops.datasets import MANIFEST
        from airflow_provider_mlops.hooks.s3 import S3Hook
        from airflow_provider_mlops.storage.uri import parse_uri

        return S3Hook(aws_conn_id=self.storage_conn_id).exists(parse_uri(self.uri).join(MANIFEST))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = time.monotonic()
        while True:
            try:
                ready = await asyncio.to_thread(self._ready)
            except Exception as err:  # a transient storage error: report it, keep waiting
                self.log.warning("Checking %s failed: %s", self.uri, err)
                ready = False
            if ready:
                yield TriggerEvent({"status": "ready", "uri": self.uri})
                return
            if self.timeout is not None and time.monotonic() - started >= self.timeout:
                yield TriggerEvent({"status": "timeout", "uri": self.uri})
                return
            await asyncio.sleep(self.poke_interval)
