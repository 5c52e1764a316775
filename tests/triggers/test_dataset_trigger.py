"""The deferrable wait surfaces errors that waiting cannot fix instead of polling forever."""

from __future__ import annotations

import asyncio

from airflow_provider_mlops.triggers.dataset import DatasetReadyTrigger
from tests.conftest import s3_connection, set_connection


def _first_event(trigger: DatasetReadyTrigger) -> dict:
    async def first() -> dict:
        return (await asyncio.wait_for(trigger.run().__anext__(), 30)).payload

    return asyncio.run(first())


def test_a_missing_connection_is_an_error_event_not_an_endless_wait() -> None:
    event = _first_event(
        DatasetReadyTrigger(uri="s3://bucket/ds", storage_conn_id="no_such_conn_xyz", poke_interval=0.01)
    )
    assert event["status"] == "error"
    assert "no_such_conn_xyz" in event["message"]


def test_an_unsupported_uri_is_an_error_event() -> None:
    event = _first_event(DatasetReadyTrigger(uri="gs://bucket/ds", poke_interval=0.01))
    assert event["status"] == "error" and "Unsupported storage URI" in event["message"]


def test_an_unreachable_endpoint_is_waited_out_then_reported() -> None:
    conn_id = set_connection(
        "s3_unreachable",
        conn_type="mlops-s3",
        login="k",
        password="s",
        extra={"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"},
    )
    trigger = DatasetReadyTrigger(
        uri="s3://bucket/ds", storage_conn_id=conn_id, poke_interval=0.01, max_failures=2
    )
    event = _first_event(trigger)
    assert event["status"] == "error"


def test_fires_once_the_delta_table_has_a_commit_not_on_uncommitted_files(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

    uri = (tmp_path / "ds").as_uri()
    (tmp_path / "ds").mkdir()
    pq.write_table(
        pa.table({"a": [1]}), tmp_path / "ds" / "part-00000-0b8c3b6e-1111-2222-3333-444455556666-c000.parquet"
    )
    waiting = _first_event(DatasetReadyTrigger(uri=uri, poke_interval=0.01, timeout=0.05))
    assert waiting["status"] == "timeout"
    ObjectStorageHook(aws_conn_id=None).write_dataset(uri, pa.table({"a": [1, 2]}).to_batches())
    assert _first_event(DatasetReadyTrigger(uri=uri, poke_interval=0.01))["status"] == "ready"


def test_an_untrusted_certificate_ends_the_wait_at_the_first_poll(s3_server, tmp_path) -> None:
    """A certificate no wait can fix (AirflowFailException): one poll, not ``max_failures``."""
    from tests.harness.tls import make_private_ca, tls_relay

    with tls_relay(s3_server.port, make_private_ca(tmp_path)) as relay:
        conn_id = s3_connection("s3_trigger_untrusted", s3_server, relay.endpoint_url)
        trigger = DatasetReadyTrigger(
            uri=f"s3://{s3_server.bucket}/ds", storage_conn_id=conn_id, poke_interval=0.01
        )
        event = _first_event(trigger)
        assert event["status"] == "error" and "'verify'" in event["message"]
        assert relay.connections == 1
