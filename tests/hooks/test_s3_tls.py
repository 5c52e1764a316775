"""
An S3-compatible store with a private-CA certificate (an on-prem MinIO / Ceph): the ``aws``
connection's ``verify`` extra reaches every client the provider reads and writes S3 with (boto3,
pyarrow's S3 file system, delta-rs), so every dataset operation works with ``verify: false`` and with
``verify: "/path/to/ca.pem"``, with identical data, and fails naming the connection and the fix
without it. moto's S3 behind a TLS relay that presents a certificate the tests' own CA signed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook, S3Tls
from airflow_provider_mlops.sinks.specs import FileExport, LakeTable
from tests.conftest import s3_connection
from tests.harness.servers import S3Server
from tests.harness.tls import PrivateCa, TlsRelay, make_private_ca, tls_relay

# verify=false is asked for here: urllib3's warning on each unverified request is expected
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCa:
    return make_private_ca(tmp_path_factory.mktemp("private-ca"))


@pytest.fixture(scope="module")
def https_s3(s3_server: S3Server, private_ca: PrivateCa) -> Iterator[TlsRelay]:
    with tls_relay(s3_server.port, private_ca) as relay:
        yield relay


def _aws_conn(conn_id: str, s3_server: S3Server, relay: TlsRelay, **extra: object) -> str:
    return s3_connection(
        conn_id,
        s3_server,
        relay.endpoint_url,
        bucket=s3_server.bucket,  # Test then lists it with pyarrow's and delta-rs's clients too
        **extra,
    )


def _rows(start: int, n: int, day: str) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(start, start + n), pa.int64()),
            "day": [day] * n,
            "amount": [i * 1.5 for i in range(start, start + n)],
            "who": [f"customer {i} é" for i in range(start, start + n)],
        }
    )


def _digest(table: pa.Table) -> tuple[int, str]:
    rows = sorted(zip(*(table.column(c).to_pylist() for c in sorted(table.column_names)), strict=True))
    return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


def _read(hook: ObjectStorageHook, uri: str, **kwargs: object) -> pa.Table:
    return pa.Table.from_batches(list(hook.iter_batches(uri, **kwargs)))  # type: ignore[arg-type]


def _every_operation(hook: ObjectStorageHook, root: str) -> dict[str, object]:
    """What a user's DAG does with S3 datasets: hand-off, lake loads, maintenance, exports."""
    seen: dict[str, object] = {}
    written = _rows(0, 300, "2026-01-01")
    handoff = f"{root}/handoff"
    hook.write_dataset(handoff, written.to_batches(max_chunksize=100))
    seen["handoff"] = _digest(_read(hook, handoff))
    assert seen["handoff"] == _digest(written)
    assert hook.is_table(handoff)
    info = hook.dataset_info(handoff)
    assert info is not None and info["rows"] == 300
    assert hook.read_schema(handoff) == written.schema

    # a type widened mid-write: the files written so far are read back (pyarrow) and rewritten
    widened = f"{root}/widened"
    hook.write_dataset(
        widened,
        iter(
            [
                pa.record_batch({"id": [1, 2], "x": [1, 2]}),
                pa.record_batch({"id": [3], "x": [3.5], "tags": [["a", "b"]]}),
            ]
        ),
    )
    seen["widened"] = _read(hook, widened).sort_by("id").to_pylist()
    assert seen["widened"] == [
        {"id": 1, "x": 1.0, "tags": None},
        {"id": 2, "x": 2.0, "tags": None},
        {"id": 3, "x": 3.5, "tags": ["a", "b"]},
    ]

    lake = LakeTable(f"{root}/lake", keys=["id"], partition_by=["day"])
    first = hook.write(lake, _rows(0, 120, "2026-01-01").to_batches(), mode="append")
    second = hook.write(lake, _rows(500, 80, "2026-01-02").to_batches(), mode="append")
    rerun = hook.write(
        lake,
        _rows(0, 100, "2026-01-01").to_batches(),
        mode="replace_partition",
        partition={"day": "2026-01-01"},
    )
    upsert = hook.write(lake, _rows(550, 60, "2026-01-02").to_batches(), mode="upsert")
    assert (first["version"], second["version"], rerun["version"], upsert["version"]) == (0, 1, 2, 3)
    assert (upsert["inserted"], upsert["updated"], upsert["table_rows"]) == (30, 30, 210)
    seen["lake"] = _digest(_read(hook, lake.name))
    assert seen["lake"][0] == 210
    assert _digest(_read(hook, f"{lake.name}@v1"))[0] == 200
    seen["optimize"] = int(hook.optimize_dataset(lake.name).get("numFilesRemoved", 0))
    assert hook.vacuum_dataset(lake.name, retention_hours=0, dry_run=True)  # superseded files found
    assert _digest(_read(hook, lake.name)) == seen["lake"]

    for fmt in ("csv", "jsonl"):
        export = hook.write(FileExport(f"{root}/export-{fmt}/", format=fmt), written.to_batches())
        assert export["rows"] == 300
        back = _read(hook, export["target"], format=fmt, schema=written.schema)
        seen[fmt] = _digest(back)
        assert seen[fmt] == _digest(written)
    return seen


def test_verify_false_and_a_ca_bundle_reach_every_client_with_identical_data(
    s3_server: S3Server, https_s3: TlsRelay, private_ca: PrivateCa
) -> None:
    results = []
    for conn_id, verify in (("s3_tls_insecure", False), ("s3_tls_ca", private_ca.ca_file)):
        hook = ObjectStorageHook(_aws_conn(conn_id, s3_server, https_s3, verify=verify))
        ok, message = hook.test_connection()
        assert ok, message
        results.append(
            _every_operation(hook, f"s3://{s3_server.bucket}/tls/{conn_id}-{uuid.uuid4().hex[:8]}")
        )
    assert results[0] == results[1]


def test_verify_as_a_string_false_reaches_every_client(s3_server: S3Server, https_s3: TlsRelay) -> None:
    """The connection form stores extras as text: ``"false"`` is false for all three clients."""
    hook = ObjectStorageHook(_aws_conn("s3_tls_text", s3_server, https_s3, verify="false"))
    uri = f"s3://{s3_server.bucket}/tls/text-{uuid.uuid4().hex[:8]}"
    hook.write_dataset(uri, _rows(0, 10, "d").to_batches())
    assert hook.is_table(uri) and hook.read_schema(uri) == _rows(0, 1, "d").schema
    assert _read(hook, uri).num_rows == 10


@pytest.mark.parametrize(
    "operation",
    [
        "test_connection",
        "write_dataset",
        "is_table",
        "dataset_info",
        "read_schema",
        "iter_batches",
        "lake",
        "export",
    ],
)
def test_an_untrusted_certificate_fails_every_operation_naming_the_connection_and_the_fix(
    operation: str, s3_server: S3Server, https_s3: TlsRelay, private_ca: PrivateCa
) -> None:
    # the table exists (written through a trusting connection): a failure is the certificate's only
    uri = f"s3://{s3_server.bucket}/tls/untrusted-{uuid.uuid4().hex[:8]}"
    ObjectStorageHook(_aws_conn("s3_tls_ca", s3_server, https_s3, verify=private_ca.ca_file)).write_dataset(
        uri, _rows(0, 10, "d").to_batches()
    )
    hook = ObjectStorageHook(_aws_conn("s3_tls_default", s3_server, https_s3))
    started = time.monotonic()
    if operation == "test_connection":
        ok, message = hook.test_connection()
        assert not ok
    else:
        calls = {
            "write_dataset": lambda: hook.write_dataset(f"{uri}-new", _rows(0, 5, "d").to_batches()),
            "is_table": lambda: hook.is_table(uri),
            "dataset_info": lambda: hook.dataset_info(uri),
            "read_schema": lambda: hook.read_schema(uri),
            "iter_batches": lambda: _read(hook, uri),
            "lake": lambda: hook.write(
                LakeTable(f"{uri}-lake"), _rows(0, 5, "d").to_batches(), mode="append"
            ),
            "export": lambda: hook.write(FileExport(f"{uri}-csv/"), _rows(0, 5, "d").to_batches()),
        }
        with pytest.raises(Exception) as caught:
            calls[operation]()
        message = str(caught.value)
        assert type(caught.value).__name__ == "AirflowFailException"
    assert "s3_tls_default" in message
    assert "verify" in message and "CA bundle" in message
    assert time.monotonic() - started < 15
    # nothing was written by the refused operations
    assert not ObjectStorageHook(
        _aws_conn("s3_tls_ca", s3_server, https_s3, verify=private_ca.ca_file)
    ).list_uris(f"{uri}-")


def test_a_ca_bundle_path_that_does_not_exist_is_refused_by_name(
    s3_server: S3Server, https_s3: TlsRelay
) -> None:
    hook = ObjectStorageHook(
        _aws_conn("s3_tls_missing_ca", s3_server, https_s3, verify="/nonexistent/ca.pem")
    )
    with pytest.raises(Exception, match=r"s3_tls_missing_ca.*/nonexistent/ca\.pem") as caught:
        hook.is_table(f"s3://{s3_server.bucket}/tls/x")
    assert type(caught.value).__name__ == "AirflowFailException"
    ok, message = hook.test_connection()
    assert not ok and "/nonexistent/ca.pem" in message


def test_the_tls_relay_really_presents_an_untrusted_certificate(https_s3: TlsRelay) -> None:
    """The harness's own check: without the CA, Python's TLS refuses the relay."""
    import socket
    import ssl

    with (
        pytest.raises(ssl.SSLCertVerificationError),
        socket.create_connection(("127.0.0.1", https_s3.port), timeout=5) as sock,
    ):
        ssl.create_default_context().wrap_socket(sock, server_hostname="127.0.0.1")
    context = ssl.create_default_context(cafile=https_s3.ca.ca_file)
    with (
        socket.create_connection(("127.0.0.1", https_s3.port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() is not None


def test_verify_is_read_once_for_the_three_clients(tmp_path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    for value in (None, "", True, "true", "1"):
        tls = S3Tls.from_extra("c", value)
        assert (tls.boto3_verify, tls.pyarrow_options, tls.delta_options) == (None, {}, {})
    for value in (False, "false", "False", "0", 0):
        tls = S3Tls.from_extra("c", value)
        assert tls.boto3_verify is False and tls.pyarrow_options == {}
        assert tls.delta_options == {"AWS_ALLOW_INVALID_CERTIFICATES": "true"}
    tls = S3Tls.from_extra("c", str(bundle))
    assert tls.boto3_verify == str(bundle) and tls.pyarrow_options == {"tls_ca_file_path": str(bundle)}
    assert tls.delta_options == {}
    with pytest.raises(Exception, match=r"Connection 'c': extra verify='yes please'") as caught:
        S3Tls.from_extra("c", "yes please")
    assert type(caught.value).__name__ == "AirflowFailException"


def test_the_ca_bundle_is_in_the_environment_only_during_delta_calls(tmp_path, monkeypatch) -> None:
    import os

    from airflow_provider_mlops.hooks import s3

    first, second = tmp_path / "a.pem", tmp_path / "b.pem"
    for path in (first, second):
        path.write_text("x")
    monkeypatch.setenv("SSL_CERT_FILE", "/etc/ssl/mine.pem")
    with s3._ca_bundle_environment(S3Tls("a", ca_file=str(first))):
        assert os.environ["SSL_CERT_FILE"] == str(first)
        with s3._ca_bundle_environment(S3Tls("a", ca_file=str(first))):
            assert os.environ["SSL_CERT_FILE"] == str(first)
        assert os.environ["SSL_CERT_FILE"] == str(first)
    assert os.environ["SSL_CERT_FILE"] == "/etc/ssl/mine.pem"
    monkeypatch.delenv("SSL_CERT_FILE")
    with s3._ca_bundle_environment(S3Tls("a", ca_file=str(first))):
        assert os.environ["SSL_CERT_FILE"] == str(first)
    assert "SSL_CERT_FILE" not in os.environ
    with s3._ca_bundle_environment(S3Tls("a", verify=False)):
        assert "SSL_CERT_FILE" not in os.environ


class _InScope(threading.Thread):
    """A thread that enters a trust scope, records SSL_CERT_FILE there, and leaves when released."""

    def __init__(self, enter: Callable[[], contextlib.AbstractContextManager[None]]) -> None:
        super().__init__(daemon=True)
        self.enter, self.inside, self.release = enter, threading.Event(), threading.Event()
        self.seen: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.enter():
                self.seen = os.environ.get("SSL_CERT_FILE")
                self.inside.set()
                self.release.wait(10)
        except BaseException as err:
            self.error = err


def _waiting(count: int) -> None:
    """Until ``count`` scopes wait for the active bundle's users (woken by the scope, no sleep)."""
    from airflow_provider_mlops.hooks import s3

    with s3._ca_scope_change:
        assert s3._ca_scope_change.wait_for(lambda: s3._ca_scope["waiting"] == count, timeout=10)


def test_scopes_of_another_trust_store_wait_for_the_active_bundles_users(
    tmp_path, monkeypatch, https_s3: TlsRelay, private_ca: PrivateCa
) -> None:
    """
    SSL_CERT_FILE is process-wide: a scope of another bundle, or of none (the system store, its TLS
    check too), waits until the active bundle's users are done; the same bundle shares it.
    """
    from airflow_provider_mlops.hooks import s3

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    first, second = str(tmp_path / "a.pem"), str(tmp_path / "b.pem")
    for path in (first, second):
        Path(path).write_text("x")
    holder = _InScope(lambda: s3._ca_bundle_environment(S3Tls("a", ca_file=first)))
    holder.start()
    assert holder.inside.wait(10) and holder.seen == first
    sharer = _InScope(lambda: s3._ca_bundle_environment(S3Tls("a2", ca_file=first)))
    sharer.start()
    assert sharer.inside.wait(10) and sharer.seen == first  # the same bundle: no wait
    other = _InScope(lambda: s3._ca_bundle_environment(S3Tls("b", ca_file=second)))
    system = _InScope(lambda: s3._ca_bundle_environment(S3Tls("c")))
    other.start()
    system.start()
    _waiting(2)
    assert not other.inside.is_set() and not system.inside.is_set()
    for thread in (other, system, holder, sharer):
        thread.release.set()
    for thread in (other, system):
        thread.join(10)
        assert thread.error is None and thread.inside.is_set()
    assert other.seen == second and system.seen is None
    assert "SSL_CERT_FILE" not in os.environ

    # the system store's TLS check waits too: under the private bundle it would trust the private CA
    holder = _InScope(lambda: s3._ca_bundle_environment(S3Tls("a", ca_file=private_ca.ca_file)))
    holder.start()
    assert holder.inside.wait(10)
    verdict: list[BaseException | None] = []
    checker = threading.Thread(
        target=lambda: verdict.append(
            _raised(lambda: s3.check_endpoint_tls(S3Tls("c"), https_s3.endpoint_url))
        )
    )
    checker.start()
    _waiting(1)
    holder.release.set()
    checker.join(10)
    assert "the system's trust store" in str(verdict[0])

    # waited too long: a retryable error that says why (not AirflowFailException: a retry can work)
    monkeypatch.setattr(s3, "_CA_SCOPE_WAIT", 0.2)
    holder = _InScope(lambda: s3._ca_bundle_environment(S3Tls("a", ca_file=first)))
    holder.start()
    assert holder.inside.wait(10)
    error = _raised(lambda: s3._ca_bundle_environment(S3Tls("b", ca_file=second)).__enter__())
    holder.release.set()
    holder.join(10)
    assert isinstance(error, TimeoutError) and "SSL_CERT_FILE" in str(error) and first in str(error)


def _raised(call: Callable[[], object]) -> BaseException | None:
    try:
        call()
    except BaseException as err:
        return err
    return None


def test_the_tls_verdict_is_kept_per_endpoint_and_trust_store_for_the_process(
    s3_server: S3Server, private_ca: PrivateCa, tmp_path
) -> None:
    """A deferred sensor builds a hook per poll: one handshake per endpoint and bundle, not per hook."""
    with tls_relay(s3_server.port, private_ca) as relay:
        conn_id = _aws_conn("s3_tls_cached", s3_server, relay, verify=private_ca.ca_file)
        for _ in range(3):
            ObjectStorageHook(conn_id).check_tls()
        assert relay.connections == 1
        # another trust store for the same endpoint is checked on its own (and refused)
        with pytest.raises(Exception, match="s3_tls_cached_default"):
            ObjectStorageHook(_aws_conn("s3_tls_cached_default", s3_server, relay)).check_tls()
        assert relay.connections == 2
        # the bundle's file changed (a rotated CA): checked again
        copy = tmp_path / "ca.pem"
        copy.write_bytes(Path(private_ca.ca_file).read_bytes() + b"\n")
        ObjectStorageHook(_aws_conn("s3_tls_cached", s3_server, relay, verify=str(copy))).check_tls()
        assert relay.connections == 3


def test_the_tls_check_leaves_an_endpoint_behind_a_proxy_to_the_clients(
    https_s3: TlsRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a proxy the handshake would be the wrong one: the clients report themselves."""
    from airflow_provider_mlops.hooks.s3 import check_endpoint_tls

    before = https_s3.connections
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    check_endpoint_tls(S3Tls("s3_tls_proxied"), https_s3.endpoint_url)  # untrusted, but not checked
    assert https_s3.connections == before
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    with pytest.raises(Exception, match="s3_tls_proxied"):
        check_endpoint_tls(S3Tls("s3_tls_proxied"), https_s3.endpoint_url)


def test_the_tls_check_gives_up_quickly_on_an_endpoint_that_does_not_answer() -> None:
    """A listener that never answers the handshake: left to the clients after a short wait."""
    import socket

    from airflow_provider_mlops.hooks.s3 import check_endpoint_tls

    with socket.create_server(("127.0.0.1", 0)) as silent:
        started = time.monotonic()
        check_endpoint_tls(S3Tls("s3_tls_silent"), f"https://127.0.0.1:{silent.getsockname()[1]}")
        assert time.monotonic() - started < 4


@pytest.mark.parametrize("fault", ["expired", "another host"])
def test_a_certificate_a_ca_bundle_cannot_fix_gets_its_own_advice(
    fault: str, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The CA is trusted, but the certificate expired or names another host: renewing it is the fix."""
    ca = make_private_ca(
        tmp_path_factory.mktemp("bad-cert"),
        expired=fault == "expired",
        names=("s3.other.example",) if fault == "another host" else (),
    )
    with tls_relay(s3_server.port, ca) as relay:
        hook = ObjectStorageHook(_aws_conn(f"s3_tls_{fault[:7]}", s3_server, relay, verify=ca.ca_file))
        with pytest.raises(Exception) as caught:
            hook.is_table(f"s3://{s3_server.bucket}/tls/x")
    message = str(caught.value)
    assert type(caught.value).__name__ == "AirflowFailException"
    assert f"s3_tls_{fault[:7]}" in message and "CA bundle (PEM) holding" not in message
    if fault == "expired":
        assert "expired" in message and "renew" in message
    else:
        assert "127.0.0.1" in message and "names" in message and "endpoint_url" in message


def test_a_certificate_replaced_mid_task_fails_naming_the_fix_not_retried(
    s3_server: S3Server, private_ca: PrivateCa, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The check passed (kept for the process), then the server presents a certificate of another CA."""
    with tls_relay(s3_server.port, private_ca) as relay:
        conn_id = _aws_conn("s3_tls_rotated", s3_server, relay, verify=private_ca.ca_file)
        uri = f"s3://{s3_server.bucket}/tls/rotated-{uuid.uuid4().hex[:8]}"
        ObjectStorageHook(conn_id).write_dataset(uri, _rows(0, 3, "d").to_batches())
        relay.present(make_private_ca(tmp_path_factory.mktemp("other-ca")))
        for call in (
            lambda hook: hook.put_bytes(f"{uri}-x", b"x"),  # boto3
            lambda hook: hook.table_version(uri),  # delta-rs
        ):
            with pytest.raises(Exception) as caught:
                call(ObjectStorageHook(conn_id))
            assert type(caught.value).__name__ == "AirflowFailException", caught.value
            assert "s3_tls_rotated" in str(caught.value) and "'verify'" in str(caught.value)


def test_a_ca_the_system_trusts_but_boto3_does_not_is_refused_naming_boto3s_bundle(
    s3_server: S3Server, https_s3: TlsRelay, private_ca: PrivateCa, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The system trusts the CA (here through SSL_CERT_FILE, as after update-ca-certificates), so
    pyarrow and delta-rs would connect, but boto3 verifies with its own bundle: refused before any
    work, naming boto3's bundle, not as a boto3 error after retries halfway through a task.
    """
    monkeypatch.setenv("SSL_CERT_FILE", private_ca.ca_file)
    hook = ObjectStorageHook(_aws_conn("s3_tls_system_only", s3_server, https_s3))
    with pytest.raises(Exception, match=r"'s3_tls_system_only'.*boto3's CA bundle.*'verify'") as caught:
        hook.is_table(f"s3://{s3_server.bucket}/tls/x")
    assert type(caught.value).__name__ == "AirflowFailException"
    ok, message = ObjectStorageHook("s3_tls_system_only").test_connection()
    assert not ok and "boto3's CA bundle" in message


@pytest.mark.parametrize(
    "error",
    [
        "SSL validation failed for https://h/ [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
        "AWS Error NETWORK_CONNECTION during ListObjectsV2 operation: curlCode: 60, SSL peer certificate",
        "Generic S3 error: error sending request: client error (Connect): invalid peer certificate: UnknownIssuer",
    ],
)
def test_each_clients_certificate_error_gets_the_fix(error: str) -> None:
    """What Test adds when a client refuses the certificate although the handshake check passed."""
    from airflow_provider_mlops.hooks.s3 import _certificate_hint

    assert "'verify'" in _certificate_hint(OSError(error)) and "CA bundle" in _certificate_hint(
        OSError(error)
    )
    assert _certificate_hint(OSError("Connection refused")) == ""


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired", "renew"),
        ("curlCode: 60, SSL certificate problem: certificate has expired", "renew"),
        ("invalid peer certificate: Expired { time: UnixTime(1) }", "renew"),
        ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch", "endpoint_url"),
        ("invalid peer certificate: NotValidForName", "endpoint_url"),
    ],
)
def test_an_expired_or_misnamed_certificate_error_gets_its_own_fix(error: str, fix: str) -> None:
    from airflow_provider_mlops.hooks.s3 import _certificate_hint

    hint = _certificate_hint(OSError(error))
    assert fix in hint and "does not fix this" in hint


def test_the_boto3_file_system_answers_as_pyarrows_s3_file_system(
    s3_conn_id: str, s3_server: S3Server
) -> None:
    """What ``verify: false`` reads through stands in for pyarrow's S3FileSystem: same answers."""
    import pyarrow.fs as pafs

    from airflow_provider_mlops.hooks.s3_boto3_fs import boto3_filesystem

    hook = ObjectStorageHook(s3_conn_id)
    native, ours = hook.s3_filesystem, boto3_filesystem(hook.client)
    assert isinstance(native, pafs.S3FileSystem)
    root = f"{s3_server.bucket}/tls/fs-{uuid.uuid4().hex[:8]}"
    payload = bytes(range(256)) * 1000
    for key in ("a.bin", "sub/b.bin", "sub/deeper/c.bin"):
        hook.put_bytes(f"s3://{root}/{key}", payload[: 1000 * (1 + len(key))])

    def describe(infos: list[pafs.FileInfo]) -> list[tuple[str, str, int | None]]:
        return sorted((i.path, i.type.name, i.size if i.type == pafs.FileType.File else None) for i in infos)

    paths = [f"{root}/a.bin", f"{root}/sub", f"{root}/missing", f"{root}/sub/deeper/c.bin", s3_server.bucket]
    assert describe(ours.get_file_info(paths)) == describe(native.get_file_info(paths))
    for recursive in (True, False):
        selector = pafs.FileSelector(root, recursive=recursive)
        assert describe(ours.get_file_info(selector)) == describe(native.get_file_info(selector))
    missing = pafs.FileSelector(f"{root}/nothing-here", allow_not_found=True)
    assert ours.get_file_info(missing) == native.get_file_info(missing) == []
    with pytest.raises(FileNotFoundError):
        ours.get_file_info(pafs.FileSelector(f"{root}/nothing-here"))
    with (
        ours.open_input_file(f"{root}/sub/b.bin") as mine,
        native.open_input_file(f"{root}/sub/b.bin") as theirs,
    ):
        assert mine.size() == theirs.size()
        for offset, length in ((0, 10), (4_000, 3_000), (mine.size() - 5, 50)):
            assert mine.read_at(length, offset) == theirs.read_at(length, offset)
    with ours.open_input_stream(f"{root}/a.bin") as mine:
        assert mine.read() == payload[:6_000]
    with pytest.raises(FileNotFoundError):
        ours.open_input_stream(f"{root}/missing")
    with pytest.raises(NotImplementedError, match="reads only"):
        ours.open_output_stream(f"{root}/new.bin")

    # folder markers ("Create folder" in the S3 console, Hadoop s3a, MinIO tools): keys ending in "/"
    import pyarrow.parquet as pq

    marked = f"{root}/marked"
    for key in ("exp/", "t/", "t/sub/"):
        hook.put_bytes(f"s3://{marked}/{key}", b"")
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.table({"x": [1, 2, 3]}), buffer)
    hook.put_bytes(f"s3://{marked}/exp/part.parquet", buffer.getvalue().to_pybytes())
    for recursive in (True, False):
        selector = pafs.FileSelector(marked, recursive=recursive)
        assert describe(ours.get_file_info(selector)) == describe(native.get_file_info(selector))
    for base in (f"{marked}/t", f"{marked}/exp"):
        selector = pafs.FileSelector(base, recursive=True)
        assert describe(ours.get_file_info(selector)) == describe(native.get_file_info(selector))
    marker_paths = [f"{marked}/exp", f"{marked}/t/sub", f"{marked}/t"]
    assert describe(ours.get_file_info(marker_paths)) == describe(native.get_file_info(marker_paths))
    assert pq.read_table(f"{marked}/exp", filesystem=ours).num_rows == 3
    assert pq.read_table(f"{marked}/exp", filesystem=native).num_rows == 3

    # a bucket that does not exist: what pyarrow's S3FileSystem answers
    nobucket = pafs.FileSelector(f"no-such-bucket-{uuid.uuid4().hex[:8]}/x", allow_not_found=True)
    assert ours.get_file_info(nobucket) == native.get_file_info(nobucket) == []
    nobucket_paths = [f"no-such-bucket-{uuid.uuid4().hex[:8]}/x/y"]
    assert describe(ours.get_file_info(nobucket_paths)) == describe(native.get_file_info(nobucket_paths))


def test_the_boto3_file_systems_ranged_reads_hold_one_copy_and_resume_a_cut_body(
    s3_conn_id: str, s3_server: S3Server
) -> None:
    """A Parquet column chunk read by a ranged GET: ~one copy in Python's memory; a cut body is resumed."""
    import tracemalloc

    from airflow_provider_mlops.hooks.s3_boto3_fs import boto3_filesystem
    from tests.harness.proxy import Fault, start_proxy

    key = f"tls/ranges-{uuid.uuid4().hex[:8]}.bin"
    payload = os.urandom(1 << 20) * 8  # 8 MiB
    ObjectStorageHook(s3_conn_id).put_bytes(f"s3://{s3_server.bucket}/{key}", payload)
    cut: list[str] = []

    def cut_once(request):  # the first ranged GET of the object loses its connection after 1 MiB
        if request.method == "GET" and key in request.path and not cut:
            cut.append(request.path)
            return Fault.cut(1 << 20)
        return None

    with start_proxy(s3_server.endpoint_url, cut_once) as proxy:
        conn_id = s3_connection("s3_ranges_proxied", s3_server, proxy.endpoint_url, conn_type="mlops-s3")
        fs = boto3_filesystem(ObjectStorageHook(conn_id).client)
        with fs.open_input_file(f"{s3_server.bucket}/{key}") as file:
            assert file.read_at(3 << 20, 1 << 20) == payload[1 << 20 : 4 << 20]  # resumed after the cut
            assert cut
    # straight to moto (the proxy in this process would hold its own copy)
    fs = boto3_filesystem(ObjectStorageHook(s3_conn_id).client)
    with fs.open_input_file(f"{s3_server.bucket}/{key}") as file:
        tracemalloc.start()
        try:
            file.seek(10)
            data = file.read_buffer(len(payload) - 10)  # what Arrow's readers take
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert data.to_pybytes() == payload[10:]
    assert peak < 1.5 * len(payload), f"{peak / len(payload):.2f} copies of the range held"


def test_a_pyarrow_without_tls_ca_file_path_reads_through_boto3(
    s3_server: S3Server, https_s3: TlsRelay, private_ca: PrivateCa, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    An older pyarrow has no ``tls_ca_file_path`` (injected: its constructor refuses the keyword, whatever
    its docstring says, which ``python -OO`` may strip): the CA bundle's reads go through boto3.
    """
    import pyarrow.fs as pafs

    class OlderS3FileSystem(pafs.S3FileSystem):
        """S3FileSystem(tls_ca_file_path=...) as documented, but refused as by an older pyarrow."""

        def __init__(self, **kwargs: object) -> None:
            if "tls_ca_file_path" in kwargs:
                raise TypeError("__init__() got an unexpected keyword argument 'tls_ca_file_path'")
            super().__init__(**kwargs)

    conn_id = _aws_conn("s3_tls_old_pyarrow", s3_server, https_s3, verify=private_ca.ca_file)
    uri = f"s3://{s3_server.bucket}/tls/old-pyarrow-{uuid.uuid4().hex[:8]}"
    ObjectStorageHook(conn_id).write_dataset(uri, _rows(0, 4, "d").to_batches())
    monkeypatch.setattr(pafs, "S3FileSystem", OlderS3FileSystem)
    hook = ObjectStorageHook(conn_id)
    assert hook.s3_filesystem.type_name == "py::s3-boto3"
    assert _read(hook, uri).num_rows == 4


@pytest.mark.parametrize("verify", ["ca", False])
def test_role_arn_is_assumed_over_the_same_tls_settings(
    verify: object, s3_server: S3Server, https_s3: TlsRelay, private_ca: PrivateCa
) -> None:
    """The STS call that turns ``role_arn`` into keys goes to the same endpoint with the same ``verify``."""
    conn_id = _aws_conn(
        f"s3_tls_role_{verify}",
        s3_server,
        https_s3,
        verify=private_ca.ca_file if verify == "ca" else verify,
        role_arn="arn:aws:iam::123456789012:role/mlops-writer",
    )
    hook = ObjectStorageHook(conn_id)
    assert hook.settings["session_token"]
    uri = f"s3://{s3_server.bucket}/tls/role-{uuid.uuid4().hex[:8]}"
    hook.write_dataset(uri, _rows(0, 7, "d").to_batches())
    assert hook.is_table(uri) and _read(hook, uri).num_rows == 7


def test_role_arn_with_an_untrusted_certificate_fails_before_the_sts_call(
    s3_server: S3Server, https_s3: TlsRelay
) -> None:
    hook = ObjectStorageHook(
        _aws_conn("s3_tls_role_untrusted", s3_server, https_s3, role_arn="arn:aws:iam::123456789012:role/r")
    )
    started = time.monotonic()
    with pytest.raises(Exception, match=r"'s3_tls_role_untrusted'.*'verify'.*CA bundle") as caught:
        hook.is_table(f"s3://{s3_server.bucket}/tls/x")
    assert type(caught.value).__name__ == "AirflowFailException"
    assert time.monotonic() - started < 5
    ok, message = hook.test_connection()
    assert not ok and "s3_tls_role_untrusted" in message


def test_test_connection_says_ok_when_a_policy_denies_the_probe_listing(s3_server: S3Server) -> None:
    """
    A policy that lets the bucket be reached but not listed at Test's probe prefix: pyarrow and
    delta-rs reached the endpoint through TLS and credentials, which is what Test checks of them.
    """
    from tests.harness.proxy import Fault, start_proxy

    def deny(request):  # what S3 answers a listing its bucket policy denies
        return Fault.fail(403, code="AccessDenied") if "mlops-connection-test" in request.path else None

    with start_proxy(s3_server.endpoint_url, deny) as proxy:
        conn_id = s3_connection("s3_probe_denied", s3_server, proxy.endpoint_url, bucket=s3_server.bucket)
        ok, message = ObjectStorageHook(conn_id).test_connection()
        denied = [r.path for r, _ in proxy.faults]
    assert ok, message
    assert len(denied) >= 2  # both clients' listings were refused
    assert "pyarrow reached; listing denied by policy" in message
    assert "delta-rs reached; listing denied by policy" in message


@pytest.mark.parametrize("client", ["pyarrow", "delta-rs"])
def test_test_connection_fails_when_the_pyarrow_or_delta_rs_client_cannot_connect(
    client: str, s3_server: S3Server, https_s3: TlsRelay, private_ca: PrivateCa
) -> None:
    """Fault injected: that client alone left without the CA bundle (as before the fix). Test says so."""
    import contextlib

    import pyarrow.fs as pafs

    hook = ObjectStorageHook(_aws_conn("s3_tls_one_client", s3_server, https_s3, verify=private_ca.ca_file))
    if client == "pyarrow":
        hook.__dict__["s3_filesystem"] = pafs.S3FileSystem(
            access_key=s3_server.access_key,
            secret_key=s3_server.secret_key,
            region=s3_server.region,
            endpoint_override=https_s3.endpoint_url.removeprefix("https://"),
            scheme="https",
        )
    else:
        hook.delta_client_scope = contextlib.nullcontext  # type: ignore[method-assign]
    ok, message = hook.test_connection()
    assert not ok
    assert f"boto3 reached bucket {s3_server.bucket!r}, but {client}'s S3 client did not" in message
    assert "'verify'" in message and "CA bundle" in message
